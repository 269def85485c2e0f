"""Optimizers written from their update rules: SGD (momentum, Nesterov, dampening, weight decay), Adam and AdamW.

Each rule appears twice. First as a **readable function** applied to one parameter at a time, in the
lecture's notation; then as a **multi-tensor** function that applies the same arithmetic to whole lists
of tensors with ``torch._foreach_*`` kernels (one kernel launch per operation for all parameters,
instead of one per parameter). Both compute the same numbers; the classes use the multi-tensor path by
default and the readable one with ``foreach=False``. The classes are ``torch.optim.Optimizer``
subclasses with torch.optim's constructor arguments, defaults and state layout, so they drop into any
PyTorch training loop: parameter groups, ``zero_grad``, ``state_dict``/``load_state_dict``.

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
from collections import defaultdict
from typing import Callable, Iterable

import torch
from torch import Tensor

__all__ = ["SGD", "Adam", "AdamW", "sgd_update", "sgd_update_foreach", "adam_update", "adam_update_foreach"]


# --------------------------------------------------------------------------------------------------
# SGD: the update rule
# --------------------------------------------------------------------------------------------------

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


# --------------------------------------------------------------------------------------------------
# Adam and AdamW: the update rule
# --------------------------------------------------------------------------------------------------

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


# --------------------------------------------------------------------------------------------------
# The optimizers
# --------------------------------------------------------------------------------------------------

def _check_number(name: str, value: object, below: float | None = None) -> None:
    """ValueError naming ``name`` unless 0 ≤ value (and value < ``below`` when given)."""
    if isinstance(value, Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise ValueError(f"{name} must be a number, got {value!r}")
    if value < 0 or (below is not None and value >= below):
        upper = "" if below is None else f" and < {below}"
        raise ValueError(f"{name} must be ≥ 0.0{upper}, got {value!r}")


def _run_closure(closure: Callable[[], Tensor] | None) -> Tensor | None:
    """The loss the closure recomputes (with gradients enabled inside ``step``'s no_grad), or None."""
    if closure is None:
        return None
    with torch.enable_grad():
        return closure()


def _with_gradients(group: dict) -> list[Tensor]:
    return [p for p in group["params"] if p.grad is not None]


def _by_device_and_dtype(params: list[Tensor]) -> dict[tuple, list[Tensor]]:
    """Multi-tensor kernels need tensors of one device and dtype: split the parameters accordingly."""
    buckets: dict[tuple, list[Tensor]] = defaultdict(list)
    for p in params:
        buckets[(p.device, p.dtype)].append(p)
    return buckets


# On a CPU the multi-tensor kernels run tensor after tensor, and each of Adam's seven operations streams
# every parameter, gradient and moment through memory once. Cutting the aligned tensors into blocks of
# this many elements, and running all operations on one block before the next, keeps a block's data in
# the cache between operations: on ResNet-18's parameters Adam's step gets about twice as fast. The
# arithmetic is elementwise, so the numbers are exactly the same. (SGD's three light operations gain
# nothing from it: the per-block overhead eats the saving, so SGD runs on whole lists.)
CPU_BLOCK_ELEMENTS = 131_072


def _blocks(tensor_lists: list[list[Tensor]]):
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
        _check_number("lr", group["lr"])
        _check_number("momentum", group["momentum"])
        _check_number("weight_decay", group["weight_decay"])
        _check_number("dampening", group["dampening"])
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError("nesterov=True needs momentum > 0 and dampening = 0, "
                             f"got momentum={group['momentum']!r}, dampening={group['dampening']!r}")
        super().add_param_group(param_group)

    @torch.no_grad()
    def step(self, closure: Callable[[], Tensor] | None = None) -> Tensor | None:
        """Update every parameter that has a gradient; return the closure's loss, if one is given."""
        loss = _run_closure(closure)
        for group in self.param_groups:
            hyper = dict(lr=group["lr"], momentum=group["momentum"], dampening=group["dampening"],
                         weight_decay=group["weight_decay"], nesterov=group["nesterov"])
            params = _with_gradients(group)
            keep_velocity = group["momentum"] != 0  # without momentum there is no state, as in torch.optim
            if group["foreach"]:
                for bucket in _by_device_and_dtype(params).values():
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
        _check_number("lr", group["lr"])
        _check_number("eps", group["eps"])
        _check_number("weight_decay", group["weight_decay"])
        betas = group["betas"]
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(f"betas must be a pair (beta1, beta2), got {betas!r}")
        _check_number("betas[0]", betas[0], below=1.0)
        _check_number("betas[1]", betas[1], below=1.0)
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
        elif isinstance(state["step"], Tensor):  # a state saved by torch.optim
            state["step"] = int(state["step"].item())
        return state

    @torch.no_grad()
    def step(self, closure: Callable[[], Tensor] | None = None) -> Tensor | None:
        """Update every parameter that has a gradient; return the closure's loss, if one is given."""
        loss = _run_closure(closure)
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            hyper = dict(lr=group["lr"], beta1=beta1, beta2=beta2, eps=group["eps"],
                         weight_decay=group["weight_decay"], decoupled=self.decoupled_weight_decay)
            amsgrad = group["amsgrad"]
            params = _with_gradients(group)
            for p in params:
                self._state_of(p, amsgrad)["step"] += 1
            if group["foreach"]:
                for bucket in _by_device_and_dtype(params).values():
                    states = [self.state[p] for p in bucket]
                    lists = [bucket, [p.grad for p in bucket], [s["exp_avg"] for s in states], [s["exp_avg_sq"] for s in states]]
                    if amsgrad:
                        lists.append([s["max_exp_avg_sq"] for s in states])
                    for indices, (ws, gs, ms, vs, *v_maxs) in _blocks(lists):
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
