"""Residual networks (He et al., 2015): blocks that learn a residual on top of an identity pass-through.

A residual block computes

    y = ReLU( f(x) + shortcut(x) )

where f is a small stack of convolutions and batch normalizations and the shortcut is the identity
whenever the shapes allow it. The parameters of f only have to learn the *difference* between the
block's input and the output it needs, and a network whose f's output zero is exactly the identity:
with the last batch normalization of each f started at γ = 0 (``zero_init_residual``), the whole
network starts as a shallow one and grows into its depth.

Shapes: every block maps (B, C_in, H, W) to (B, C_out, H/s, W/s) for a stride s ∈ {1, 2}.

- `BasicBlock`: f = conv3×3(stride s) → BN → ReLU → conv3×3 → BN, C_out = channels; `PlainBlock` is the
  same without the shortcut, y = ReLU(f(x)), for comparison.
- `Bottleneck`: f = conv1×1 → BN → ReLU → conv3×3(stride s) → BN → ReLU → conv1×1 → BN, with the 3×3
  convolution on ``channels`` and C_out = 4·channels (the 1×1 convolutions shrink, then expand).

When s = 2 or C_out ≠ C_in the identity no longer fits, and the shortcut is one of

- ``"padding"`` (He et al.'s option A, no parameters): keep the input on a stride-s grid (1/4 of the
  positions for s = 2) and append C_out − C_in channels of zeros;
- ``"projection"`` (option B, torchvision's): a 1×1 convolution with stride s followed by BN, i.e. the same
  learned linear map R^{C_in} → R^{C_out} applied at every position of the grid.

`ResNet` stacks a stem, four stages of blocks (the first block of a stage downsamples), a global
average pooling (one number per channel) and a linear classifier. `resnet18` and `resnet50` reproduce
torchvision's layouts module for module, so their ``state_dict`` loads into ours unchanged;
`small_resnet` is a narrow version for 28×28 digits.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn

from course_lib.layers.batchnorm import BatchNorm2d

SHORTCUTS = ("projection", "padding")


def _norm_factory(batchnorm: str) -> Callable[[int], nn.Module]:
    if batchnorm == "course":
        return BatchNorm2d
    if batchnorm == "torch":
        return nn.BatchNorm2d
    raise ValueError(f"batchnorm must be 'course' (course_lib.layers.BatchNorm2d) or 'torch' (torch.nn.BatchNorm2d), got {batchnorm!r}")


class PaddingShortcut(nn.Module):
    """The parameter-free shortcut: x[:, :, ::s, ::s] with C_out − C_in zero channels appended."""

    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        if out_channels < in_channels:
            raise ValueError(f"a padding shortcut cannot reduce channels ({in_channels} → {out_channels}); use 'projection'")
        self.extra_channels, self.stride = out_channels - in_channels, stride

    def forward(self, x: Tensor) -> Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        if self.extra_channels == 0:
            return x
        zeros = x.new_zeros(x.shape[0], self.extra_channels, x.shape[2], x.shape[3])
        return torch.cat([x, zeros], dim=1)

    def extra_repr(self) -> str:
        return f"stride={self.stride}, extra_channels={self.extra_channels}"


def make_shortcut(kind: str, in_channels: int, out_channels: int, stride: int, norm: Callable[[int], nn.Module]) -> nn.Module | None:
    """None (the identity) when the shapes match, else the shortcut of the given ``kind``."""
    if kind not in SHORTCUTS:
        raise ValueError(f"shortcut must be one of {SHORTCUTS}, got {kind!r}")
    if stride == 1 and in_channels == out_channels:
        return None
    if kind == "padding":
        return PaddingShortcut(in_channels, out_channels, stride)
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False), norm(out_channels))


def _check_block_arguments(in_channels: int, channels: int, stride: int) -> None:
    for name, value in (("in_channels", in_channels), ("channels", channels)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    if stride not in (1, 2):
        raise ValueError(f"stride must be 1 or 2, got {stride!r}")


class BasicBlock(nn.Module):
    """y = ReLU(BN(conv3×3(ReLU(BN(conv3×3_s(x))))) + shortcut(x)); (B, C_in, H, W) → (B, channels, H/s, W/s)."""

    expansion = 1

    def __init__(self, in_channels: int, channels: int, stride: int = 1, shortcut: str = "projection",
                 batchnorm: str = "course"):
        super().__init__()
        _check_block_arguments(in_channels, channels, stride)
        norm = _norm_factory(batchnorm)
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = norm(channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = norm(channels)
        self.downsample = make_shortcut(shortcut, in_channels, channels, stride, norm)

    def residual(self, x: Tensor) -> Tensor:
        """f(x), the branch that learns the residual."""
        return self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(self.residual(x) + identity)


class PlainBlock(BasicBlock):
    """A `BasicBlock` without its shortcut, y = ReLU(f(x)): the "plain" network that residual networks are
    compared with. Same parameters as a BasicBlock whose shortcut is the identity or a padding."""

    def __init__(self, in_channels: int, channels: int, stride: int = 1, shortcut: str = "padding",
                 batchnorm: str = "course"):
        super().__init__(in_channels, channels, stride, "padding", batchnorm)
        self.downsample = None

    def forward(self, x: Tensor) -> Tensor:
        return self.relu(self.residual(x))


class Bottleneck(nn.Module):
    """y = ReLU(f(x) + shortcut(x)) with f = 1×1 → 3×3 (stride s) → 1×1; (B, C_in, H, W) → (B, 4·channels, H/s, W/s)."""

    expansion = 4

    def __init__(self, in_channels: int, channels: int, stride: int = 1, shortcut: str = "projection",
                 batchnorm: str = "course"):
        super().__init__()
        _check_block_arguments(in_channels, channels, stride)
        norm = _norm_factory(batchnorm)
        out_channels = channels * self.expansion
        self.conv1 = nn.Conv2d(in_channels, channels, 1, bias=False)
        self.bn1 = norm(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, stride=stride, padding=1, bias=False)
        self.bn2 = norm(channels)
        self.conv3 = nn.Conv2d(channels, out_channels, 1, bias=False)
        self.bn3 = norm(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = make_shortcut(shortcut, in_channels, out_channels, stride, norm)

    def residual(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.bn3(self.conv3(out))

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(self.residual(x) + identity)


class ResNet(nn.Module):
    """stem → stages of residual blocks → global average pooling → linear classifier.

    ``layers[i]`` blocks in stage i with ``widths[i]`` channels (×4 for bottlenecks); stages after the
    first start with a stride-2 block. ``stem="imagenet"`` is torchvision's (7×7 conv stride 2, BN, ReLU,
    3×3 max-pool stride 2); ``stem="small"`` keeps the resolution of small images (3×3 conv, BN, ReLU).
    Input (B, in_channels, H, W) → logits (B, num_classes).
    """

    def __init__(self, block: type[BasicBlock] | type[Bottleneck], layers: list[int], num_classes: int = 1000,
                 in_channels: int = 3, widths: tuple[int, ...] = (64, 128, 256, 512), stem: str = "imagenet",
                 shortcut: str = "projection", batchnorm: str = "course", zero_init_residual: bool = False):
        super().__init__()
        if len(layers) != len(widths) or not layers or any(n < 1 for n in layers):
            raise ValueError(f"layers and widths must be non-empty, of equal length, with at least one block per stage; got {layers} and {widths}")
        if stem not in ("imagenet", "small"):
            raise ValueError(f"stem must be 'imagenet' or 'small', got {stem!r}")
        norm = _norm_factory(batchnorm)
        first = widths[0]
        if stem == "imagenet":
            self.conv1 = nn.Conv2d(in_channels, first, 7, stride=2, padding=3, bias=False)
            self.maxpool: nn.Module = nn.MaxPool2d(3, stride=2, padding=1)
        else:
            self.conv1 = nn.Conv2d(in_channels, first, 3, padding=1, bias=False)
            self.maxpool = nn.Identity()
        self.bn1 = norm(first)
        self.relu = nn.ReLU(inplace=True)
        channels_in = first
        self.stages = []
        for index, (blocks, width) in enumerate(zip(layers, widths)):
            stage = []
            for b in range(blocks):
                stride = 2 if (index > 0 and b == 0) else 1
                stage.append(block(channels_in, width, stride, shortcut, batchnorm))
                channels_in = width * block.expansion
            self.add_module(f"layer{index + 1}", nn.Sequential(*stage))
            self.stages.append(f"layer{index + 1}")
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels_in, num_classes)
        self.out_features = channels_in
        for m in self.modules():  # torchvision's initialization
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        if zero_init_residual:
            for m in self.modules():
                residual_block = isinstance(m, BasicBlock) and not isinstance(m, PlainBlock)
                last_bn = m.bn3 if isinstance(m, Bottleneck) else m.bn2 if residual_block else None
                if last_bn is not None:
                    nn.init.zeros_(last_bn.weight)

    def features(self, x: Tensor) -> Tensor:
        """Everything but the classifier: (B, C, H, W) → (B, out_features)."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for name in self.stages:
            x = getattr(self, name)(x)
        return torch.flatten(self.avgpool(x), 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.features(x))


def resnet18(**options) -> ResNet:
    """torchvision's ResNet-18 layout: basic blocks, [2, 2, 2, 2], 11 689 512 parameters for 1000 classes."""
    return ResNet(BasicBlock, [2, 2, 2, 2], **options)


def resnet50(**options) -> ResNet:
    """torchvision's ResNet-50 layout: bottleneck blocks, [3, 4, 6, 3], 25 557 032 parameters for 1000 classes."""
    return ResNet(Bottleneck, [3, 4, 6, 3], **options)


def small_resnet(blocks_per_stage: int = 1, widths: tuple[int, ...] = (16, 32), num_classes: int = 10,
                 in_channels: int = 1, **options) -> ResNet:
    """A narrow ResNet for 28×28 digits: small stem, ``len(widths)`` stages of basic blocks."""
    return ResNet(BasicBlock, [blocks_per_stage] * len(widths), num_classes=num_classes, in_channels=in_channels,
                  widths=widths, stem="small", **options)
