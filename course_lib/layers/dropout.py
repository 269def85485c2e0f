"""Inverted dropout (Srivastava et al., 2014): drop units at random while training, keep them all at test.

For an input x of any shape, in training mode, each entry is kept independently with probability 1 − p:

    m ~ Bernoulli(1 − p)  (one draw per entry),     y = m ⊙ x / (1 − p)

so that E[y] = x and the next layer sees inputs of the same mean in training and at test time, where
dropout is the identity (y = x). The original formulation instead multiplied activations by 1 − p at
test; "inverted" dropout moves the factor to training so the trained network is used untouched.

Dropping entries of the activation tensor is the same as removing the corresponding units from the
network for that one sample: each sample trains its own "thinned" network, and all of them share weights.
"""

from __future__ import annotations

import torch
from torch import Tensor


def dropout(x: Tensor, p: float, training: bool, generator: torch.Generator | None = None) -> Tensor:
    """Inverted dropout of ``x`` (any shape) with drop probability ``p``; the identity when not ``training``.

    The mask is drawn on x's device and in x's dtype, from ``generator`` or torch's default generator
    for that device (so ``torch.manual_seed`` makes it repeatable). p = 1 drops everything (zeros).
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability p must be in [0, 1], got {p!r}")
    if not training or p == 0.0:
        return x
    if p == 1.0:
        return x * torch.zeros_like(x)  # keeps the graph: the gradient is zero, not missing
    # m = [u ≥ p] with u ~ U[0, 1): P(m = 1) = 1 − p. (Drawing uniforms and comparing is about three times
    # faster on a CPU than torch's bernoulli_, and gives the same distribution.)
    uniform = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    keep = (uniform >= p).to(x.dtype)
    return x * keep.div_(1.0 - p)  # m ⊙ x / (1 − p); autograd's backward is m ⊙ dy / (1 − p)


class Dropout(torch.nn.Module):
    """``torch.nn.Dropout(p)`` from scratch: inverted dropout in training mode, identity in eval mode."""

    def __init__(self, p: float = 0.5):
        super().__init__()
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p <= 1.0:
            raise ValueError(f"dropout probability p must be a number in [0, 1], got {p!r}")
        self.p = float(p)

    def forward(self, x: Tensor) -> Tensor:
        return dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"
