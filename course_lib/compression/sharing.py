"""Weight sharing: store each weight as a one-byte index into a small table of shared values.

Han et al. (2016, "Deep Compression") cluster the n weights of a layer into C values c_1 … c_C (one-dimensional
k-means) and store, instead of n 32-bit floats, n indices and the C floats of the **codebook**:

    W[i] ≈ c[idx[i]]          bytes: 4n  →  n·⌈log2 C / 8⌉ + 4C  =  n + 4C for C ≤ 256 (uint8 indices)

so a large layer shrinks almost 4×. (The thesis rejected the idea because its framework only had 32- and 64-bit
integer indices; in PyTorch a uint8 tensor holds the indices and ``codebook[idx.long()]`` rebuilds the weight.)
k-means starts from C values spread linearly between min W and max W (the initialization Han et al. found best)
and alternates: assign every weight to its nearest value, move each value to the mean of its weights. When the
layer has at most C distinct weights, the codebook is those values and the rebuilt weight is exact.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from course_lib.compression.counting import state_dict_bytes


def kmeans_1d(values: Tensor, n_clusters: int, iterations: int = 30) -> tuple[Tensor, Tensor]:
    """(codebook (C,), index of each value (same shape, int64)): Lloyd's algorithm on the real line."""
    flat = values.detach().reshape(-1)
    distinct = flat.unique()
    if distinct.numel() <= n_clusters:
        return distinct.clone(), torch.bucketize(flat, distinct).reshape(values.shape)
    codebook = torch.linspace(float(flat.min()), float(flat.max()), n_clusters, dtype=flat.dtype, device=flat.device)
    for _ in range(iterations):
        # nearest centre: the centres are sorted, so the boundaries are the midpoints between neighbours
        index = torch.bucketize(flat, (codebook[1:] + codebook[:-1]) / 2)
        sums = torch.zeros_like(codebook).index_add_(0, index, flat)
        counts = torch.zeros_like(codebook).index_add_(0, index, torch.ones_like(flat))
        moved = torch.where(counts > 0, sums / counts.clamp_min(1), codebook)  # an empty cluster keeps its value
        if torch.equal(moved, codebook):
            break
        codebook = moved.sort().values
    index = torch.bucketize(flat, (codebook[1:] + codebook[:-1]) / 2)
    return codebook, index.reshape(values.shape)


class SharedWeights(nn.Module):
    """A Linear or Conv2d layer whose weight is ``codebook[indices]``: uint8 indices, a float codebook, the bias."""

    def __init__(self, layer: nn.Linear | nn.Conv2d, n_clusters: int = 16, iterations: int = 30):
        super().__init__()
        if not isinstance(layer, (nn.Linear, nn.Conv2d)):
            raise ValueError(f"layer must be an nn.Linear or nn.Conv2d, got {type(layer).__name__}")
        if isinstance(n_clusters, bool) or not isinstance(n_clusters, int) or not 2 <= n_clusters <= 256:
            raise ValueError(f"n_clusters must be an integer in [2, 256] (uint8 indices), got {n_clusters!r}")
        codebook, index = kmeans_1d(layer.weight, n_clusters, iterations)
        self.codebook = nn.Parameter(codebook)
        self.register_buffer("indices", index.to(torch.uint8))
        self.bias = nn.Parameter(layer.bias.detach().clone()) if layer.bias is not None else None
        self.conv = None
        if isinstance(layer, nn.Conv2d):
            if layer.padding_mode != "zeros":
                raise ValueError(f"layer: padding_mode {layer.padding_mode!r} is not supported, only 'zeros'")
            self.conv = dict(stride=layer.stride, padding=layer.padding, dilation=layer.dilation, groups=layer.groups)

    @property
    def weight(self) -> Tensor:
        return self.codebook[self.indices.long()]

    def forward(self, x: Tensor) -> Tensor:
        if self.conv is None:
            return F.linear(x, self.weight, self.bias)
        return F.conv2d(x, self.weight, self.bias, **self.conv)


@dataclass
class SharingReport:
    clusters: int
    bytes_before: int  # state_dict of the original layer
    bytes_after: int  # state_dict of the shared layer
    max_error: float  # largest |W − c[idx]|


def share_weights(layer: nn.Linear | nn.Conv2d, n_clusters: int = 16, iterations: int = 30
                  ) -> tuple[SharedWeights, SharingReport]:
    """The layer with shared weights, and what it saves (state_dict bytes) and costs (largest weight error)."""
    shared = SharedWeights(layer, n_clusters, iterations)
    error = float((layer.weight.detach() - shared.weight.detach()).abs().max())
    return shared, SharingReport(shared.codebook.numel(), state_dict_bytes(layer), state_dict_bytes(shared), error)
