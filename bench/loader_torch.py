#!/usr/bin/env python3
"""The loader row of `nml bench --only loader` in torchvision: `ImageFolder` with the training
transform (RandomResizedCrop(224), RandomHorizontalFlip, ToTensor, ImageNet Normalize) through a
`DataLoader` (batch 64, shuffled, `num_workers` worker processes), one pass over the folder after
a warm-up pass, median of three. Prints JSON: images/s and the main process's peak resident memory.

  python3 bench/loader_torch.py --folder DIR [--workers 2]
DIR is the folder `nml bench --only loader --loader-folder DIR` made (and timed). Needs torch and
torchvision (Debian's python3-torch, python3-torchvision).
"""
import argparse, json, os, resource, time

import torch
import torchvision
from torchvision import transforms


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--folder", required=True)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    a = p.parse_args()
    # The workers decode; the main process only collects, as nml's loop does.
    torch.set_num_threads(1)
    transform = transforms.Compose([
        transforms.RandomResizedCrop(224),
        transforms.RandomHorizontalFlip(),
        transforms.ToTensor(),
        transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
    ])
    data = torchvision.datasets.ImageFolder(a.folder, transform=transform)
    loader = torch.utils.data.DataLoader(data, batch_size=64, shuffle=True, num_workers=a.workers)

    def epoch():
        start = time.perf_counter()
        for x, _ in loader:
            assert x.shape[1:] == (3, 224, 224)
        return time.perf_counter() - start

    epoch()
    times = sorted(epoch() for _ in range(a.repeats))
    seconds = times[len(times) // 2]
    print(json.dumps({
        "torch": torch.__version__, "torchvision": torchvision.__version__, "workers": a.workers,
        "cores": len(os.sched_getaffinity(0)), "files": len(data),
        "images_per_second": len(data) / seconds, "seconds": seconds,
        "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }))


if __name__ == "__main__":
    main()
