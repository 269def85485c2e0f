"""Optimizer step time: course_lib.optim against torch.optim on ResNet-18's parameters.

    python maintainers/benchmarks/bench_optim.py [--device cpu|cuda] [--rounds 15] [--steps 3]

ResNet-18 (torchvision, 11.7 M parameters in 62 tensors) gets fixed random gradients. For each rule, four
optimizers step on their own copy of the parameters: torch.optim's default implementation (a
per-parameter loop on the CPU, multi-tensor kernels on CUDA), torch's ``fused=True`` kernels (where torch has them:
not for RMSprop and Adadelta), course_lib's
default multi-tensor path and its readable per-parameter path. They are timed in interleaved rounds (a
median of a few steps each, round after round), so that a busy moment of the machine hits all of them
alike; each ratio is the median over rounds of (course_lib time / torch time) within the round. Each rule
runs in a fresh Python process: memory that earlier cases allocated and freed can come back in larger
pages, which speeds up every memory-bound loop and would favour whichever case runs last.
"""

from __future__ import annotations

import argparse
import inspect
import statistics
import subprocess
import sys

import torch
import torchvision

from course_lib import optim
from course_lib.runtime import choose_device, default_threads
from course_lib.timing import median_time

CASES = {
    "SGD(momentum=0.9)": (optim.SGD, torch.optim.SGD, dict(lr=0.01, momentum=0.9)),
    "Adam": (optim.Adam, torch.optim.Adam, dict(lr=1e-3)),
    "AdamW": (optim.AdamW, torch.optim.AdamW, dict(lr=1e-3)),
    "Adagrad": (optim.Adagrad, torch.optim.Adagrad, dict(lr=1e-2)),
    "RMSprop": (optim.RMSprop, torch.optim.RMSprop, dict(lr=1e-2)),
    "RMSprop(centered, momentum=0.9)": (optim.RMSprop, torch.optim.RMSprop, dict(lr=1e-2, centered=True, momentum=0.9)),
    "Adadelta": (optim.Adadelta, torch.optim.Adadelta, dict()),
}


def interleaved_times(optimizers: dict, device, rounds: int, steps: int) -> dict[str, list[float]]:
    """Per round, the median step time of each optimizer; the optimizers take turns within a round."""
    for optimizer in optimizers.values():  # first steps create the state
        median_time(optimizer.step, repeats=1, warmup=2, device=device)
    times = {name: [] for name in optimizers}
    for _ in range(rounds):
        for name, optimizer in optimizers.items():
            times[name].append(median_time(optimizer.step, repeats=steps, warmup=0, device=device))
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default=None)
    parser.add_argument("--only", choices=list(CASES), help="time one rule in this process (used internally)")
    parser.add_argument("--rounds", type=int, default=15, help="interleaved rounds")
    parser.add_argument("--steps", type=int, default=3, help="steps per optimizer and round (their median counts)")
    args = parser.parse_args()
    torch.set_num_threads(default_threads())
    device = choose_device(args.device)
    model = torchvision.models.resnet18().to(device)
    params = list(model.parameters())
    generator = torch.Generator().manual_seed(0)
    for p in params:
        p.grad = torch.randn(p.shape, generator=generator).to(device)
    if args.only is None:
        print(f"ResNet-18: {sum(p.numel() for p in params) / 1e6:.1f} M parameters in {len(params)} tensors, "
              f"device {device}, {torch.get_num_threads()} torch thread(s), {args.rounds} rounds of {args.steps} steps")
        print(f"{'optimizer':<32} {'torch default':>14} {'torch fused':>12} {'course_lib':>11} {'ratio':>6} "
              f"{'readable':>9} {'ratio':>6} {'vs fused':>8}", flush=True)
        for name in CASES:
            subprocess.run([sys.executable, __file__, "--only", name, "--rounds", str(args.rounds), "--steps", str(args.steps)]
                           + (["--device", args.device] if args.device else []), check=True)
        return
    for name, (ours, theirs, kwargs) in [(args.only, CASES[args.only])]:
        has_fused = "fused" in inspect.signature(theirs).parameters
        kinds = ("default", "fused", "ours", "readable") if has_fused else ("default", "ours", "readable")
        copies = {key: [p.detach().clone().requires_grad_() for p in params] for key in kinds}
        for key, tensors in copies.items():
            for p, original in zip(tensors, params):
                p.grad = original.grad.clone()
        optimizers = {
            "default": theirs(copies["default"], **kwargs),
            "ours": ours(copies["ours"], **kwargs),
            "readable": ours(copies["readable"], foreach=False, **kwargs),
        }
        if has_fused:
            optimizers["fused"] = theirs(copies["fused"], fused=True, **kwargs)
        t = interleaved_times(optimizers, device, args.rounds, args.steps)
        ratio = lambda a, b: statistics.median(x / y for x, y in zip(t[a], t[b]))
        ms = {key: 1e3 * statistics.median(values) for key, values in t.items()}
        fused_ms = f"{ms['fused']:>9.2f} ms" if has_fused else f"{'—':>12}"
        vs_fused = f"{ratio('ours', 'fused'):>7.2f}×" if has_fused else f"{'—':>8}"
        print(f"{name:<32} {ms['default']:>11.2f} ms {fused_ms} {ms['ours']:>8.2f} ms "
              f"{ratio('ours', 'default'):>5.2f}× {ms['readable']:>6.2f} ms {ratio('readable', 'default'):>5.2f}× "
              f"{vs_fused}")


if __name__ == "__main__":
    main()
