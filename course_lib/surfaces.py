"""Small loss surfaces on which the optimizer lectures draw paths, and the loop that walks an optimizer over them.

    narrow valley:  f(w) = ½ (w₁² + 50 w₂²)            curvatures 1 along the valley, 50 across it; minimum (0, 0)
    Rosenbrock:     f(w) = (1 − w₁)² + 100 (w₂ − w₁²)²   a curved, flat-bottomed valley; minimum (1, 1)

`SURFACES` gives each its starting point, its minimum and the plot's window, as both parts of lecture 02 use them;
`descend` records the points w₀, w₁, …, w_steps an optimizer visits on any of them (or on any other loss of a tensor).
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor


def narrow_valley(w: Tensor) -> Tensor:
    """½ (w₁² + 50 w₂²) of the last dimension's two coordinates: w (..., 2) → (...)."""
    return 0.5 * (w[..., 0] ** 2 + 50.0 * w[..., 1] ** 2)


def rosenbrock(w: Tensor) -> Tensor:
    """(1 − w₁)² + 100 (w₂ − w₁²)² of the last dimension's two coordinates: w (..., 2) → (...)."""
    return (1 - w[..., 0]) ** 2 + 100.0 * (w[..., 1] - w[..., 0] ** 2) ** 2


SURFACES = {
    "narrow valley": dict(loss=narrow_valley, start=[-4.0, 1.0], minimum=(0.0, 0.0), xlim=(-4.5, 1.5), ylim=(-1.5, 1.5)),
    "Rosenbrock": dict(loss=rosenbrock, start=[-1.5, 2.0], minimum=(1.0, 1.0), xlim=(-2.0, 2.0), ylim=(-1.0, 3.0)),
}


def descend(loss: Callable[[Tensor], Tensor], start: list[float], make_optimizer: Callable, steps: int) -> Tensor:
    """The path w₀, w₁, …, w_steps (a (steps + 1, d) float64 tensor) of the optimizer ``make_optimizer([w])`` on
    ``loss``, from ``start``; it stops early, with a shorter path, once the loss is not finite or exceeds 1e8 in size."""
    w = torch.tensor(start, dtype=torch.float64, requires_grad=True)
    optimizer = make_optimizer([w])
    path = [w.detach().clone()]
    for _ in range(steps):
        optimizer.zero_grad()
        value = loss(w).sum()
        if not torch.isfinite(value) or value.abs().item() > 1e8:
            break
        value.backward()
        optimizer.step()
        path.append(w.detach().clone())
    return torch.stack(path)
