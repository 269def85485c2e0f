"""What compression buys in time, measured against PyTorch in one run.

    python maintainers/benchmarks/bench_compression.py [--threads 1] [--min-run-time 0.3] [--device cuda]

1. Cheaper convolutions: a full 3×3 convolution (64 → 64 channels, 32×32, batch 8) against the 1×3 → 3×1 pair
   (P = 16), the depthwise-separable block and a 1×1 → 3×3 → 1×1 bottleneck (M = 16): MACs ÷ full and time ÷ full.
2. Low-rank Linear: 784 → 256 on a batch of 64 against its rank-k SVD factorization.
3. Pruning: the MNIST autoencoder of lecture 08 with 60 % of its hidden channels removed by
   ``course_lib.compression.prune_units`` against the same channels masked by ``torch.nn.utils.prune``
   (which keeps every tensor's shape), both ÷ the unpruned network.

Every time is the median of `torch.utils.benchmark`'s adaptive runs (`measure_latency`), forward only, no autograd.
"""

from __future__ import annotations

import argparse
import copy

import torch
from torch import nn
from torch.nn.utils import prune as torch_prune

from course_lib.compression import (DepthwiseSeparableConv, Separable1D, count_macs, find_chains, measure_latency,
                                    prune_units, svd_factorize_linear)
from course_lib.compression.experiments import autoencoder
from course_lib.runtime import choose_device


def row(name: str, macs: int, latency, base_macs: int, base_ms: float) -> str:
    return f"{name:<34}{macs:>14,}{macs / base_macs:>10.2f}{str(latency):>40}{latency.median_ms / base_ms:>10.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--min-run-time", type=float, default=0.3)
    parser.add_argument("--device", default=None, help="cpu, cuda, mps (default: COURSE_DEVICE or the best available)")
    args = parser.parse_args()
    device = choose_device(args.device)
    torch.manual_seed(0)
    header = f"{'':<34}{'MACs':>14}{'÷ full':>10}{'latency':>40}{'÷ full':>10}"

    def time(module, x):
        return measure_latency(copy.deepcopy(module).to(device).eval(), x.to(device), threads=args.threads,
                               min_run_time=args.min_run_time)

    print(f"torch {torch.__version__}, {device}, {args.threads} CPU thread(s)\n\n1. convolutions, 64 → 64 channels, 32×32, batch 8")
    x = torch.randn(8, 64, 32, 32)
    blocks = {
        "full 3×3 (nn.Conv2d)": nn.Conv2d(64, 64, 3, padding=1, bias=False),
        "1×3 → 3×1, P=16": Separable1D(64, 64, 3, 16),
        "depthwise separable": DepthwiseSeparableConv(64, 64, 3, norm=None, activation=None),
        "bottleneck 1×1 → 3×3 → 1×1, M=16": nn.Sequential(nn.Conv2d(64, 16, 1, bias=False),
                                                          nn.Conv2d(16, 16, 3, padding=1, bias=False),
                                                          nn.Conv2d(16, 64, 1, bias=False)),
    }
    print(header)
    base = None
    for name, block in blocks.items():
        macs, latency = count_macs(block, x).total_macs, time(block, x)
        base = base or (macs, latency.median_ms)
        print(row(name, macs, latency, *base))

    print("\n2. Linear 784 → 256, batch 64, and its rank-k factorizations")
    linear, xb = nn.Linear(784, 256), torch.randn(64, 784)
    print(header)
    latency = time(linear, xb)
    base = (count_macs(linear, xb).total_macs, latency.median_ms)
    print(row("nn.Linear", base[0], latency, *base))
    for k in (16, 64, 128, 193):
        factorized, _ = svd_factorize_linear(linear, rank=k)
        print(row(f"rank {k}", count_macs(factorized, xb).total_macs, time(factorized, xb), *base))

    print("\n3. autoencoder [32, 64, 32] channels, batch 64, 60 % of the hidden channels pruned")
    model, xa = autoencoder(), torch.rand(64, 1, 28, 28)
    pruned, masked = copy.deepcopy(model), copy.deepcopy(model)
    generator = torch.Generator().manual_seed(0)
    for name, chain in find_chains(pruned, xa[:1]).items():
        keep = torch.rand(chain.width, generator=generator).argsort() < round(0.4 * chain.width)
        prune_units(chain, keep)
        layer = dict(masked.named_modules())[name.rsplit(".", 1)[0] + ".conv"]
        dim = 1 if isinstance(layer, nn.ConvTranspose2d) else 0
        shape = [1] * layer.weight.dim()
        shape[dim] = -1
        torch_prune.custom_from_mask(layer, "weight", keep.float().reshape(shape).expand_as(layer.weight))
        torch_prune.remove(layer, "weight")
    print(header)
    latency = time(model, xa)
    base = (count_macs(model, xa).total_macs, latency.median_ms)
    print(row("unpruned", base[0], latency, *base))
    print(row("torch.nn.utils.prune (masked)", count_macs(masked, xa).total_macs, time(masked, xa), *base))
    print(row("course_lib prune_units (removed)", count_macs(pruned, xa).total_macs, time(pruned, xa), *base))


if __name__ == "__main__":
    main()
