"""Step time of a g_∞ block against a fixed residual stack of the same active depth, and the cost of evaluating
inactive sub-layers as the reference implementation does.

    python maintainers/benchmarks/bench_ginfty.py [--device cpu|cuda] [--rounds 15]

All three models are the XOR experiment's g_∞ block (f_i = Dropout(BN(Linear(24, 24))), h = ReLU) on a batch
of 1000, with w = 1.0 (one active sub-layer) and capacity 5:

- residual stack: the same single sub-layer as a plain residual block h(x + f_0(x)), no gate, no w;
- g_∞, skipping: course_lib's default, evaluates only the ⌈w⌉ = 1 active sub-layer;
- g_∞, run_inactive: evaluates all 5 sub-layers, the 4 inactive ones multiplied by δ = 0 (the reference).

One training step = forward, loss with the regularizer, backward, Adam step, growth check. Interleaved rounds;
ratios are medians over rounds, against the residual stack.
"""

from __future__ import annotations

import argparse
import statistics

import torch
from torch import nn

from course_lib.ginfty import GInfinity, grow_all, regularization
from course_lib.ginfty.experiments import KERAS_BN, keras_init
from course_lib.layers import BatchNorm1d, Dropout
from course_lib.runtime import choose_device, default_threads
from course_lib.timing import median_time


def sublayer(i: int) -> nn.Module:
    return keras_init(nn.Sequential(nn.Linear(24, 24), BatchNorm1d(24, **KERAS_BN), Dropout(0.1)))


class ResidualStack(nn.Module):
    def __init__(self, depth: int):
        super().__init__()
        self.blocks = nn.ModuleList(sublayer(i) for i in range(depth))

    def forward(self, x):
        for f in self.blocks:
            x = torch.relu(x + f(x))
        return x


def step_function(model, x, y):
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step():
        loss = nn.functional.mse_loss(model(x), y) + regularization(model)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        grow_all(model, optimizer)
    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default=None)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    torch.set_num_threads(default_threads())
    device = choose_device(args.device)
    torch.manual_seed(0)
    x, y = torch.randn(1000, 24, device=device), torch.randn(1000, 24, device=device)
    models = {
        "residual stack (1 block)": ResidualStack(1),
        "g_infty, skipping inactive": GInfinity(sublayer, w_init=1.0, lambda_w=1e-4, lambda_f=1e-8),
        "g_infty, run_inactive": GInfinity(sublayer, w_init=1.0, lambda_w=1e-4, lambda_f=1e-8, run_inactive=True),
    }
    steps = {name: step_function(model.to(device), x, y) for name, model in models.items()}
    times = {name: [] for name in models}
    for _ in range(args.rounds):
        for name, step in steps.items():
            times[name].append(median_time(step, repeats=5, warmup=1, device=device))
    reference = "residual stack (1 block)"
    print(f"batch 1000 × 24, w = 1 (capacity 5), device {device}, {torch.get_num_threads()} torch thread(s), {args.rounds} rounds")
    for name, values in times.items():
        ratio = statistics.median(a / b for a, b in zip(values, times[reference]))
        print(f"{name:<28} {1e3 * statistics.median(values):7.3f} ms per step   {ratio:5.2f}× the residual stack")


if __name__ == "__main__":
    main()
