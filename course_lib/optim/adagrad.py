"""Adagrad (Duchi, Hazan and Singer, 2011): a step size per coordinate, from the sum of its squared gradients.

Notation: w a parameter, g_t its gradient at step t (t = 1, 2, …), η the learning rate (``lr``), λ the weight
decay, δ the learning-rate decay (``lr_decay``), s the accumulator (``sum``, started at ``initial_accumulator_value``).
Per coordinate:

    g_t ← g_t + λ w_t                       (weight decay, an L2 penalty λ/2 ‖w‖²)
    η_t = η / (1 + (t − 1) δ)
    s_t = s_{t−1} + g_t²
    w_{t+1} = w_t − η_t g_t / (√s_t + ε)

A coordinate with large gradients gets small steps, a rarely-moved one large steps: the step is scaled by the
inverse of the gradient's root-sum-square so far. Because s_t only grows, every step shrinks for ever: under a
constant gradient g the t-th step is η g / (√t |g| + ε) ≈ η / √t. That suits convex problems with sparse features,
for which the rule was made, and starves a long non-convex training run (RMSprop replaces the sum by an average).
"""

from __future__ import annotations

from typing import Callable, Iterable

import torch
from torch import Tensor

from .base import by_device_and_dtype, check_number, count_step, cpu_blocks, run_closure, with_gradients

__all__ = ["Adagrad", "adagrad_update", "adagrad_update_foreach"]


def adagrad_update(w: Tensor, g: Tensor, s: Tensor, t: int, *, lr: float, lr_decay: float, weight_decay: float,
                   eps: float) -> None:
    """One Adagrad step number ``t`` (1, 2, …) on one parameter ``w``, updating w and its accumulator ``s`` in place.
    All tensors have w's shape."""
    if weight_decay != 0:
        g = g.add(w, alpha=weight_decay)  # g_t + λ w_t
    lr_t = lr / (1 + (t - 1) * lr_decay)  # η_t = η / (1 + (t − 1) δ)
    s.addcmul_(g, g)  # s_t = s_{t−1} + g_t²
    denominator = s.sqrt().add_(eps)  # √s_t + ε
    w.addcdiv_(g, denominator, value=-lr_t)  # w − η_t g_t / (√s_t + ε)


def adagrad_update_foreach(ws: list[Tensor], gs: list[Tensor], ss: list[Tensor], ts: list[int], *, lr: float,
                           lr_decay: float, weight_decay: float, eps: float) -> None:
    """`adagrad_update` on lists of parameters of one device and dtype (each with its own step ``ts[i]``)."""
    if weight_decay != 0:
        gs = torch._foreach_add(gs, ws, alpha=weight_decay)
    torch._foreach_addcmul_(ss, gs, gs)
    denominators = torch._foreach_sqrt(ss)
    torch._foreach_add_(denominators, eps)
    steps = torch._foreach_mul(gs, [-lr / (1 + (t - 1) * lr_decay) for t in ts])  # −η_t g_t
    torch._foreach_addcdiv_(ws, steps, denominators)


class Adagrad(torch.optim.Optimizer):
    """Adagrad with learning-rate decay and weight decay (dense gradients).

    Same arguments, defaults and state (``step``, ``sum`` = s) as ``torch.optim.Adagrad``, whose state is made
    for every parameter when the optimizer is made (so is this one's); ``foreach=False`` runs the readable
    `adagrad_update`. ``step`` is kept as a Python int (torch keeps a 0-d tensor; both load).
    """

    def __init__(
        self, params: Iterable, lr: float = 1e-2, lr_decay: float = 0.0, weight_decay: float = 0.0,
        initial_accumulator_value: float = 0.0, eps: float = 1e-10, *, foreach: bool = True,
    ):
        defaults = dict(lr=lr, lr_decay=lr_decay, eps=eps, weight_decay=weight_decay,
                        initial_accumulator_value=initial_accumulator_value, foreach=foreach)
        super().__init__(params, defaults)

    def add_param_group(self, param_group: dict) -> None:
        group = {**self.defaults, **param_group}  # the group as it will be: checked before it is added
        for name in ("lr", "lr_decay", "weight_decay", "initial_accumulator_value", "eps"):
            check_number(name, group[name])
        super().add_param_group(param_group)
        added = self.param_groups[-1]
        for p in added["params"]:
            self._state_of(p, added["initial_accumulator_value"])

    def _state_of(self, p: Tensor, initial_accumulator_value: float) -> dict:
        """The state of ``p``: t = 0 and s₀ = ``initial_accumulator_value`` everywhere, made once."""
        state = self.state[p]
        if "step" not in state:
            state["step"] = 0
            state["sum"] = torch.full_like(p, initial_accumulator_value)
        return state

    @torch.no_grad()
    def step(self, closure: Callable[[], Tensor] | None = None) -> Tensor | None:
        """Update every parameter that has a gradient; return the closure's loss, if one is given."""
        loss = run_closure(closure)
        for group in self.param_groups:
            hyper = dict(lr=group["lr"], lr_decay=group["lr_decay"], weight_decay=group["weight_decay"],
                         eps=group["eps"])
            params = with_gradients(group)
            for p in params:
                count_step(self._state_of(p, group["initial_accumulator_value"]))
            if group["foreach"]:
                for bucket in by_device_and_dtype(params).values():
                    states = [self.state[p] for p in bucket]
                    lists = [bucket, [p.grad for p in bucket], [s["sum"] for s in states]]
                    for indices, (ws, gs, ss) in cpu_blocks(lists):
                        adagrad_update_foreach(ws, gs, ss, [states[i]["step"] for i in indices], **hyper)
            else:
                for p in params:
                    adagrad_update(p, p.grad, self.state[p]["sum"], self.state[p]["step"], **hyper)
        return loss
