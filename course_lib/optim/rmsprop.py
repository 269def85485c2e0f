"""RMSprop (Tieleman and Hinton, 2012): Adagrad's sum of squared gradients replaced by a running average.

Notation: w a parameter, g_t its gradient at step t, η the learning rate (``lr``), λ the weight decay, α the
smoothing constant (``alpha``), μ the momentum. Per coordinate:

    g_t ← g_t + λ w_t                                 (weight decay, an L2 penalty λ/2 ‖w‖²)
    v_t = α v_{t−1} + (1 − α) g_t²                    (v₀ = 0: the mean square of recent gradients)
    r_t = √v_t + ε                                    (plain)
    r_t = √(v_t − ḡ_t²) + ε, ḡ_t = α ḡ_{t−1} + (1 − α) g_t      (centered: the gradient's standard deviation)
    b_t = μ b_{t−1} + g_t / r_t,   w_{t+1} = w_t − η b_t     (with momentum μ > 0; b₀ = 0)
    w_{t+1} = w_t − η g_t / r_t                                  (without)

Adagrad divides by the root of a sum that only grows; RMSprop forgets old gradients at the rate α (over about
1/(1 − α) steps), so under a constant gradient g its step tends to η g/|g| = η instead of dying like η/√t.
The centered form divides by the spread of the gradient rather than its size, so a coordinate whose gradient is
steady gets larger steps than one whose gradient is noisy. Neither corrects v₀ = 0's bias (Adam does): the first
steps are larger than η by up to 1/√(1 − α).
"""

from __future__ import annotations

from typing import Callable, Iterable

import torch
from torch import Tensor

from .base import by_device_and_dtype, check_number, count_step, cpu_blocks, run_closure, with_gradients

__all__ = ["RMSprop", "rmsprop_update", "rmsprop_update_foreach"]


def rmsprop_update(w: Tensor, g: Tensor, v: Tensor, g_mean: Tensor | None, b: Tensor | None, *, lr: float,
                   alpha: float, eps: float, weight_decay: float, momentum: float) -> None:
    """One RMSprop step on one parameter ``w``, updating w, v, and (when given) the mean gradient ḡ (``g_mean``,
    centered) and the velocity b (momentum μ > 0) in place. All tensors have w's shape."""
    if weight_decay != 0:
        g = g.add(w, alpha=weight_decay)  # g_t + λ w_t
    v.mul_(alpha).addcmul_(g, g, value=1 - alpha)  # v_t = α v_{t−1} + (1 − α) g_t²
    if g_mean is not None:
        g_mean.lerp_(g, 1 - alpha)  # ḡ_t = α ḡ_{t−1} + (1 − α) g_t
        r = v.addcmul(g_mean, g_mean, value=-1).sqrt_()  # √(v_t − ḡ_t²)
    else:
        r = v.sqrt()  # √v_t
    r.add_(eps)  # r_t
    if b is not None:
        b.mul_(momentum).addcdiv_(g, r)  # b_t = μ b_{t−1} + g_t / r_t
        w.add_(b, alpha=-lr)  # w − η b_t
    else:
        w.addcdiv_(g, r, value=-lr)  # w − η g_t / r_t


def rmsprop_update_foreach(ws: list[Tensor], gs: list[Tensor], vs: list[Tensor], g_means: list[Tensor] | None,
                           bs: list[Tensor] | None, *, lr: float, alpha: float, eps: float, weight_decay: float,
                           momentum: float) -> None:
    """`rmsprop_update` on lists of parameters of one device and dtype, with multi-tensor kernels."""
    if weight_decay != 0:
        gs = torch._foreach_add(gs, ws, alpha=weight_decay)
    torch._foreach_mul_(vs, alpha)
    torch._foreach_addcmul_(vs, gs, gs, value=1 - alpha)
    if g_means is not None:
        torch._foreach_lerp_(g_means, gs, 1 - alpha)
        rs = torch._foreach_addcmul(vs, g_means, g_means, value=-1)
        torch._foreach_sqrt_(rs)
    else:
        rs = torch._foreach_sqrt(vs)
    torch._foreach_add_(rs, eps)
    if bs is not None:
        torch._foreach_mul_(bs, momentum)
        torch._foreach_addcdiv_(bs, gs, rs)
        torch._foreach_add_(ws, bs, alpha=-lr)
    else:
        torch._foreach_addcdiv_(ws, gs, rs, value=-lr)


class RMSprop(torch.optim.Optimizer):
    """RMSprop, plain or centered, with momentum and weight decay.

    Same arguments, defaults and state (``step``, ``square_avg`` = v, ``grad_avg`` = ḡ when centered,
    ``momentum_buffer`` = b when μ > 0) as ``torch.optim.RMSprop``; ``foreach=False`` runs the readable
    `rmsprop_update`. ``step`` is kept as a Python int (torch keeps a 0-d tensor; both load).
    """

    def __init__(
        self, params: Iterable, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8, weight_decay: float = 0.0,
        momentum: float = 0.0, centered: bool = False, *, foreach: bool = True,
    ):
        defaults = dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum, centered=centered,
                        foreach=foreach)
        super().__init__(params, defaults)

    def add_param_group(self, param_group: dict) -> None:
        group = {**self.defaults, **param_group}  # the group as it will be: checked before it is added
        for name in ("lr", "eps", "weight_decay", "momentum"):
            check_number(name, group[name])
        check_number("alpha", group["alpha"], at_most=1.0)
        super().add_param_group(param_group)

    def _state_of(self, p: Tensor, group: dict) -> dict:
        """The state of ``p``, made at its first step: t = 0 and zero averages (and velocity)."""
        state = self.state[p]
        if "step" not in state:
            state["step"] = 0
            state["square_avg"] = torch.zeros_like(p)
            if group["momentum"] > 0:
                state["momentum_buffer"] = torch.zeros_like(p)
            if group["centered"]:
                state["grad_avg"] = torch.zeros_like(p)
        return state

    @torch.no_grad()
    def step(self, closure: Callable[[], Tensor] | None = None) -> Tensor | None:
        """Update every parameter that has a gradient; return the closure's loss, if one is given."""
        loss = run_closure(closure)
        for group in self.param_groups:
            hyper = dict(lr=group["lr"], alpha=group["alpha"], eps=group["eps"], weight_decay=group["weight_decay"],
                         momentum=group["momentum"])
            centered, with_momentum = group["centered"], group["momentum"] > 0
            params = with_gradients(group)
            for p in params:
                count_step(self._state_of(p, group))
            if group["foreach"]:
                for bucket in by_device_and_dtype(params).values():
                    states = [self.state[p] for p in bucket]
                    lists = [bucket, [p.grad for p in bucket], [s["square_avg"] for s in states]]
                    if centered:
                        lists.append([s["grad_avg"] for s in states])
                    if with_momentum:
                        lists.append([s["momentum_buffer"] for s in states])
                    for _, (ws, gs, vs, *rest) in cpu_blocks(lists):
                        g_means = rest.pop(0) if centered else None
                        bs = rest.pop(0) if with_momentum else None
                        rmsprop_update_foreach(ws, gs, vs, g_means, bs, **hyper)
            else:
                for p in params:
                    s = self.state[p]
                    rmsprop_update(p, p.grad, s["square_avg"], s.get("grad_avg") if centered else None,
                                   s.get("momentum_buffer") if with_momentum else None, **hyper)
        return loss
