#!/usr/bin/env python3
"""Runs nml's criterion benchmarks and the numpy / PyTorch references on this machine, one after
the other, and prints the performance table of the README with its ratios.

Usage (from the repository root):
  python3 bench/compare.py            # everything (about 15 minutes on 2 cores)
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
    print("| features | nml spectrum (default: f64 Gram + eigen) | its Gram alone (floor) | ratio | Burn f32 Gram alone | numpy f32 Gram + eigvalsh | ratio | numpy full SVD | speed-up |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in numpy["results"]:
        size = r["size"]
        ours = criterion_seconds("spectrum", "spectrum_raw_auto", size)
        floor = criterion_seconds("spectrum", "gram_f64_host_only", size)
        burn_gram = criterion_seconds("spectrum", "gram_product_only", size)
        if ours is None or floor is None or burn_gram is None:
            print(f"| {size} | (no criterion result) |")
            continue
        print(f"| {size} | {ours:.2f} s | {floor:.2f} s | {ours / floor:.2f}x | {burn_gram:.2f} s | {r['gram_eigvalsh_seconds']:.2f} s | "
              f"{ours / r['gram_eigvalsh_seconds']:.2f}x | {r['svd_seconds']:.1f} s | {r['svd_seconds'] / ours:.1f}x |")
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
