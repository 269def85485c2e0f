"""Checkerboard artifacts: why a stride-2 transposed convolution paints a grid, and how to avoid it.

A transposed convolution with kernel k and stride s spreads each input pixel over a k×k patch of the output,
moving s output pixels per input pixel. When k is not a multiple of s the patches **overlap unevenly**: with
k = 3, s = 2 an output pixel is covered by 1, 2 or 4 patches depending on the parity of its row and column
(Odena, Dumoulin & Olah, "Deconvolution and checkerboard artifacts", Distill 2016). A network must learn weights
that cancel this pattern exactly, which it rarely does, so its images show a grid at period s. (It is not about a
stride "longer than the filter", nor about the zeros inserted between input pixels — the thesis mixes these up.)

The **overlap map** counts, for every output pixel, how many (input pixel, kernel tap) pairs write to it: the output
of the layer for an all-ones input and all-ones weights. Two fixes:

- k divisible by s (k = 4, s = 2): every interior pixel is covered equally (4 times). A partial fix: the weights
  can still differ between the taps that reach the four parity classes.
- **resize-convolution**: nearest-neighbour upsampling by s, then an ordinary stride-1 convolution: every interior
  pixel sees k² taps. (Strided *convolutions* have the same uneven overlap in their gradients.)

`checkerboard_score` measures a grid in an image: the mean energy of each of the four (row parity, column parity)
classes, relative to their mean; equal classes (1 : 1 : 1 : 1) mean no period-2 pattern.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def overlap_map(kernel_size: int, stride: int, padding: int = 0, output_padding: int = 0, size: int = 8,
                resize: bool = False) -> Tensor:
    """How many (input pixel, kernel tap) pairs reach each output pixel of a stride-``stride`` upsampling of a
    ``size``×``size`` input: a ConvTranspose2d, or with ``resize`` nearest upsampling then a stride-1 convolution."""
    for name, value in [("kernel_size", kernel_size), ("stride", stride), ("size", size)]:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    ones = torch.ones(1, 1, size, size, dtype=torch.float64)
    kernel = torch.ones(1, 1, kernel_size, kernel_size, dtype=torch.float64)
    if resize:
        upsampled = F.interpolate(ones, scale_factor=stride, mode="nearest")
        return F.conv2d(upsampled, kernel, padding=padding)[0, 0]
    return F.conv_transpose2d(ones, kernel, stride=stride, padding=padding, output_padding=output_padding)[0, 0]


def parity_energies(image: Tensor) -> Tensor:
    """Mean squared value of the pixels in each parity class (even/odd row × even/odd column) of the last two
    dimensions, divided by their mean: a (2, 2) tensor, all ones for an image without a period-2 pattern."""
    if image.dim() < 2:
        raise ValueError(f"image must have at least 2 dimensions (H, W), got shape {tuple(image.shape)}")
    x = image.detach().double()
    energies = torch.stack([torch.stack([x[..., r::2, c::2].pow(2).mean() for c in (0, 1)]) for r in (0, 1)])
    return energies / energies.mean().clamp_min(1e-300)


def checkerboard_score(image: Tensor) -> float:
    """Standard deviation / mean of the four parity-class energies: 0 for no period-2 grid."""
    return float(parity_energies(image).std(unbiased=False))
