"""What every optimizer of this package does the same way: check its hyper-parameters, run the closure, and
walk its parameters in groups that multi-tensor kernels can take.

A multi-tensor kernel (``torch._foreach_*``) applies one operation to a whole list of tensors, which must share
one device and one dtype: `by_device_and_dtype` splits a parameter group accordingly. On a CPU the kernels still
run tensor after tensor, and an update rule with several operations streams every parameter, gradient and
state tensor through memory once per operation; `cpu_blocks` cuts the aligned lists into cache-sized pieces
and the rule runs all its operations on one piece before the next, so a piece stays in the cache between
operations. The arithmetic is elementwise, so the numbers are exactly the same.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Callable, Iterator

import torch
from torch import Tensor


def check_number(name: str, value: object, below: float | None = None, at_most: float | None = None) -> None:
    """ValueError naming ``name`` unless 0 ≤ value (and value < ``below``, or value ≤ ``at_most``, when given)."""
    if isinstance(value, Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise ValueError(f"{name} must be a number, got {value!r}")
    upper = f" and < {below}" if below is not None else f" and ≤ {at_most}" if at_most is not None else ""
    if value < 0 or (below is not None and value >= below) or (at_most is not None and value > at_most):
        raise ValueError(f"{name} must be ≥ 0.0{upper}, got {value!r}")


def run_closure(closure: Callable[[], Tensor] | None) -> Tensor | None:
    """The loss the closure recomputes (with gradients enabled inside ``step``'s no_grad), or None."""
    if closure is None:
        return None
    with torch.enable_grad():
        return closure()


def with_gradients(group: dict) -> list[Tensor]:
    """The parameters of ``group`` that have a gradient: the others are skipped, their state left as it is."""
    return [p for p in group["params"] if p.grad is not None]


def count_step(state: dict) -> int:
    """Add one to the step count ``state["step"]`` and return it. torch.optim keeps the count as a 0-d tensor, this
    package as an int: a state loaded from torch.optim is turned into an int here, and torch.optim loads either."""
    step = state["step"]
    state["step"] = (int(step.item()) if isinstance(step, Tensor) else step) + 1
    return state["step"]


def by_device_and_dtype(params: list[Tensor]) -> dict[tuple, list[Tensor]]:
    """Multi-tensor kernels need tensors of one device and dtype: split the parameters accordingly."""
    buckets: dict[tuple, list[Tensor]] = defaultdict(list)
    for p in params:
        buckets[(p.device, p.dtype)].append(p)
    return buckets


# The size of a piece: on ResNet-18's parameters Adam's step gets about twice as fast with it. (SGD's three light
# operations gain nothing from pieces: the bookkeeping eats the saving, so SGD runs on whole lists.)
CPU_BLOCK_ELEMENTS = 131_072


def cpu_blocks(tensor_lists: list[list[Tensor]]) -> Iterator[tuple[list[int], list[list[Tensor]]]]:
    """Yield ``(indices, lists)``: the aligned ``tensor_lists`` cut into cache-sized groups of views on a
    CPU (``indices[j]`` is the parameter the j-th view belongs to), or whole on other devices."""
    first = tensor_lists[0]
    if not first or first[0].device.type != "cpu":
        yield list(range(len(first))), tensor_lists
        return
    indices, pieces, size = [], [[] for _ in tensor_lists], 0
    for i, aligned in enumerate(zip(*tensor_lists)):
        if all(t.is_contiguous() for t in aligned):
            flat = [t.view(-1) for t in aligned]
            cuts = [(start, start + CPU_BLOCK_ELEMENTS) for start in range(0, flat[0].numel(), CPU_BLOCK_ELEMENTS)]
        else:  # a strided tensor stays whole
            flat, cuts = list(aligned), [(None, None)]
        for start, stop in cuts:
            indices.append(i)
            for piece, t in zip(pieces, flat):
                piece.append(t[start:stop] if start is not None else t)
            size += pieces[0][-1].numel()
            if size >= CPU_BLOCK_ELEMENTS:
                yield indices, pieces
                indices, pieces, size = [], [[] for _ in tensor_lists], 0
    if indices:
        yield indices, pieces
