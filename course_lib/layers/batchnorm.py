"""Batch normalization (Ioffe and Szegedy, 2015), forward and backward written by hand.

Each channel c of the input is normalized with statistics over the N values it takes in the batch
(N = B for an input (B, C); N = B·L for (B, C, L); N = B·H·W for (B, C, H, W)):

    training:  m̂ = (1/N) Σ x,    v̂ = (1/N) Σ (x − m̂)²                 (biased variance)
    always:    z = (x − m̂) / √(v̂ + ε),    y = γ z + β                    (γ, β: learned, per channel)

and running estimates for test time are updated at every training step, with the *unbiased* variance:

    r_m ← (1 − μ) r_m + μ m̂,    r_v ← (1 − μ) r_v + μ · N/(N − 1) · v̂     (μ: ``momentum``, 0.1)

(with ``momentum=None``, μ = 1/k at the k-th batch: a plain average of all batches). In eval mode m̂ and
v̂ are replaced by r_m and r_v, and batch normalization becomes a fixed per-channel affine map, which
`fold_batchnorm` merges into the preceding Linear or Conv2d layer.

Backward (derived in lecture 04). Given ∂L/∂y, per channel, with Σ over the channel's N values:

    ∂L/∂β = Σ ∂L/∂y,        ∂L/∂γ = Σ ∂L/∂y · z,
    ∂L/∂x = γ / (N √(v̂ + ε)) · ( N ∂L/∂y − Σ ∂L/∂y − z Σ (∂L/∂y · z) ).

The code evaluates ∂L/∂x as a·(∂L/∂y) + b·(x − m̂) + c with per-channel coefficients a, b, c, the same
formula with its sums factored out, which reads each large tensor only a few times.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor


def _channel_layout(x: Tensor, num_features: int, allowed_dims: tuple[int, ...], name: str) -> tuple[int, ...]:
    """The broadcast shape of a per-channel vector for x, (1, C, 1, ...), after checking x's shape."""
    if x.dim() not in allowed_dims:
        shapes = " or ".join(f"{d}-D" for d in allowed_dims)
        raise ValueError(f"{name} expects a {shapes} input (batch, channels, ...), got shape {tuple(x.shape)}")
    if x.shape[1] != num_features:
        raise ValueError(f"{name}(num_features={num_features}) got an input with {x.shape[1]} channels, shape {tuple(x.shape)}")
    return (1, num_features) + (1,) * (x.dim() - 2)


class BatchNormFunction(torch.autograd.Function):
    """y = γ (x − m̂)/√(v̂ + ε) + β with batch statistics m̂, v̂; the backward of the module's docstring.

    forward(x, weight, bias, eps) → (y, m̂, v̂): x (B, C, ...), weight and bias (C,) or None,
    y like x, m̂ and v̂ (C,) (v̂ biased; they carry no gradient).
    """

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor | None, bias: Tensor | None, eps: float):
        reduce = (0,) + tuple(range(2, x.dim()))
        shape = (1, x.shape[1]) + (1,) * (x.dim() - 2)
        mean = x.mean(dim=reduce)  # m̂ per channel
        centered = x - mean.view(shape)  # x − m̂
        # Large tensors are allocated twice only (x − m̂ and y): fresh memory costs page faults, so
        # (x − m̂)² is formed in y's buffer before y itself is written there.
        y = torch.mul(centered, centered, out=torch.empty_like(x))
        var = y.mean(dim=reduce)  # v̂, from x − m̂ (no cancellation, unlike E[x²] − m̂²)
        inv_std = torch.rsqrt(var + eps)  # 1/√(v̂ + ε)
        gamma = weight if weight is not None else torch.ones_like(mean)
        beta = bias if bias is not None else torch.zeros_like(mean)
        scale = gamma * inv_std  # y = γ (x − m̂)/√(v̂ + ε) + β
        torch.addcmul(beta.view(shape), centered, scale.view(shape), out=y)
        ctx.save_for_backward(centered, inv_std, gamma)
        ctx.mark_non_differentiable(mean, var)
        return y, mean, var

    @staticmethod
    def backward(ctx, grad_y: Tensor, _grad_mean: Tensor, _grad_var: Tensor):
        centered, inv_std, gamma = ctx.saved_tensors  # x − m̂, 1/√(v̂ + ε), γ
        reduce = (0,) + tuple(range(2, centered.dim()))
        shape = (1, centered.shape[1]) + (1,) * (centered.dim() - 2)
        n = centered.numel() // centered.shape[1]
        buffer = torch.mul(grad_y, centered, out=torch.empty_like(centered))  # becomes ∂L/∂x below
        sum_dy = grad_y.sum(dim=reduce)  # Σ ∂L/∂y
        sum_dy_z = buffer.sum(dim=reduce) * inv_std  # Σ ∂L/∂y · z, with z = (x − m̂)/√(v̂ + ε)
        grad_x = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:
            # ∂L/∂x = γ/(N√(v̂+ε)) (N dy − Σdy − z Σ dy·z) = a·dy + b·(x − m̂) + c
            a = gamma * inv_std
            b = -a * inv_std * sum_dy_z / n
            c = -a * sum_dy / n
            grad_x = torch.addcmul(c.view(shape), centered, b.view(shape), out=buffer).addcmul_(grad_y, a.view(shape))
        if ctx.needs_input_grad[1]:  # False when weight is None
            grad_weight = sum_dy_z
        if ctx.needs_input_grad[2]:
            grad_bias = sum_dy
        return grad_x, grad_weight, grad_bias, None


class _BatchNorm(torch.nn.Module):
    """What BatchNorm1d and BatchNorm2d share; they differ only in the input shapes they accept."""

    input_dims: tuple[int, ...] = ()

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = True, track_running_stats: bool = True):
        super().__init__()
        if isinstance(num_features, bool) or not isinstance(num_features, int) or num_features < 1:
            raise ValueError(f"num_features must be a positive int, got {num_features!r}")
        if not eps > 0:
            raise ValueError(f"eps must be > 0, got {eps!r}")
        if momentum is not None and not 0.0 <= momentum <= 1.0:
            raise ValueError(f"momentum must be in [0, 1] or None (cumulative average), got {momentum!r}")
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        if affine:
            self.weight = torch.nn.Parameter(torch.ones(num_features))  # γ
            self.bias = torch.nn.Parameter(torch.zeros(num_features))  # β
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", torch.zeros(num_features))  # r_m
            self.register_buffer("running_var", torch.ones(num_features))  # r_v
            self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)

    def reset_running_stats(self) -> None:
        if self.track_running_stats:
            self.running_mean.zero_()
            self.running_var.fill_(1.0)
            self.num_batches_tracked.zero_()

    def forward(self, x: Tensor) -> Tensor:
        shape = _channel_layout(x, self.num_features, self.input_dims, type(self).__name__)
        use_batch_statistics = self.training or self.running_mean is None
        if not use_batch_statistics:  # eval: the fixed affine map with the running estimates
            scale = torch.rsqrt(self.running_var + self.eps)
            if self.weight is not None:
                scale = self.weight * scale
            shift = -self.running_mean * scale
            if self.bias is not None:
                shift = shift + self.bias
            return torch.addcmul(shift.view(shape), x, scale.view(shape))
        n = x.numel() // self.num_features
        if n < 2:
            raise ValueError(f"{type(self).__name__} needs more than one value per channel in training, got shape {tuple(x.shape)}")
        y, mean, var = BatchNormFunction.apply(x, self.weight, self.bias, self.eps)
        if self.training and self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked += 1
                mu = 1.0 / self.num_batches_tracked.item() if self.momentum is None else self.momentum
                self.running_mean.mul_(1 - mu).add_(mean, alpha=mu)
                self.running_var.mul_(1 - mu).add_(var * (n / (n - 1)), alpha=mu)  # unbiased v̂
        return y

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    """``torch.nn.BatchNorm1d`` from scratch, for inputs (B, C) or (B, C, L)."""

    input_dims = (2, 3)


class BatchNorm2d(_BatchNorm):
    """``torch.nn.BatchNorm2d`` from scratch, for inputs (B, C, H, W)."""

    input_dims = (4,)


def eval_affine(bn: torch.nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """(s, t) with bn(x) = s ⊙ x + t in eval mode: s = γ / √(r_v + ε), t = β − s ⊙ r_m (per feature)."""
    running_mean, running_var = getattr(bn, "running_mean", None), getattr(bn, "running_var", None)
    if running_mean is None or running_var is None:
        raise ValueError("bn must track running statistics (track_running_stats=True): eval mode uses them")
    with torch.no_grad():
        scale = torch.rsqrt(running_var + bn.eps)
        if bn.weight is not None:
            scale = scale * bn.weight
        shift = -running_mean * scale
        if bn.bias is not None:
            shift = shift + bn.bias
    return scale, shift


def fold_batchnorm(layer: torch.nn.Linear | torch.nn.Conv2d, bn: torch.nn.Module) -> torch.nn.Linear | torch.nn.Conv2d:
    """One layer equal to ``bn(layer(x))`` with ``bn`` in eval mode (its running statistics).

    With s = γ / √(r_v + ε) per output unit or channel: W' = s ⊙ W (each output row scaled),
    b' = s ⊙ (b − r_m) + β. Works with course_lib's and torch's BatchNorm; returns a new layer (in ``layer``'s
    dtype) and leaves both inputs unchanged.
    """
    if not isinstance(layer, (torch.nn.Linear, torch.nn.Conv2d)):
        raise ValueError(f"layer must be a torch.nn.Linear or torch.nn.Conv2d, got {type(layer).__name__}")
    outputs = layer.out_features if isinstance(layer, torch.nn.Linear) else layer.out_channels
    if bn.num_features != outputs:
        raise ValueError(f"bn has {bn.num_features} features but the layer has {outputs} outputs")
    scale, shift = eval_affine(bn)
    with torch.no_grad():
        bias = layer.bias if layer.bias is not None else torch.zeros_like(shift)
        folded_bias = bias * scale + shift
        folded = copy.deepcopy(layer)
        weight = layer.weight * scale.view(-1, *([1] * (layer.weight.dim() - 1)))  # output row i times s_i
        folded.weight = torch.nn.Parameter(weight.to(layer.weight.dtype))
        folded.bias = torch.nn.Parameter(folded_bias.to(layer.weight.dtype))
    return folded


def fold_batchnorm_into_next(bn: torch.nn.Module, layer: torch.nn.Linear) -> torch.nn.Linear:
    """One Linear layer equal to ``layer(bn(x))`` with ``bn`` in eval mode: batch normalization *before* a Linear.

    With s = γ / √(r_v + ε) and t = β − s ⊙ r_m per input unit, bn(x) = s ⊙ x + t, so
    layer(bn(x)) = W (s ⊙ x + t) + b = (W diag(s)) x + (W t + b): each *column* of W is scaled, and the shift
    moves into the bias through W. (After a ReLU the normalization cannot be folded into the layer before it; it
    can always be folded into the layer after it, as here.) Returns a new layer (in ``layer``'s dtype); both inputs
    stay unchanged.
    """
    if not isinstance(layer, torch.nn.Linear):
        raise ValueError(f"layer must be a torch.nn.Linear, got {type(layer).__name__}")
    if bn.num_features != layer.in_features:
        raise ValueError(f"bn has {bn.num_features} features but the layer has {layer.in_features} inputs")
    scale, shift = eval_affine(bn)
    with torch.no_grad():
        dtype = torch.promote_types(layer.weight.dtype, shift.dtype)  # W @ t needs one dtype: the wider one
        weight, shift = layer.weight.to(dtype), shift.to(dtype)
        bias = weight @ shift  # W t (+ b)
        if layer.bias is not None:
            bias = bias + layer.bias
        folded = copy.deepcopy(layer)
        folded.weight = torch.nn.Parameter((weight * scale).to(layer.weight.dtype))  # column j of W times s_j
        folded.bias = torch.nn.Parameter(bias.to(layer.weight.dtype))
    return folded
