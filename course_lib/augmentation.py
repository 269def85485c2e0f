"""Data augmentation on the device: each image of a batch rotated and shifted at random, a little.

A digit rotated by a few degrees or moved by a pixel is still the same digit. Training on such variants of the
training images, drawn afresh at every epoch, is **data augmentation**: it tells the network which changes of the input
must not change its answer, something a small training set cannot show it.

Image b (of shape C×H×W) is mapped by a rotation by θ_b about its centre followed by a shift (t_x, t_y)_b in pixels,

    θ_b ~ U(−max_degrees, max_degrees),    t_x, t_y ~ U(−max_shift, max_shift),

and resampled with bilinear interpolation; pixels that come from outside the image repeat the nearest border pixel (the
background, for digits). In the normalized coordinates of `torch.nn.functional.affine_grid` (u = 2x/W, v = 2y/H,
x to the right and y downwards, in pixels from the centre), the output pixel at (u, v) reads the input at

    [u_in]   [ cos θ            −sin θ · H/W ] [u − 2t_x/W]
    [v_in] = [ sin θ · W/H       cos θ       ] [v − 2t_y/H],

the inverse map of "rotate by θ, then shift by t". A positive θ turns the image counter-clockwise as displayed (rows
going down), like `torchvision.transforms.functional.rotate`.

Shapes: x (B, C, H, W) → (B, C, H, W); ``degrees``, ``shift_x``, ``shift_y`` (B,).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def affine(x: Tensor, degrees: Tensor, shift_x: Tensor, shift_y: Tensor) -> Tensor:
    """Rotate image b of ``x`` by ``degrees[b]`` (counter-clockwise) about its centre, then shift it by
    (``shift_x[b]``, ``shift_y[b]``) pixels (right, down)."""
    if x.dim() != 4:
        raise ValueError(f"x must be a batch of images (B, C, H, W), got shape {tuple(x.shape)}")
    batch, _, height, width = x.shape
    for name, value in (("degrees", degrees), ("shift_x", shift_x), ("shift_y", shift_y)):
        if value.shape != (batch,):
            raise ValueError(f"{name} must hold one value per image, shape ({batch},), got {tuple(value.shape)}")
    theta = degrees.to(x) * math.pi / 180
    cos, sin = theta.cos(), theta.sin()
    u = shift_x.to(x) * 2 / width
    v = shift_y.to(x) * 2 / height
    a = torch.stack([
        torch.stack([cos, -sin * height / width, -(cos * u - sin * height / width * v)], dim=1),
        torch.stack([sin * width / height, cos, -(sin * width / height * u + cos * v)], dim=1),
    ], dim=1)  # (B, 2, 3): input coordinates as a function of output coordinates
    grid = F.affine_grid(a, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def check_limits(max_degrees: float, max_shift: float) -> None:
    """A ValueError naming the argument unless both limits are finite non-negative numbers."""
    for name, value in (("max_degrees", max_degrees), ("max_shift", max_shift)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < math.inf:
            raise ValueError(f"{name} must be a non-negative number, got {value!r}")


def random_affine(x: Tensor, max_degrees: float, max_shift: float, generator: torch.Generator | None = None) -> Tensor:
    """`affine` with θ_b ~ U(−max_degrees, max_degrees) and shifts ~ U(−max_shift, max_shift) pixels, drawn on the
    CPU from ``generator`` (the same draws on every device)."""
    check_limits(max_degrees, max_shift)
    draws = torch.rand(3, x.shape[0], generator=generator) * 2 - 1  # U(−1, 1)
    return affine(x, draws[0] * max_degrees, draws[1] * max_shift, draws[2] * max_shift)


class AugmentedBatches:
    """The batches of ``batches`` (any re-iterable of (x, y)) with x replaced by `random_affine`(x): new variants
    of every image at every epoch; y unchanged."""

    def __init__(self, batches, max_degrees: float = 10.0, max_shift: float = 1.0,
                 generator: torch.Generator | None = None):
        check_limits(max_degrees, max_shift)  # before training starts, and without drawing any random number
        self.batches, self.max_degrees, self.max_shift, self.generator = batches, max_degrees, max_shift, generator

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self):
        for x, y in self.batches:
            yield random_affine(x, self.max_degrees, self.max_shift, self.generator), y
