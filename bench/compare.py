#!/usr/bin/env python3
"""Runs nml's criterion benchmarks and the numpy / PyTorch references on this machine, one after
the other, and prints the performance table of the README with its ratios.

Usage (from the repository root):
  python3 bench/compare.py            # everything (about 17 minutes on 2 cores)
  python3 bench/compare.py --skip-cargo   # reuse the last criterion results
Needs numpy (and torch for the tuning rows): pip install numpy torch
"""
import argparse, json, os, subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def criterion_seconds(group, bench, param):
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    path = target / "criterion" / group / bench / param / "new" / "estimates.json"
    if not path.exists():
        return None
    return json.loads(path.read_text())["median"]["point_estimate"] / 1e9


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--skip-cargo", action="store_true")
    p.add_argument("--skip-torch", action="store_true")
    a = p.parse_args()
    if not a.skip_cargo:
        for bench in ["spectrum", "tune"]:
            subprocess.run(["cargo", "bench", "--profile", "dev", "-p", "nml-core", "--bench", bench], cwd=ROOT, check=True)
    numpy = json.loads(subprocess.run([sys.executable, str(ROOT / "bench/spectrum_numpy.py")], check=True, capture_output=True, text=True).stdout)
    print(f"numpy {numpy['numpy']}")
    print("| features | nml `auto` (default) | nml `fast` | nml `exact` | numpy f32 Gram + eigvalsh | `auto` / that | numpy paper mode + Gram + eigvalsh | `auto` / that | numpy full SVD | SVD / `auto` |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in numpy["results"]:
        size = r["size"]
        auto, fast, exact = (criterion_seconds("spectrum", f"paper_{p}", size) for p in ["auto", "fast", "exact"])
        if auto is None or fast is None or exact is None:
            print(f"| {size} | (no criterion result) |")
            continue
        floor, paper = r["gram_eigvalsh_seconds"], r["paper_gram_eigvalsh_seconds"]
        print(f"| {size} | {auto:.2f} s | {fast:.2f} s | {exact:.2f} s | {floor:.2f} s | {auto / floor:.2f}x | {paper:.2f} s | "
              f"{auto / paper:.2f}x | {r['svd_seconds']:.1f} s | {r['svd_seconds'] / auto:.1f}x |")
    for m in [512, 1024, 2048]:
        f = criterion_seconds("eigenvalues", "faer_self_adjoint_eigenvalues", str(m))
        n = criterion_seconds("eigenvalues", "nalgebra_symmetric_eigenvalues", str(m))
        if f and n:
            print(f"eigenvalues {m}x{m}: faer {f * 1e3:.0f} ms, nalgebra {n * 1e3:.0f} ms")
    if not a.skip_torch:
        torch = json.loads(subprocess.run([sys.executable, str(ROOT / "bench/nmtune_torch.py")], check=True, capture_output=True, text=True).stdout)
        print(f"\ntorch {torch['torch']} ({torch['threads']} threads)")
        print("| epoch on 50000 x 512 | nml (flex CPU) | PyTorch CPU | speed-up |")
        print("|---|---|---|---|")
        for method in ["lp", "nmtune"]:
            ours = criterion_seconds("tune_epoch", f"{method}_50000x512", "")
            theirs = torch[f"{method}_epoch_seconds"]
            if ours:
                print(f"| {method} | {ours:.2f} s | {theirs:.2f} s | {theirs / ours:.2f}x |")


if __name__ == "__main__":
    main()
