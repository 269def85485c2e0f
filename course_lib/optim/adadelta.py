"""Adadelta (Zeiler, 2012): RMSprop with its units fixed, so that it needs no learning rate.

Notation: w a parameter, g_t its gradient at step t, η the learning rate (``lr``, 1 in the paper), λ the weight
decay, ρ the decay rate (``rho``). Per coordinate:

    g_t ← g_t + λ w_t                                       (weight decay, an L2 penalty λ/2 ‖w‖²)
    v_t = ρ v_{t−1} + (1 − ρ) g_t²                          (v₀ = 0: the mean square of recent gradients)
    Δ_t = √(u_{t−1} + ε) / √(v_t + ε) · g_t                 (the update)
    u_t = ρ u_{t−1} + (1 − ρ) Δ_t²                          (u₀ = 0: the mean square of recent updates)
    w_{t+1} = w_t − η Δ_t

The units argument. If w is measured in metres and the loss in joules, g = ∂L/∂w is in J/m, and RMSprop's step
η g/√v is a pure number: the units of the step are whatever η's are, so η must carry the metres and be tuned to
the problem's scale. Newton's step H⁻¹g, with H = ∂²L/∂w² in J/m², has the units of w; Zeiler approximates
H⁻¹ ≈ Δw/g by running averages: the root-mean-square of the recent updates over that of the recent gradients.
Δ_t then has the units of √u, the units of w. With u₀ = 0 the first updates are of size about √ε/√(v + ε)·|g|
(about √ε), and they grow as the updates themselves build up u: ε sets the scale at the start.
"""

from __future__ import annotations

from typing import Callable, Iterable

import torch
from torch import Tensor

from .base import by_device_and_dtype, check_number, count_step, cpu_blocks, run_closure, with_gradients

__all__ = ["Adadelta", "adadelta_update", "adadelta_update_foreach"]


def adadelta_update(w: Tensor, g: Tensor, v: Tensor, u: Tensor, *, lr: float, rho: float, eps: float,
                    weight_decay: float) -> None:
    """One Adadelta step on one parameter ``w``, updating w, the mean square gradient ``v`` and the mean square
    update ``u`` in place. All tensors have w's shape."""
    if weight_decay != 0:
        g = g.add(w, alpha=weight_decay)  # g_t + λ w_t
    v.mul_(rho).addcmul_(g, g, value=1 - rho)  # v_t = ρ v_{t−1} + (1 − ρ) g_t²
    rms_g = v.add(eps).sqrt_()  # √(v_t + ε)
    delta = u.add(eps).sqrt_()  # √(u_{t−1} + ε)
    delta.div_(rms_g).mul_(g)  # Δ_t = √(u_{t−1} + ε) / √(v_t + ε) · g_t
    u.mul_(rho).addcmul_(delta, delta, value=1 - rho)  # u_t = ρ u_{t−1} + (1 − ρ) Δ_t²
    w.add_(delta, alpha=-lr)  # w − η Δ_t


def adadelta_update_foreach(ws: list[Tensor], gs: list[Tensor], vs: list[Tensor], us: list[Tensor], *, lr: float,
                            rho: float, eps: float, weight_decay: float) -> None:
    """`adadelta_update` on lists of parameters of one device and dtype, with multi-tensor kernels."""
    if weight_decay != 0:
        gs = torch._foreach_add(gs, ws, alpha=weight_decay)
    torch._foreach_mul_(vs, rho)
    torch._foreach_addcmul_(vs, gs, gs, value=1 - rho)
    rms_gs = torch._foreach_add(vs, eps)
    torch._foreach_sqrt_(rms_gs)
    deltas = torch._foreach_add(us, eps)
    torch._foreach_sqrt_(deltas)
    torch._foreach_div_(deltas, rms_gs)
    torch._foreach_mul_(deltas, gs)
    torch._foreach_mul_(us, rho)
    torch._foreach_addcmul_(us, deltas, deltas, value=1 - rho)
    torch._foreach_add_(ws, deltas, alpha=-lr)


class Adadelta(torch.optim.Optimizer):
    """Adadelta with weight decay.

    Same arguments, defaults and state (``step``, ``square_avg`` = v, ``acc_delta`` = u) as ``torch.optim.Adadelta``
    (note ``lr=1.0``: the rule needs no learning rate, and η only scales it); ``foreach=False`` runs the readable
    `adadelta_update`. ``step`` is kept as a Python int (torch keeps a 0-d tensor; both load).
    """

    def __init__(
        self, params: Iterable, lr: float = 1.0, rho: float = 0.9, eps: float = 1e-6, weight_decay: float = 0.0, *,
        foreach: bool = True,
    ):
        defaults = dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay, foreach=foreach)
        super().__init__(params, defaults)

    def add_param_group(self, param_group: dict) -> None:
        group = {**self.defaults, **param_group}  # the group as it will be: checked before it is added
        for name in ("lr", "eps", "weight_decay"):
            check_number(name, group[name])
        check_number("rho", group["rho"], at_most=1.0)
        super().add_param_group(param_group)

    def _state_of(self, p: Tensor) -> dict:
        """The state of ``p``, made at its first step: t = 0 and zero averages."""
        state = self.state[p]
        if "step" not in state:
            state["step"] = 0
            state["square_avg"] = torch.zeros_like(p)
            state["acc_delta"] = torch.zeros_like(p)
        return state

    @torch.no_grad()
    def step(self, closure: Callable[[], Tensor] | None = None) -> Tensor | None:
        """Update every parameter that has a gradient; return the closure's loss, if one is given."""
        loss = run_closure(closure)
        for group in self.param_groups:
            hyper = dict(lr=group["lr"], rho=group["rho"], eps=group["eps"], weight_decay=group["weight_decay"])
            params = with_gradients(group)
            for p in params:
                count_step(self._state_of(p))
            if group["foreach"]:
                for bucket in by_device_and_dtype(params).values():
                    states = [self.state[p] for p in bucket]
                    lists = [bucket, [p.grad for p in bucket], [s["square_avg"] for s in states],
                             [s["acc_delta"] for s in states]]
                    for _, (ws, gs, vs, us) in cpu_blocks(lists):
                        adadelta_update_foreach(ws, gs, vs, us, **hyper)
            else:
                for p in params:
                    s = self.state[p]
                    adadelta_update(p, p.grad, s["square_avg"], s["acc_delta"], **hyper)
        return loss
