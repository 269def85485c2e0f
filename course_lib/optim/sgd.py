"""Stochastic gradient descent with momentum, dampening, Nesterov momentum and weight decay.

Notation: w a parameter, g_t its gradient at step t, η the learning rate (``lr``), λ the weight decay.

SGD with momentum (slides: u_t = γ u_{t−1} + η g_t, w_{t+1} = w_t − u_t). PyTorch, and this module,
store the velocity in gradient units, b_t = u_t / η, so that changing η during training (a schedule)
rescales the step at once:

    g_t ← g_t + λ w_t                              (weight decay, an L2 penalty λ/2 ‖w‖²)
    b_t = g_t                     at the first step
    b_t = γ b_{t−1} + (1 − τ) g_t after               (τ: dampening)
    d_t = g_t + γ b_t  (Nesterov)   or   d_t = b_t
    w_{t+1} = w_t − η d_t

With a constant gradient g the velocity tends to b = g/(1 − γ) (for τ = 0): the "terminal velocity"
η g / (1 − γ) of the slides.
"""

from __future__ import annotations

from typing import Callable, Iterable

import torch
from torch import Tensor

from .base import by_device_and_dtype, check_number, run_closure, with_gradients

__all__ = ["SGD", "sgd_update", "sgd_update_foreach"]


def sgd_update(
    w: Tensor, g: Tensor, b: Tensor | None, *,
    lr: float, momentum: float, dampening: float, weight_decay: float, nesterov: bool,
) -> Tensor | None:
    """One SGD step on one parameter ``w`` (in place) with gradient ``g``; returns the new velocity b_t.

    ``b`` is the velocity b_{t−1} (None before the first step, or without momentum). All tensors
    have w's shape.
    """
    if weight_decay != 0:
        g = g.add(w, alpha=weight_decay)  # g_t + λ w_t
    if momentum != 0:
        if b is None:
            b = g.clone()
        else:
            b.mul_(momentum).add_(g, alpha=1 - dampening)  # b_t = γ b_{t−1} + (1 − τ) g_t
        d = g.add(b, alpha=momentum) if nesterov else b  # Nesterov: g_t + γ b_t
    else:
        d = g
    w.add_(d, alpha=-lr)  # w_{t+1} = w_t − η d_t
    return b


def sgd_update_foreach(
    ws: list[Tensor], gs: list[Tensor], bs: list[Tensor | None], *,
    lr: float, momentum: float, dampening: float, weight_decay: float, nesterov: bool,
) -> list[Tensor | None]:
    """`sgd_update` on lists of parameters of one device and dtype, with multi-tensor kernels."""
    if weight_decay != 0:
        gs = torch._foreach_add(gs, ws, alpha=weight_decay)
    if momentum != 0:
        old = [i for i, b in enumerate(bs) if b is not None]
        if old:
            old_bs = [bs[i] for i in old]
            torch._foreach_mul_(old_bs, momentum)
            torch._foreach_add_(old_bs, [gs[i] for i in old], alpha=1 - dampening)
        bs = [b if b is not None else torch.clone(g).detach() for b, g in zip(bs, gs)]
        ds = torch._foreach_add(gs, bs, alpha=momentum) if nesterov else bs
    else:
        ds = gs
    torch._foreach_add_(ws, ds, alpha=-lr)
    return bs


class SGD(torch.optim.Optimizer):
    """Stochastic gradient descent with momentum, dampening, Nesterov momentum and weight decay.

    Same arguments, defaults and state (``momentum_buffer``) as ``torch.optim.SGD``; see the module's
    docstring for the rule. ``foreach=False`` runs the readable one-parameter-at-a-time `sgd_update`.
    """

    def __init__(
        self, params: Iterable, lr: float = 1e-3, momentum: float = 0.0, dampening: float = 0.0,
        weight_decay: float = 0.0, nesterov: bool = False, *, foreach: bool = True,
    ):
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                        nesterov=nesterov, foreach=foreach)
        super().__init__(params, defaults)

    def add_param_group(self, param_group: dict) -> None:
        group = {**self.defaults, **param_group}  # the group as it will be: checked before it is added
        check_number("lr", group["lr"])
        check_number("momentum", group["momentum"])
        check_number("weight_decay", group["weight_decay"])
        check_number("dampening", group["dampening"])
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError("nesterov=True needs momentum > 0 and dampening = 0, "
                             f"got momentum={group['momentum']!r}, dampening={group['dampening']!r}")
        super().add_param_group(param_group)

    @torch.no_grad()
    def step(self, closure: Callable[[], Tensor] | None = None) -> Tensor | None:
        """Update every parameter that has a gradient; return the closure's loss, if one is given."""
        loss = run_closure(closure)
        for group in self.param_groups:
            hyper = dict(lr=group["lr"], momentum=group["momentum"], dampening=group["dampening"],
                         weight_decay=group["weight_decay"], nesterov=group["nesterov"])
            params = with_gradients(group)
            keep_velocity = group["momentum"] != 0  # without momentum there is no state, as in torch.optim
            if group["foreach"]:
                for bucket in by_device_and_dtype(params).values():
                    velocities = [self.state[p].get("momentum_buffer") if keep_velocity else None for p in bucket]
                    velocities = sgd_update_foreach(bucket, [p.grad for p in bucket], velocities, **hyper)
                    if keep_velocity:
                        for p, b in zip(bucket, velocities):
                            self.state[p]["momentum_buffer"] = b
            else:
                for p in params:
                    b = sgd_update(p, p.grad, self.state[p].get("momentum_buffer") if keep_velocity else None, **hyper)
                    if keep_velocity:
                        self.state[p]["momentum_buffer"] = b
        return loss
