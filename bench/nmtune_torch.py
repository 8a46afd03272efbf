#!/usr/bin/env python3
"""The same NMTune / linear-probe epoch as `nml bench`'s tuning section, in PyTorch (on the CPU by
default; `--device cuda` for a GPU, timed to the end of its queued work).

Recipe (the paper's): features 50000 x 512, 10 classes, batch 64, AdamW (lr 1e-3 NMTune /
1e-2 LP, weight decay 1e-4), per-step cosine; NMTune: Z = s * MLP(F) + F with
MLP = Linear(D,4D) -> BatchNorm -> ReLU -> Linear(4D,D), loss = CE + 1.0 * MSE(norm Z, norm F)
+ 0.04 * COV(Z) - 0.001 * mean top-5 share of singular values of Z.
Prints seconds per epoch (median of --repeats epochs) as JSON.
Usage: nmtune_torch.py [--n 50000] [--d 512] [--threads 2] [--repeats 3] [--device cpu|cuda]
"""
import argparse, json, math, time

import torch
import torch.nn as nn
import torch.nn.functional as F


class NMTune(nn.Module):
    def __init__(self, d, classes, hidden):
        super().__init__()
        self.up = nn.Linear(d, hidden)
        self.bn = nn.BatchNorm1d(hidden)
        self.down = nn.Linear(hidden, d)
        self.scale = nn.Parameter(torch.ones(d))
        self.head = nn.Linear(d, classes)

    def forward(self, f):
        z = self.scale * self.down(F.relu(self.bn(self.up(f)))) + f
        return z, self.head(z)


def covariance_penalty(z):
    b, d = z.shape
    zc = z - z.mean(0, keepdim=True)
    cov = zc.T @ zc / (b - 1)
    off = cov.pow(2).sum() - torch.diagonal(cov).pow(2).sum()
    return off / d


def top_k_share(z, k):
    s = torch.linalg.svdvals(z)
    return (s[:k] / s.sum()).mean()


def finish(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def epoch(method, x, y, classes, seed):
    torch.manual_seed(seed)
    n, d = x.shape
    if method == "nmtune":
        model, lr = NMTune(d, classes, 4 * d), 1e-3
    else:
        model, lr = nn.Linear(d, classes), 1e-2
    model = model.to(x.device)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4, eps=1e-8)
    batch = 64
    steps = n // batch + (1 if n % batch >= 2 else 0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda t: 0.5 * (1 + math.cos(math.pi * min(t / steps, 1.0))))
    order = torch.randperm(n).to(x.device)
    finish(x.device)
    start = time.perf_counter()
    for i in range(0, n, batch):
        idx = order[i:i + batch]
        if len(idx) < 2:
            continue
        f, t = x[idx], y[idx]
        if method == "nmtune":
            z, logits = model(f)
            loss = (F.cross_entropy(logits, t)
                    + 1.0 * F.mse_loss(F.normalize(z, dim=1), F.normalize(f, dim=1))
                    + 0.04 * covariance_penalty(z)
                    - 0.001 * top_k_share(z, 5))
        else:
            loss = F.cross_entropy(model(f), t)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    finish(x.device)
    return time.perf_counter() - start


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=50000)
    p.add_argument("--d", type=int, default=512)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--device", default="cpu")
    a = p.parse_args()
    device = torch.device(a.device)
    torch.set_num_threads(a.threads)
    torch.set_flush_denormal(True)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(a.n, a.d, generator=g) - 0.5
    teacher = torch.rand(a.d, 10, generator=g) - 0.5
    y = (x @ teacher).argmax(1)
    x, y = x.to(device), y.to(device)
    out = {"torch": torch.__version__, "device": a.device, "threads": a.threads, "n": a.n, "d": a.d}
    if device.type == "cuda":
        out["gpu"] = torch.cuda.get_device_name(device)
    for method in ["lp", "nmtune"]:
        times = sorted(epoch(method, x, y, 10, r) for r in range(a.repeats))
        out[f"{method}_epoch_seconds"] = times[len(times) // 2]
    print(json.dumps(out))


if __name__ == "__main__":
    main()
