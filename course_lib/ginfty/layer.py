"""The g_∞ meta-layer (B. Meier): a residual stack whose depth is a trainable parameter w.

The depth gate. For a sub-layer index x and the depth parameter w,

    δ_w(x) = ReLU(1 − e^{x − w})          (the paper's stretched variant: δ_{w;α}(x) = ReLU(1 − e^{α(x − w)}))

is 1 − e^{x−w} ∈ (0, 1) for x < w and exactly 0 for x ≥ w. It is computed as 1 − e^{−ReLU(w − x)}
(``-expm1(-relu(w - x))``): the same values, no overflow for x ≫ w (where e^{x−w} would be infinite and its
gradient NaN), full precision for x just below w, and a zero gradient at x = w (ReLU'(0) = 0).

The layer. With sub-layers f_0, f_1, … that keep the shape of their input and an idempotent h (h∘h = h,
e.g. ReLU):

    g_0(x) = x,    g_{i+1}(x) = h( g_i(x) + δ_w(i) · f_i(g_i(x)) ),    g_∞(x) = lim g_n(x) = h(g_{A(w)}(x))

where A(w) = max(0, ⌈w⌉): every sub-layer i ≥ w has δ_w(i) = 0 and only applies h again, so the infinite
composition is a finite one, and only A(w) sub-layers (their parameters, and w itself) take part. w ≤ 0
gives h(x). (The paper writes f_i(x) inside the recursion; its reference code, and this module, apply f_i
to g_i(x).)

`GInfinity` keeps a finite stock of sub-layers, its *capacity* C ≥ A(w), in an ``nn.ModuleList``, and
evaluates only the A(w) active ones (``run_inactive=True`` evaluates all C, multiplied by δ = 0, as the
reference implementation does). When training pushes w past C, `GInfinity.grow` appends sub-layers, in
steps of ``w_step``, on w's device and dtype, and registers them with the optimizer without touching the
state of the existing parameters (the reference rebuilt the model and lost the optimizer's state).

The regularizers (the paper's §III.C) keep the depth from growing for free:

    R = λ_w · w²  +  λ_f · Σ_i δ_w(i + ε) · Σ γ_i²

with γ_i the scale of the last batch normalization inside f_i. Without the second term a sub-layer could
compensate a small δ_w(i) by growing its own output; δ_w(i + ε) makes the penalty of sub-layer i vanish, with
its gradient, exactly when the sub-layer is inactive (w ≤ i). ε = 10⁻⁷ as in the reference code (the paper
says 10⁻⁸); it is subtracted from w − i after forming that difference, so it survives float32.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor, nn

from course_lib.layers.batchnorm import _BatchNorm as CourseBatchNorm

EPSILON = 1e-7
_BATCHNORMS = (nn.modules.batchnorm._BatchNorm, CourseBatchNorm)


def delta_w(x: float | Tensor, w: Tensor, alpha: float | Tensor = 1.0, shift: float = 0.0) -> Tensor:
    """δ_{w;α}(x) = ReLU(1 − e^{α(x − w)}), evaluated as 1 − e^{−α·ReLU((w − x) − shift)}.

    ``shift`` = ε gives δ_w(x + ε) with ε applied after w − x is formed (exact in float32). ``alpha`` > 0
    stretches the gate (the paper's δ_{w;α}); α = 1 is δ_w. Broadcasts like ``w - x``.
    """
    if isinstance(alpha, (int, float)) and alpha <= 0:
        raise ValueError(f"alpha must be > 0, got {alpha!r}")
    return -torch.expm1(-alpha * torch.relu((w - x) - shift))


def active_count(w: float) -> int:
    """A(w) = max(0, ⌈w⌉): how many sub-layers a depth w uses."""
    return max(0, math.ceil(w))


def capacity_for(w: float, w_step: int) -> int:
    """The smallest multiple of ``w_step`` that holds A(w) sub-layers (at least one step)."""
    return max(1, math.ceil(active_count(w) / w_step)) * w_step


def last_batchnorm(module: nn.Module) -> nn.Module | None:
    """The last batch normalization inside ``module`` (course_lib's or torch's), or None."""
    found = None
    for sub in module.modules():
        if isinstance(sub, _BATCHNORMS):
            found = sub
    return found


def last_kernel(module: nn.Module) -> Tensor | None:
    """The weight of the last Linear or convolution inside ``module``, or None."""
    found = None
    for sub in module.modules():
        if isinstance(sub, (nn.Linear, nn.modules.conv._ConvNd)):
            found = sub.weight
    return found


class GInfinity(nn.Module):
    """The generalized g_{f_i; h; ∞} layer; see the module's docstring.

    ``make_sublayer(i)`` builds f_i, any module whose output has its input's shape; ``h`` is an idempotent
    function or module (ReLU by default); ``w_init`` the initial depth (1.0); ``w_step`` the growth step (5);
    ``alpha`` the stretch of δ; ``residual=False`` uses the convex variant g_{i+1} = h((1 − δ) g_i + δ f_i(g_i)).
    ``lambda_w``, ``lambda_f`` weigh the two terms of `regularization`. Input and output: any shape f_i accepts.
    """

    def __init__(self, make_sublayer: Callable[[int], nn.Module], h: Callable[[Tensor], Tensor] | None = None,
                 w_init: float = 1.0, w_step: int = 5, alpha: float = 1.0, lambda_w: float = 0.0,
                 lambda_f: float = 0.0, residual: bool = True, run_inactive: bool = False,
                 penalize_beta: bool = False, penalize_kernel: bool = False, epsilon: float = EPSILON):
        super().__init__()
        if not isinstance(w_step, int) or w_step < 1:
            raise ValueError(f"w_step must be a positive int, got {w_step!r}")
        if alpha <= 0:
            raise ValueError(f"alpha must be > 0, got {alpha!r}")
        if lambda_w < 0 or lambda_f < 0:
            raise ValueError(f"lambda_w and lambda_f must be ≥ 0, got {lambda_w!r} and {lambda_f!r}")
        if not math.isfinite(w_init):
            raise ValueError(f"w_init must be a finite number, got {w_init!r}")
        self.make_sublayer = make_sublayer
        self.h = h if h is not None else nn.ReLU()
        self.w = nn.Parameter(torch.tensor(float(w_init)))
        self.w_step, self.alpha, self.residual, self.run_inactive = w_step, alpha, residual, run_inactive
        self.lambda_w, self.lambda_f, self.epsilon = lambda_w, lambda_f, epsilon
        self.penalize_beta, self.penalize_kernel = penalize_beta, penalize_kernel
        self.sublayers = nn.ModuleList()
        self._add_sublayers(capacity_for(float(w_init), w_step))
        self.register_load_state_dict_pre_hook(self._grow_for_checkpoint)

    # --- capacity ------------------------------------------------------------------------------------

    @property
    def capacity(self) -> int:
        return len(self.sublayers)

    def active(self) -> int:
        """A(w) for the current w (reads w from the device)."""
        return active_count(self.w.item())

    def _add_sublayers(self, capacity: int) -> list[nn.Parameter]:
        new_parameters = []
        while len(self.sublayers) < capacity:
            sublayer = self.make_sublayer(len(self.sublayers)).to(device=self.w.device, dtype=self.w.dtype)
            sublayer.train(self.training)
            self.sublayers.append(sublayer)
            new_parameters += list(sublayer.parameters())
        return new_parameters

    def grow(self, optimizer: torch.optim.Optimizer | None = None) -> list[nn.Parameter]:
        """If A(w) exceeds the capacity, append sub-layers up to the next multiple of ``w_step`` and add their
        parameters to ``optimizer`` as a new group with the hyper-parameters of w's group. Nothing else in the
        optimizer changes. Returns the new parameters (empty when no growth was needed)."""
        needed = self.active()
        if needed <= self.capacity:
            return []
        new_parameters = self._add_sublayers(capacity_for(self.w.item(), self.w_step))
        if optimizer is not None and new_parameters:
            settings = next((g for g in optimizer.param_groups if any(p is self.w for p in g["params"])),
                            optimizer.param_groups[0])
            optimizer.add_param_group({**settings, "params": new_parameters})
        return new_parameters

    def _grow_for_checkpoint(self, module, state_dict, prefix, *args) -> None:
        """Before loading a checkpoint saved at a larger capacity, create the sub-layers it holds."""
        indices = [int(key[len(prefix + "sublayers."):].split(".")[0])
                   for key in state_dict if key.startswith(prefix + "sublayers.")]
        if indices:
            self._add_sublayers(max(indices) + 1)

    # --- forward ---------------------------------------------------------------------------------------

    def forward(self, x: Tensor) -> Tensor:
        active = self.active()
        if active > self.capacity:
            raise RuntimeError(f"w = {self.w.item():.4f} needs {active} sub-layers but only {self.capacity} exist: "
                               "call grow(optimizer) after each optimizer step (course_lib.ginfty.grow_all)")
        g = x
        for i in range(self.capacity if self.run_inactive else active):
            f = self.sublayers[i](g)
            if f.shape != g.shape:
                raise ValueError(f"sub-layer {i} changed the shape from {tuple(g.shape)} to {tuple(f.shape)}; "
                                 "g_infty needs sub-layers that keep the shape of their input")
            gate = delta_w(i, self.w, self.alpha)
            g = self.h(g + gate * f) if self.residual else self.h((1 - gate) * g + gate * f)
        return self.h(g)

    # --- regularization and accounting -------------------------------------------------------------------

    def regularization(self) -> Tensor:
        """λ_w w² + λ_f Σ_{i < min(A, C)} δ_w(i + ε) Σ γ_i² (plus β_i² and the last kernel's squares if asked).

        Only active sub-layers contribute (for i ≥ w the factor δ_w(i + ε) is 0, with a zero gradient), so
        inactive ones get no gradient at all.
        """
        total = self.lambda_w * self.w ** 2
        if self.lambda_f == 0:
            return total
        for i in range(min(self.active(), self.capacity)):
            sublayer, penalty = self.sublayers[i], 0.0
            bn = last_batchnorm(sublayer)
            if bn is not None and bn.weight is not None:
                penalty = penalty + (bn.weight ** 2).sum()
                if self.penalize_beta:
                    penalty = penalty + (bn.bias ** 2).sum()
            kernel = last_kernel(sublayer)
            if self.penalize_kernel and kernel is not None:
                penalty = penalty + (kernel ** 2).sum()
            total = total + self.lambda_f * delta_w(i, self.w, self.alpha, shift=self.epsilon) * penalty
        return total

    def parameters_in_use(self) -> int:
        """Trainable values that affect the output: those of the A(w) active sub-layers, plus w (BN buffers excluded)."""
        active = min(self.active(), self.capacity)
        return 1 + sum(p.numel() for i in range(active) for p in self.sublayers[i].parameters() if p.requires_grad)

    def telemetry(self) -> dict:
        """w, ⌈w⌉, the capacity and the parameters in use, for logging at each step."""
        w = self.w.item()
        return {"w": w, "ceil_w": math.ceil(w), "capacity": self.capacity, "parameters_in_use": self.parameters_in_use()}

    def extra_repr(self) -> str:
        return f"w={self.w.item():.4f}, capacity={self.capacity}, w_step={self.w_step}, alpha={self.alpha}"


def ginfinity_layers(model: nn.Module) -> list[GInfinity]:
    return [m for m in model.modules() if isinstance(m, GInfinity)]


def grow_all(model: nn.Module, optimizer: torch.optim.Optimizer | None = None) -> list[nn.Parameter]:
    """`GInfinity.grow` for every g_∞ layer of ``model``; call it after each optimizer step."""
    return [p for layer in ginfinity_layers(model) for p in layer.grow(optimizer)]


def regularization(model: nn.Module) -> Tensor | float:
    """The sum of the regularizers of every g_∞ layer of ``model`` (add it to the task loss)."""
    terms = [layer.regularization() for layer in ginfinity_layers(model)]
    return sum(terms) if terms else 0.0
