"""Cheaper convolution blocks, each with its exact cost per output pixel.

With K input channels, L output channels and an N×N kernel, one output pixel of a standard convolution costs
N²·K·L multiply-accumulates (MACs). Three cheaper shapes:

- **1×N then N×1** (`Separable1D`, Alvarez & Petersson's DecomposeMe with P middle channels): N·K·P + N·P·L =
  N·P·(K + L) MACs, cheaper while P < N·K·L / (K + L).
- **depthwise separable** (`DepthwiseSeparableConv`, MobileNet): a depthwise N×N convolution gives each input
  channel I filters of its own (depth multiplier I), then a 1×1 convolution mixes the K·I channels into L:
  N²·K·I + K·I·L = **K·I·(N² + L)** MACs. (The thesis writes I·(K·N² + L), which is right only for K = 1: with
  K = 32, L = 64, N = 3, I = 1 the true count is 2 336 MACs per pixel, the thesis' formula gives 352.)
- **bottleneck** (He et al. 2016): 1×1 down to M channels, N×N at M channels, 1×1 back up:
  K·M + N²·M² + M·L. The residual version is `course_lib.layers.Bottleneck`.
"""

from __future__ import annotations

from torch import Tensor, nn


def _check_positive_ints(**values: int) -> None:
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")


class Separable1D(nn.Module):
    """A trainable 1×N → N×1 pair with ``mid_channels`` channels between, then an optional norm and activation."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, mid_channels: int, stride: int = 1,
                 norm: type[nn.Module] | None = None, activation: type[nn.Module] | None = None):
        super().__init__()
        _check_positive_ints(in_channels=in_channels, out_channels=out_channels, kernel_size=kernel_size,
                             mid_channels=mid_channels, stride=stride)
        pad = kernel_size // 2
        self.horizontal = nn.Conv2d(in_channels, mid_channels, (1, kernel_size), stride=(1, stride), padding=(0, pad),
                                    bias=False)
        self.vertical = nn.Conv2d(mid_channels, out_channels, (kernel_size, 1), stride=(stride, 1), padding=(pad, 0),
                                  bias=norm is None)
        self.norm = norm(out_channels) if norm is not None else nn.Identity()
        self.activation = activation() if activation is not None else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return self.activation(self.norm(self.vertical(self.horizontal(x))))

    def macs_per_pixel(self) -> int:
        """N·P·(K + L)."""
        n, p = self.horizontal.kernel_size[1], self.horizontal.out_channels
        return n * p * (self.horizontal.in_channels + self.vertical.out_channels)


class DepthwiseSeparableConv(nn.Module):
    """Depthwise N×N (groups = K, K·I outputs) → [norm, activation] → pointwise 1×1 (K·I → L) → [norm, activation].

    ``norm`` and ``activation`` are classes (e.g. nn.BatchNorm2d, nn.ReLU) or None for a purely linear block.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 depth_multiplier: int = 1, norm: type[nn.Module] | None = nn.BatchNorm2d,
                 activation: type[nn.Module] | None = nn.ReLU):
        super().__init__()
        _check_positive_ints(in_channels=in_channels, out_channels=out_channels, kernel_size=kernel_size,
                             stride=stride, depth_multiplier=depth_multiplier)
        mid = in_channels * depth_multiplier
        self.depthwise = nn.Conv2d(in_channels, mid, kernel_size, stride=stride, padding=kernel_size // 2,
                                   groups=in_channels, bias=norm is None)
        self.norm1 = norm(mid) if norm is not None else nn.Identity()
        self.act1 = activation() if activation is not None else nn.Identity()
        self.pointwise = nn.Conv2d(mid, out_channels, 1, bias=norm is None)
        self.norm2 = norm(out_channels) if norm is not None else nn.Identity()
        self.act2 = activation() if activation is not None else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return self.act2(self.norm2(self.pointwise(self.act1(self.norm1(self.depthwise(x))))))

    def macs_per_pixel(self) -> int:
        """K·I·(N² + L) at the output resolution."""
        k, n = self.depthwise.in_channels, self.depthwise.kernel_size[0]
        i = self.depthwise.out_channels // k
        return k * i * (n * n + self.pointwise.out_channels)
