#!/usr/bin/env python3
"""Writes a data frame from an installed R package's lazy-load database as JSON Lines.

    r-data-to-jsonl.py DATA_DIR NAME TEXT_COLUMN LABEL_COLUMN OUT.jsonl

DATA_DIR is the package's data/ folder (with Rdata.rdx and Rdata.rdb), NAME the data set. Each
row becomes {"text": ..., "label": ...}, in the frame's order. Run by scripts/fetch-data inside
a virtual environment with the `rdata` package, which parses R's serialisation format.

A lazy-load database is R's own layout, which `rdata` does not open by itself: the .rdx file is
a gzip-compressed serialised index of (offset, length) pairs into the .rdb file, and each .rdb
record is a 4-byte big-endian uncompressed length, a 1-byte method ('Z' raw LZMA2, '2' bzip2,
'0' none; no byte at all for zlib) and the compressed serialised object.
"""

import bz2
import gzip
import json
import lzma
import sys
import zlib

import rdata


def record(blob: bytes) -> bytes:
    method = blob[4:5]
    if method == b"Z":
        # R writes raw LZMA2 at preset 9e (its compress level 3).
        filters = [{"id": lzma.FILTER_LZMA2, "preset": 9 | lzma.PRESET_EXTREME}]
        return lzma.decompress(blob[5:], format=lzma.FORMAT_RAW, filters=filters)
    if method == b"2":
        return bz2.decompress(blob[5:])
    if method == b"0":
        return blob[5:]
    return zlib.decompress(blob[4:])


def main() -> None:
    data_dir, name, text_column, label_column, out = sys.argv[1:]
    with open(f"{data_dir}/Rdata.rdx", "rb") as f:
        index = rdata.conversion.convert(rdata.parser.parse_data(gzip.decompress(f.read())))
    offsets = index["variables"]
    if name not in offsets:
        sys.exit(f"error: {data_dir} has no data set {name!r}")
    offset, length = (int(v) for v in offsets[name])
    with open(f"{data_dir}/Rdata.rdb", "rb") as f:
        f.seek(offset)
        frame = rdata.conversion.convert(rdata.parser.parse_data(record(f.read(length))))
    with open(out, "w", encoding="utf-8") as f:
        for text, label in zip(frame[text_column], frame[label_column], strict=True):
            row = {"text": str(text), "label": str(label)}
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
