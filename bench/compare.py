#!/usr/bin/env python3
"""Runs `nml bench` (spectrum, eigen solver, tuning, standard-model and loader sections) and the numpy / PyTorch
references on this machine, one after the other, and prints the comparison tables of
docs/performance.md with their ratios.

Usage (from the repository root, after building nml):
  python3 bench/compare.py                 # everything (about 20 minutes on 2 cores)
  python3 bench/compare.py --nml FILE      # reuse the timings of an earlier `nml bench --json FILE`
                                           # (run with --loader-folder target/bench-jpegs for the loader row)
  python3 bench/compare.py --out F.md      # also write the tables to F.md
Needs numpy (and torch for the tuning rows): pip install numpy torch
"""
import argparse, json, os, subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
# The JPEGs the loader rows of nml and torchvision both read.
JPEGS = TARGET / "bench-jpegs"


def nml_timings(path):
    if path is None:
        path = TARGET / "nml-bench.json"
        subprocess.run(["cargo", "run", "-p", "nml", "--", "bench", "--backend", "cpu", "--only", "spectrum,eigen,tune,models,loader",
                        "--loader-folder", str(JPEGS), "--json", str(path)], cwd=ROOT, check=True)
    data = json.loads(Path(path).read_text())
    return data["device"], {t["name"]: t["seconds"] for t in data["timings"]}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--nml", help="an `nml bench --json` file to read instead of running the bench")
    p.add_argument("--skip-torch", action="store_true")
    p.add_argument("--out", help="also write the tables (Markdown) here")
    a = p.parse_args()
    lines = []

    def print(*args):  # every table line goes to stdout and, with --out, to the file
        text = " ".join(str(x) for x in args)
        lines.append(text)
        sys.stdout.write(text + "\n")

    device, ours = nml_timings(a.nml)
    print(f"nml on {device}")
    numpy = json.loads(subprocess.run([sys.executable, str(ROOT / "bench/spectrum_numpy.py")], check=True, capture_output=True, text=True).stdout)
    print(f"numpy {numpy['numpy']}")
    print("| features | nml `auto` (default) | nml `fast` | nml `exact` | numpy f32 Gram + eigvalsh | `auto` / that | numpy paper mode + Gram + eigvalsh | `auto` / that | numpy full SVD | SVD / `auto` |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in numpy["results"]:
        size = r["size"]
        auto, fast, exact = (ours.get(f"spectrum-{p}-{size}") for p in ["auto", "fast", "exact"])
        if auto is None or fast is None or exact is None:
            print(f"| {size} | (not in the nml timings) |")
            continue
        floor, paper = r["gram_eigvalsh_seconds"], r["paper_gram_eigvalsh_seconds"]
        print(f"| {size} | {auto:.2f} s | {fast:.2f} s | {exact:.2f} s | {floor:.2f} s | {auto / floor:.2f}x | {paper:.2f} s | "
              f"{auto / paper:.2f}x | {r['svd_seconds']:.1f} s | {r['svd_seconds'] / auto:.1f}x |")
    for m in [512, 1024, 2048]:
        f, n = ours.get(f"eigen-faer-{m}"), ours.get(f"eigen-nalgebra-{m}")
        if f and n:
            print(f"eigenvalues {m}x{m}: faer {f * 1e3:.0f} ms, nalgebra {n * 1e3:.0f} ms")
    if not a.skip_torch:
        torch = json.loads(subprocess.run([sys.executable, str(ROOT / "bench/nmtune_torch.py")], check=True, capture_output=True, text=True).stdout)
        print(f"\ntorch {torch['torch']} ({torch['threads']} threads)")
        print("| epoch on 50000 x 512 | nml (flex CPU) | PyTorch CPU | speed-up |")
        print("|---|---|---|---|")
        for method in ["lp", "nmtune"]:
            mine = ours.get(f"tune-{method}-50000x512")
            theirs = torch[f"{method}_epoch_seconds"]
            if mine:
                print(f"| {method} | {mine:.2f} s | {theirs:.2f} s | {theirs / mine:.2f}x |")
        models = json.loads(subprocess.run([sys.executable, str(ROOT / "bench/models_torch.py")], check=True, capture_output=True, text=True).stdout)
        print("\n| standard model (batch 32 at 224 px; ResNet-18 step: batch 128 at 32 px) | nml images/s | PyTorch images/s | nml / PyTorch | PyTorch peak RSS |")
        print("|---|---|---|---|---|")
        batches = {"models-train-resnet18": 128}
        for row in models["results"]:
            mine = ours.get(row["name"])
            if mine:
                ours_rate = batches.get(row["name"], 32) / mine
                print(f"| {row['name'][7:]} | {ours_rate:.1f} | {row['images_per_second']:.1f} | "
                      f"{ours_rate / row['images_per_second']:.2f}x | {row['peak_mib']:.0f} MiB |")
        mine = ours.get("loader-jpeg-224")
        if mine and JPEGS.is_dir():
            loader = json.loads(subprocess.run([sys.executable, str(ROOT / "bench/loader_torch.py"), "--folder", str(JPEGS)],
                                               check=True, capture_output=True, text=True).stdout)
            ours_rate = loader["files"] / mine
            print(f"\n| loader: {loader['files']} JPEGs, RandomResizedCrop 224 + flip + normalise, batch 64 | nml images/s | "
                  f"torchvision {loader['torchvision']} DataLoader({loader['workers']} workers) images/s | nml / torchvision |")
            print("|---|---|---|---|")
            print(f"| decode + augment | {ours_rate:.1f} | {loader['images_per_second']:.1f} | {ours_rate / loader['images_per_second']:.2f}x |")
    if a.out:
        tmp = Path(a.out + ".tmp")
        tmp.write_text("# nml against numpy and PyTorch\n\n" + "\n".join(lines) + "\n")
        tmp.replace(a.out)


if __name__ == "__main__":
    main()
