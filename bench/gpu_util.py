#!/usr/bin/env python3
"""GPU utilisation while nml's bench runs, read per measurement.

  gpu_util.py sample OUT.csv [--interval 0.1]
      polls NVML (the nvidia-ml-py package, as nvidia-smi does) until killed, writing
      `unix_seconds,gpu_percent,memory_percent,memory_used_mib` rows.
  gpu_util.py windows OUT.csv LOG...
      reads the `window LABEL START END` lines `nml bench` prints to stderr and, for each,
      the samples inside it: a Markdown table of mean and peak utilisation.

NVML's GPU utilisation is the share of its own sample period (1/6 s to 1 s, by device) in
which at least one kernel ran, so windows shorter than a second are read coarsely; the table
gives the number of samples behind each row.
"""
import argparse, signal, sys, time


def sample(path, interval):
    try:
        import pynvml
    except ImportError:
        sys.exit("gpu_util.py: no NVML bindings (pip package nvidia-ml-py); no utilisation taken")
    pynvml.nvmlInit()
    handle = pynvml.nvmlDeviceGetHandleByIndex(0)
    running = True

    def stop(*_):
        nonlocal running
        running = False

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    with open(path, "w", buffering=1) as f:
        f.write("unix_seconds,gpu_percent,memory_percent,memory_used_mib\n")
        while running:
            rates = pynvml.nvmlDeviceGetUtilizationRates(handle)
            used = pynvml.nvmlDeviceGetMemoryInfo(handle).used / 2**20
            f.write(f"{time.time():.3f},{rates.gpu},{rates.memory},{used:.0f}\n")
            time.sleep(interval)


def windows(path, logs):
    rows = []
    with open(path) as f:
        next(f)
        for line in f:
            t, gpu, mem, used = line.strip().split(",")
            rows.append((float(t), float(gpu), float(mem), float(used)))
    print("| measurement | seconds | samples | GPU busy, mean | GPU busy, peak | memory bandwidth busy, mean | memory used, peak |")
    print("|---|---|---|---|---|---|---|")
    for log in logs:
        with open(log, errors="replace") as f:
            for line in f:
                parts = line.split()
                if len(parts) != 4 or parts[0] != "window":
                    continue
                label, start, end = parts[1], float(parts[2]), float(parts[3])
                inside = [r for r in rows if start <= r[0] <= end]
                if not inside:
                    print(f"| {label} | {end - start:.2f} | 0 | | | | |")
                    continue
                mean = lambda k: sum(r[k] for r in inside) / len(inside)
                print(f"| {label} | {end - start:.2f} | {len(inside)} | {mean(1):.0f}% | {max(r[1] for r in inside):.0f}% "
                      f"| {mean(2):.0f}% | {max(r[3] for r in inside):.0f} MiB |")


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("sample")
    s.add_argument("out")
    s.add_argument("--interval", type=float, default=0.1)
    w = sub.add_parser("windows")
    w.add_argument("samples")
    w.add_argument("logs", nargs="+")
    a = p.parse_args()
    if a.command == "sample":
        sample(a.out, a.interval)
    else:
        windows(a.samples, a.logs)


if __name__ == "__main__":
    main()
