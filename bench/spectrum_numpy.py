#!/usr/bin/env python3
"""What a careful numpy user would run for a feature spectrum, on the matrices of `nml bench`'s
spectrum section (same shape and distribution: uniform noise with column scales
1 / (1 + j / 16)): the f32 Gram + eigvalsh of the matrix as it is (the floor), the same after
nml's paper-mode preprocessing (the work nml's spectrum rows do), and the full SVD. Prints
seconds (median of --repeats) as JSON.
Usage: spectrum_numpy.py [--sizes 20000x1024,50000x2048] [--repeats 3]
"""
import argparse, json, time

import numpy as np


def features(n, d, seed=0):
    rng = np.random.default_rng(seed)
    scale = (1.0 / (1.0 + np.arange(d) / 16.0)).astype(np.float32)
    return ((rng.random((n, d), dtype=np.float32) - 0.5) * scale).astype(np.float32)


def paper_mode(x):
    """nml's default preprocessing: rows L2-normalised, then each row minus its own mean."""
    u = x / np.linalg.norm(x, axis=1, keepdims=True)
    return u - u.mean(axis=1, keepdims=True)


def timed(fn, repeats):
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return sorted(times)[len(times) // 2]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--sizes", default="20000x1024,50000x2048")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--svd-repeats", type=int, default=1)
    a = p.parse_args()
    out = {"numpy": np.__version__, "results": []}
    for size in a.sizes.split(","):
        n, d = map(int, size.split("x"))
        x = features(n, d)
        out["results"].append({
            "size": size,
            "gram_seconds": timed(lambda: x.T @ x, a.repeats),
            "gram_eigvalsh_seconds": timed(lambda: np.linalg.eigvalsh(x.T @ x), a.repeats),
            "paper_gram_eigvalsh_seconds": timed(lambda: np.linalg.eigvalsh((lambda u: u.T @ u)(paper_mode(x))), a.repeats),
            "svd_seconds": timed(lambda: np.linalg.svd(x, compute_uv=False), a.svd_repeats),
        })
    print(json.dumps(out))


if __name__ == "__main__":
    main()
