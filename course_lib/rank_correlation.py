"""Spearman's rank correlation: how alike two orderings are, whatever the scale of the values.

Replace every value by its rank (1 for the smallest … n for the largest; a group of equal values shares the mean of
the positions it occupies), then take the Pearson correlation of the ranks:

    ρ(a, b) = Σ (r_a − r̄_a)(r_b − r̄_b) / ( ‖r_a − r̄_a‖ · ‖r_b − r̄_b‖ )

ρ = 1 when b grows with a (any increasing transform), −1 when it falls, and without ties it equals the closed form
1 − 6 Σ d² / (n (n² − 1)) with d the rank differences. A constant input has no ordering: ρ is NaN (as in
scipy.stats.spearmanr). Lecture 07 uses it for "harder tasks end deeper", lecture 09 for how alike two saliency maps
are.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def rankdata(v: Tensor) -> Tensor:
    """The ranks (1 … n, float64) of the values of a 1-D tensor ``v``, ties given the mean of their positions."""
    if not isinstance(v, Tensor) or v.dim() != 1 or len(v) == 0:
        raise ValueError(f"v must be a non-empty 1-D tensor, got "
                         f"{tuple(v.shape) if isinstance(v, Tensor) else type(v).__name__}")
    order = torch.argsort(v)  # the order within a group of ties does not matter: they share one rank
    _, counts = torch.unique_consecutive(v[order], return_counts=True)
    ends = counts.cumsum(0).double()  # the last 1-based position of each group of equal values
    group_rank = ends - (counts.double() - 1) / 2  # the mean of positions ends − count + 1 … ends
    ranks = torch.empty(len(v), dtype=torch.float64, device=v.device)
    ranks[order] = group_rank.repeat_interleave(counts)
    return ranks


def spearman(a: Tensor, b: Tensor) -> float:
    """Spearman's ρ of the flattened ``a`` and ``b`` (same number of elements, at least 2); NaN when either is constant
    (as scipy.stats.spearmanr)."""
    if not isinstance(a, Tensor) or not isinstance(b, Tensor) or a.numel() != b.numel() or a.numel() < 2:
        raise ValueError(f"a and b must be tensors with the same number (≥ 2) of elements, got "
                         f"{getattr(a, 'shape', a)!r} and {getattr(b, 'shape', b)!r}")
    ra, rb = rankdata(a.detach().flatten()), rankdata(b.detach().flatten())
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denominator = float(ra.norm() * rb.norm())
    return float((ra * rb).sum()) / denominator if denominator > 0 else math.nan
