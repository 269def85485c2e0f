"""Layer and group normalization (Ba, Kiros and Hinton, 2016; Wu and He, 2018): statistics per sample, not per batch.

Batch normalization averages each channel over the batch, so a sample's output depends on the other samples, small
batches give noisy statistics, and training (batch statistics) and evaluation (running estimates) compute different
functions. Layer and group normalization take the statistics inside one sample instead:

    LayerNorm:  for each sample, over the last dimensions ``normalized_shape`` (the D features of a (B, D) input, or
                C·H·W values of a (B, C, H, W) one with ``normalized_shape=(C, H, W)``);
    GroupNorm:  for each sample, over each of G groups of C/G consecutive channels and all their positions
                (G = 1: all channels, LayerNorm over (C, H, W); G = C: each channel alone, "instance norm").

With Σ over the n values of one sample (and group), the same formula as batch normalization's:

    m = (1/n) Σ x,    v = (1/n) Σ (x − m)²,    z = (x − m) / √(v + ε),    y = γ z + β

LayerNorm's γ, β have the shape ``normalized_shape`` (one per feature); GroupNorm's have one value per channel, (C,).
Nothing is averaged across the batch, so there are no running estimates: training and evaluation compute the same
function, for any batch size, one sample included. The backward pass is autograd's (exercise 04 derives it by hand).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


def normalize(x: Tensor, dims: tuple[int, ...], eps: float) -> Tensor:
    """z = (x − m) / √(v + ε) with the mean m and the biased variance v of x over ``dims``."""
    m = x.mean(dim=dims, keepdim=True)
    centered = x - m
    v = (centered * centered).mean(dim=dims, keepdim=True)
    return centered / torch.sqrt(v + eps)


def _check_eps(eps: object) -> None:
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not eps >= 0:
        raise ValueError(f"eps must be a number ≥ 0, got {eps!r}")


class LayerNorm(nn.Module):
    """Layer normalization over the last ``len(normalized_shape)`` dimensions; a drop-in for ``torch.nn.LayerNorm``
    (same arguments, defaults, parameter names and shapes)."""

    def __init__(self, normalized_shape: int | tuple[int, ...], eps: float = 1e-5, elementwise_affine: bool = True,
                 bias: bool = True, device=None, dtype=None):
        super().__init__()
        shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
        if not shape or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape):
            raise ValueError(f"normalized_shape must be a positive int or a non-empty tuple of them, got {normalized_shape!r}")
        _check_eps(eps)
        self.normalized_shape, self.eps, self.elementwise_affine = shape, eps, elementwise_affine
        factory = dict(device=device, dtype=dtype)
        self.weight = nn.Parameter(torch.ones(shape, **factory)) if elementwise_affine else None
        self.bias = nn.Parameter(torch.zeros(shape, **factory)) if elementwise_affine and bias else None

    def forward(self, x: Tensor) -> Tensor:
        """x (..., *normalized_shape) → y of the same shape."""
        k = len(self.normalized_shape)
        if x.dim() < k or tuple(x.shape[x.dim() - k:]) != self.normalized_shape:
            raise ValueError(f"LayerNorm(normalized_shape={self.normalized_shape}) expects an input whose last "
                             f"{k} dimension(s) are {self.normalized_shape}, got shape {tuple(x.shape)}")
        y = normalize(x, tuple(range(x.dim() - k, x.dim())), self.eps)
        if self.weight is not None:
            y = y * self.weight
        if self.bias is not None:
            y = y + self.bias
        return y

    def extra_repr(self) -> str:
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"


class GroupNorm(nn.Module):
    """Group normalization of a (B, C, ...) input in ``num_groups`` groups of channels; a drop-in for
    ``torch.nn.GroupNorm`` (same arguments, defaults, parameter names and shapes)."""

    def __init__(self, num_groups: int, num_channels: int, eps: float = 1e-5, affine: bool = True, device=None,
                 dtype=None):
        super().__init__()
        for name, value in (("num_groups", num_groups), ("num_channels", num_channels)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if num_channels % num_groups:
            raise ValueError(f"num_channels ({num_channels}) must be divisible by num_groups ({num_groups})")
        _check_eps(eps)
        self.num_groups, self.num_channels, self.eps, self.affine = num_groups, num_channels, eps, affine
        factory = dict(device=device, dtype=dtype)
        self.weight = nn.Parameter(torch.ones(num_channels, **factory)) if affine else None
        self.bias = nn.Parameter(torch.zeros(num_channels, **factory)) if affine else None

    def forward(self, x: Tensor) -> Tensor:
        """x (B, C, ...) → y of the same shape."""
        if x.dim() < 2 or x.shape[1] != self.num_channels:
            raise ValueError(f"GroupNorm(num_channels={self.num_channels}) expects an input (batch, {self.num_channels}, "
                             f"...), got shape {tuple(x.shape)}")
        b, c = x.shape[:2]
        grouped = x.reshape(b, self.num_groups, math.prod(x.shape[1:]) // self.num_groups)  # (B, G, C/G · positions)
        y = normalize(grouped, (2,), self.eps).reshape(x.shape)
        if self.affine:
            per_channel = (1, c) + (1,) * (x.dim() - 2)
            y = y * self.weight.view(per_channel) + self.bias.view(per_channel)
        return y

    def extra_repr(self) -> str:
        return f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}"
