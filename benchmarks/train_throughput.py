"""Training throughput (images/s) and accuracy of `edgekit train` on digits at 32x32.

Trains each architecture with the CLI's defaults through the library API, then
records the median per-epoch images/s and the validation top-1, with the machine
and versions, into benchmarks/results/train_throughput.md.

    python benchmarks/train_throughput.py [--epochs 8] [--archs compact_cnn,resnet18]
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

import edgekit
from edgekit.checkpoint import versions
from edgekit.benchmark.command import rerun_command


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--archs", default="compact_cnn,resnet18")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "train_throughput.md"))
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for arch in args.archs.split(","):
            t0 = time.perf_counter()
            ck = edgekit.train(arch, "digits", Path(tmp) / f"{arch}.pt", epochs=args.epochs, lr=0.1,
                               progress=False)
            wall = time.perf_counter() - t0
            rows.append((arch, ck.metrics["images_per_s"], ck.metrics["val_top1"], wall,
                         sum(p.numel() for p in ck.model.parameters())))
            print(rows[-1], file=sys.stderr)
    cmd = rerun_command(__file__, sys.argv[1:])
    lines = [
        "# Training throughput on digits (32x32)", "",
        f"Command: `{cmd}`  ",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, "
        f"torch threads {torch.get_num_threads()}, {platform.system()} {platform.release()}  ",
        f"Versions: {versions()}  ",
        f"Recorded: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {args.epochs} epochs, batch 64, SGD lr 0.1, "
        "warm-up 1 epoch + cosine; images/s is the median over epochs of training images per second "
        "(data loading and augmentation included).", "",
        "| arch | params (M) | train images/s | val top-1 (%) | wall (s) |",
        "|---|---:|---:|---:|---:|",
    ]
    lines += [f"| {a} | {p / 1e6:.2f} | {ips:.0f} | {acc:.2f} | {w:.0f} |" for a, ips, acc, w, p in rows]
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
