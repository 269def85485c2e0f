"""Forward + backward time of course_lib's layers against torch.nn's, in one run.

    python maintainers/benchmarks/bench_layers.py [--device cpu|cuda] [--rounds 15]

BatchNorm2d in training mode on a batch of 64 × 64 channels × 32 × 32 (float32), and Dropout(0.5) on the
same tensor: forward, a backward of a fixed upstream gradient, timed together. The two implementations
take turns in interleaved rounds; each ratio is the median over rounds of course_lib / torch.
"""

from __future__ import annotations

import argparse
import statistics

import torch

from course_lib.layers import BatchNorm2d, Dropout
from course_lib.runtime import choose_device, default_threads
from course_lib.timing import median_time


def forward_backward(layer, x, upstream):
    def run():
        x.grad = None
        layer(x).backward(upstream)
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default=None)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--shape", type=int, nargs=4, default=[64, 64, 32, 32])
    args = parser.parse_args()
    torch.set_num_threads(default_threads())
    device = choose_device(args.device)
    x = torch.randn(args.shape, device=device, requires_grad=True)
    upstream = torch.randn(args.shape, device=device)
    channels = args.shape[1]
    pairs = {
        "BatchNorm2d": (BatchNorm2d(channels).to(device), torch.nn.BatchNorm2d(channels).to(device)),
        "Dropout(0.5)": (Dropout(0.5), torch.nn.Dropout(0.5)),
    }
    print(f"input {tuple(args.shape)} float32, device {device}, {torch.get_num_threads()} torch thread(s), "
          f"forward + backward, {args.rounds} interleaved rounds")
    print(f"{'layer':<14} {'torch.nn':>10} {'course_lib':>11} {'ratio':>6}")
    for name, (ours, theirs) in pairs.items():
        times = {"ours": [], "torch": []}
        run = {"ours": forward_backward(ours, x, upstream), "torch": forward_backward(theirs, x, upstream)}
        for _ in range(args.rounds):
            for key in ("torch", "ours"):
                times[key].append(median_time(run[key], repeats=3, warmup=1, device=device))
        ratio = statistics.median(a / b for a, b in zip(times["ours"], times["torch"]))
        print(f"{name:<14} {1e3 * statistics.median(times['torch']):>7.2f} ms {1e3 * statistics.median(times['ours']):>8.2f} ms {ratio:>5.2f}×")


if __name__ == "__main__":
    main()
