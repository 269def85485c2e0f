"""Timing code honestly on a CPU or a GPU: the median of repeated runs, with the device synchronized.

A GPU runs kernels asynchronously: ``y = x @ w`` returns before the product is computed, so a
stopwatch around it measures only the launch. `median_time` therefore waits for the device
(``torch.cuda.synchronize``) before reading the clock, runs the code a few times first to warm up
caches and lazy initialization, and reports the median, which one slow run (another process taking
the core) does not move.

Comparing two pieces of code asks for more care. Timed one after the other, a burst of load from
another process can land on one of them only and fake a speed-up. `paired_times` therefore runs
them in alternation, ``a`` then ``b``, ``repeats`` times, and reports besides each median the median
of the per-pair ratios t_b / t_a: both halves of a pair see the same machine, so the ratio holds
still while the load changes.
"""

from __future__ import annotations

import statistics
import time
from typing import Callable

import torch


def synchronize(device: torch.device | str | None) -> None:
    """Wait until every kernel queued on ``device`` has finished (a no-op on the CPU)."""
    device = torch.device(device) if device is not None else torch.device("cpu")
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def _check_counts(repeats: int, warmup: int) -> None:
    if not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats must be a positive int, got {repeats!r}")
    if not isinstance(warmup, int) or warmup < 0:
        raise ValueError(f"warmup must be a non-negative int, got {warmup!r}")


def _seconds(fn: Callable[[], object], device: torch.device | str | None) -> float:
    start = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - start


def median_time(
    fn: Callable[[], object],
    repeats: int = 11,
    warmup: int = 1,
    device: torch.device | str | None = None,
) -> float:
    """Median wall-clock seconds of ``fn()`` over ``repeats`` runs, after ``warmup`` untimed runs."""
    _check_counts(repeats, warmup)
    for _ in range(warmup):
        fn()
    synchronize(device)
    return statistics.median(_seconds(fn, device) for _ in range(repeats))


def paired_times(
    a: Callable[[], object],
    b: Callable[[], object],
    repeats: int = 11,
    warmup: int = 1,
    device: torch.device | str | None = None,
) -> dict[str, float]:
    """Time ``a()`` and ``b()`` in alternation; their median seconds and the median ratio t_b / t_a.

    Returns ``{"a": median t_a, "b": median t_b, "ratio": median over the pairs of t_b / t_a}``.
    ``ratio`` > 1 means ``b`` is the slower one.
    """
    _check_counts(repeats, warmup)
    for _ in range(warmup):
        a()
        b()
    synchronize(device)
    pairs = [(_seconds(a, device), _seconds(b, device)) for _ in range(repeats)]
    return {
        "a": statistics.median(t_a for t_a, _ in pairs),
        "b": statistics.median(t_b for _, t_b in pairs),
        "ratio": statistics.median(t_b / t_a for t_a, t_b in pairs),
    }
