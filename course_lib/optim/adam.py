"""Adam and AdamW.

Notation: w a parameter, g_t its gradient at step t, η the learning rate (``lr``), λ the weight decay.

Adam (Kingma and Ba, 2014), per coordinate:

    g_t ← g_t + λ w_t                     (Adam's weight decay: an L2 penalty added to the gradient)
    w_t ← (1 − η λ) w_t                   (AdamW's instead: decoupled, not scaled by 1/√v̂)
    m_t = β₁ m_{t−1} + (1 − β₁) g_t               v_t = β₂ v_{t−1} + (1 − β₂) g_t²
    m̂_t = m_t / (1 − β₁ᵗ)                         v̂_t = v_t / (1 − β₂ᵗ)
    (AMSGrad: v_t^max = max(v_{t−1}^max, v_t) replaces v_t in v̂_t)
    w_{t+1} = w_t − η m̂_t / (√v̂_t + ε)

Each parameter counts its own steps t, so one that receives no gradient on some steps (``grad`` is
None) is skipped and its moments and step count stay as they were, as in torch.optim.
"""

from __future__ import annotations

import math
from typing import Callable, Iterable

import torch
from torch import Tensor

from .base import by_device_and_dtype, check_number, count_step, cpu_blocks, run_closure, with_gradients

__all__ = ["Adam", "AdamW", "adam_update", "adam_update_foreach"]


def adam_update(
    w: Tensor, g: Tensor, m: Tensor, v: Tensor, v_max: Tensor | None, t: int, *,
    lr: float, beta1: float, beta2: float, eps: float, weight_decay: float, decoupled: bool,
) -> None:
    """One Adam step at step number ``t`` (1, 2, …) on one parameter ``w``, updating w, m, v (and
    v_max for AMSGrad) in place. All tensors have w's shape."""
    if weight_decay != 0:
        if decoupled:
            w.mul_(1 - lr * weight_decay)  # AdamW: shrink the weight itself
        else:
            g = g.add(w, alpha=weight_decay)  # Adam: an L2 term in the gradient, g_t + λ w_t
    m.lerp_(g, 1 - beta1)  # m_t = β₁ m_{t−1} + (1 − β₁) g_t
    v.mul_(beta2).addcmul_(g, g, value=1 - beta2)  # v_t = β₂ v_{t−1} + (1 − β₂) g_t²
    if v_max is not None:
        torch.maximum(v_max, v, out=v_max)
        v = v_max
    bias_correction1 = 1 - beta1 ** t
    bias_correction2 = 1 - beta2 ** t
    # w ← w − η m̂ / (√v̂ + ε), with m̂ = m / (1 − β₁ᵗ) and √v̂ = √v / √(1 − β₂ᵗ)
    denominator = (v.sqrt() / math.sqrt(bias_correction2)).add_(eps)
    w.addcdiv_(m, denominator, value=-lr / bias_correction1)


def adam_update_foreach(
    ws: list[Tensor], gs: list[Tensor], ms: list[Tensor], vs: list[Tensor], v_maxs: list[Tensor] | None,
    ts: list[int], *, lr: float, beta1: float, beta2: float, eps: float, weight_decay: float, decoupled: bool,
) -> None:
    """`adam_update` on lists of parameters of one device and dtype (each with its own step ``ts[i]``)."""
    if weight_decay != 0:
        if decoupled:
            torch._foreach_mul_(ws, 1 - lr * weight_decay)
        else:
            gs = torch._foreach_add(gs, ws, alpha=weight_decay)
    torch._foreach_lerp_(ms, gs, 1 - beta1)
    torch._foreach_mul_(vs, beta2)
    torch._foreach_addcmul_(vs, gs, gs, 1 - beta2)
    if v_maxs is not None:
        torch._foreach_maximum_(v_maxs, vs)
        vs = v_maxs
    denominators = torch._foreach_sqrt(vs)
    torch._foreach_div_(denominators, [math.sqrt(1 - beta2 ** t) for t in ts])
    torch._foreach_add_(denominators, eps)
    torch._foreach_addcdiv_(ws, ms, denominators, [-lr / (1 - beta1 ** t) for t in ts])


class Adam(torch.optim.Optimizer):
    """Adam, with AMSGrad and L2 weight decay; ``AdamW`` below decouples the decay.

    Same arguments, defaults and state (``step``, ``exp_avg`` = m, ``exp_avg_sq`` = v,
    ``max_exp_avg_sq`` = v_max) as ``torch.optim.Adam``; ``foreach=False`` runs the readable
    `adam_update`. ``step`` is kept as a Python int (torch keeps a 0-d tensor; both load).
    """

    decoupled_weight_decay = False

    def __init__(
        self, params: Iterable, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
        weight_decay: float = 0.0, amsgrad: bool = False, *, foreach: bool = True,
    ):
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad, foreach=foreach)
        super().__init__(params, defaults)

    def add_param_group(self, param_group: dict) -> None:
        group = {**self.defaults, **param_group}  # the group as it will be: checked before it is added
        check_number("lr", group["lr"])
        check_number("eps", group["eps"])
        check_number("weight_decay", group["weight_decay"])
        betas = group["betas"]
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(f"betas must be a pair (beta1, beta2), got {betas!r}")
        check_number("betas[0]", betas[0], below=1.0)
        check_number("betas[1]", betas[1], below=1.0)
        super().add_param_group(param_group)

    def _state_of(self, p: Tensor, amsgrad: bool) -> dict:
        """The state of ``p``, created at its first step: t = 0 and zero moments."""
        state = self.state[p]
        if "step" not in state:
            state["step"] = 0
            state["exp_avg"] = torch.zeros_like(p)  # (in p's memory format, as torch.optim's)
            state["exp_avg_sq"] = torch.zeros_like(p)
            if amsgrad:
                state["max_exp_avg_sq"] = torch.zeros_like(p)
        return state

    @torch.no_grad()
    def step(self, closure: Callable[[], Tensor] | None = None) -> Tensor | None:
        """Update every parameter that has a gradient; return the closure's loss, if one is given."""
        loss = run_closure(closure)
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            hyper = dict(lr=group["lr"], beta1=beta1, beta2=beta2, eps=group["eps"],
                         weight_decay=group["weight_decay"], decoupled=self.decoupled_weight_decay)
            amsgrad = group["amsgrad"]
            params = with_gradients(group)
            for p in params:
                count_step(self._state_of(p, amsgrad))
            if group["foreach"]:
                for bucket in by_device_and_dtype(params).values():
                    states = [self.state[p] for p in bucket]
                    lists = [bucket, [p.grad for p in bucket], [s["exp_avg"] for s in states], [s["exp_avg_sq"] for s in states]]
                    if amsgrad:
                        lists.append([s["max_exp_avg_sq"] for s in states])
                    for indices, (ws, gs, ms, vs, *v_maxs) in cpu_blocks(lists):
                        adam_update_foreach(ws, gs, ms, vs, v_maxs[0] if amsgrad else None,
                                            [states[i]["step"] for i in indices], **hyper)
            else:
                for p in params:
                    s = self.state[p]
                    adam_update(p, p.grad, s["exp_avg"], s["exp_avg_sq"], s.get("max_exp_avg_sq") if amsgrad else None,
                                s["step"], **hyper)
        return loss


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov and Hutter): w ← (1 − ηλ) w before the Adam step.

    Same arguments and defaults as ``torch.optim.AdamW`` (note ``weight_decay=1e-2``).
    """

    decoupled_weight_decay = True

    def __init__(
        self, params: Iterable, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
        weight_decay: float = 1e-2, amsgrad: bool = False, *, foreach: bool = True,
    ):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad, foreach=foreach)
