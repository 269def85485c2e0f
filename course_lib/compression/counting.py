"""Counting what a network costs: parameters, multiply-accumulates, and measured latency.

**MACs, not FLOPs.** One multiply-accumulate (MAC) is a ← a + x·w: one multiplication and one addition, i.e. two
floating-point operations. This course counts MACs and writes FLOPs = 2·MACs wherever FLOPs are meant. The ResNet
paper's "3.6 GFLOPs" for ResNet-34 (and the thesis quoting it) are in fact MACs; counters disagree for this reason
(fvcore and ptflops report MACs, `torch.utils.flop_counter` reports 2 per MAC).

Formulas (per sample; a convolution's output is H × W pixels, its input H_in × W_in; biases, norms and activations
are counted separately as element-wise operations, not as MACs):

=========================  ======================================================
Linear(in, out)            in · out
Conv2d(K → L, N×N)         H · W · N² · (K / groups) · L
1×N then N×1, P between    H · W · N · P · (K + L)
depthwise separable, I     H · W · K · I · (N² + L)
ConvTranspose2d(K → L)     H_in · W_in · N² · K · (L / groups)
=========================  ======================================================

A transposed convolution scatters each *input* pixel into an N×N patch, so its cost follows the input size; thop and
Torch-Pruning's counters use the output size and overcount a stride-2 layer by stride² = 4.

MACs predict energy and memory traffic better than time: measure latency (`measure_latency`) before believing a
speed-up. It uses `torch.utils.benchmark`, which warms up, fixes the thread count and reports the median and the
interquartile range of many runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn
from torch.utils import benchmark
from torch.utils.flop_counter import FlopCounterMode

from course_lib.compression.activations import observe


def count_params(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameter entries (shared parameters counted once)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def linear_macs(in_features: int, out_features: int) -> int:
    return in_features * out_features


def conv_macs(N: int, K: int, L: int, H: int = 1, W: int = 1, groups: int = 1) -> int:
    """H·W·N²·(K/groups)·L for an N×N convolution with K inputs and L outputs on an H×W output."""
    return H * W * N * N * (K // groups) * L


def separable1d_macs(N: int, K: int, P: int, L: int, H: int = 1, W: int = 1) -> int:
    """H·W·N·P·(K + L) for 1×N (K → P) then N×1 (P → L)."""
    return H * W * N * P * (K + L)


def depthwise_separable_macs(N: int, K: int, I: int, L: int, H: int = 1, W: int = 1) -> int:
    """H·W·K·I·(N² + L): depthwise N×N with depth multiplier I, then 1×1 from K·I to L channels."""
    return H * W * K * I * (N * N + L)


def conv_transpose_macs(N: int, K: int, L: int, H_in: int, W_in: int, groups: int = 1) -> int:
    """H_in·W_in·N²·K·(L/groups): every input pixel of every input channel is spread over N×N outputs."""
    return H_in * W_in * N * N * K * (L // groups)


@dataclass
class MacRow:
    name: str
    kind: str
    output_shape: tuple[int, ...]
    params: int
    macs: int
    elementwise: int  # operations of norms, activations, pooling: not MACs


@dataclass
class MacTable:
    """Per-module costs of one forward pass on the example input (its batch included)."""

    rows: list[MacRow] = field(default_factory=list)

    @property
    def total_macs(self) -> int:
        return sum(r.macs for r in self.rows)

    @property
    def flops(self) -> int:
        """2 · MACs (one multiplication and one addition each)."""
        return 2 * self.total_macs

    @property
    def total_params(self) -> int:
        return sum(r.params for r in self.rows)

    @property
    def elementwise(self) -> int:
        return sum(r.elementwise for r in self.rows)

    def __str__(self) -> str:
        lines = [f"{'module':<16}{'type':<18}{'output':<18}{'params':>10}{'MACs':>13}"]
        for r in self.rows:
            lines.append(f"{r.name:<16}{r.kind:<18}{str(list(r.output_shape)):<18}{r.params:>10,}{r.macs:>13,}")
        lines.append(f"{'total':<52}{self.total_params:>10,}{self.total_macs:>13,}   (= {self.flops:,} FLOPs)")
        return "\n".join(lines)


def _module_macs(m: nn.Module, x: Tensor, y: Tensor) -> tuple[int, int]:
    """(MACs, element-wise operations) of one call of a leaf module."""
    if isinstance(m, nn.Linear):
        return x.numel() // m.in_features * linear_macs(m.in_features, m.out_features), 0
    if isinstance(m, nn.Conv2d):
        N = m.kernel_size[0] * m.kernel_size[1]
        return y.numel() * N * (m.in_channels // m.groups), 0  # y.numel() = batch·L·H·W
    if isinstance(m, nn.ConvTranspose2d):
        N = m.kernel_size[0] * m.kernel_size[1]
        return x.numel() * N * (m.out_channels // m.groups), 0  # x.numel() = batch·K·H_in·W_in
    if isinstance(m, (nn.Flatten, nn.Identity, nn.Dropout)):
        return 0, 0
    return 0, y.numel()


def count_macs(model: nn.Module, example_input: Tensor) -> MacTable:
    """Run ``example_input`` through ``model`` (eval mode, restored afterwards) and count each leaf module's MACs."""
    table = MacTable()
    leaves = [(n, m) for n, m in model.named_modules() if not list(m.children())]

    def hook(name):
        def record(m, inputs, output):
            macs, elementwise = _module_macs(m, inputs[0], output)
            params = sum(p.numel() for p in m.parameters(recurse=False))
            table.rows.append(MacRow(name or type(m).__name__, type(m).__name__, tuple(output.shape), params, macs,
                                     elementwise))
        return record

    observe(model, [example_input], {m: hook(n) for n, m in leaves})
    return table


def flop_counter_macs(model: nn.Module, example_input: Tensor) -> int:
    """PyTorch's own count, ``FlopCounterMode().get_total_flops() / 2``, as a cross-check of `count_macs`."""
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(example_input)
    return counter.get_total_flops() // 2


@dataclass
class Latency:
    median_ms: float
    iqr_ms: float  # interquartile range of the runs
    runs: int

    def __str__(self) -> str:
        return f"{self.median_ms:.3f} ms (IQR {self.iqr_ms:.3f} ms, {self.runs} runs)"


def measure_latency(model: nn.Module, example_input: Tensor, threads: int = 1, min_run_time: float = 0.2) -> Latency:
    """Median forward time of ``model`` on ``example_input`` without autograd, via `torch.utils.benchmark.Timer`.

    ``adaptive_autorange`` warms up, picks a block size, and times blocks until at least ``min_run_time`` seconds
    and four blocks have run and the interquartile range is within 10 % of the median (or 10·min_run_time passed).
    """
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be a positive integer, got {threads!r}")
    if not min_run_time > 0:
        raise ValueError(f"min_run_time must be positive (seconds), got {min_run_time!r}")

    def forward():
        with torch.no_grad():
            model(example_input)

    timer = benchmark.Timer(stmt="forward()", globals={"forward": forward}, num_threads=threads)
    m = timer.adaptive_autorange(threshold=0.1, min_run_time=min_run_time, max_run_time=10 * min_run_time)
    return Latency(m.median * 1e3, m.iqr * 1e3, len(m.times))


def state_dict_bytes(module: nn.Module) -> int:
    """Bytes of every tensor in ``module.state_dict()``: what a saved checkpoint holds."""
    return sum(t.numel() * t.element_size() for t in module.state_dict().values())

