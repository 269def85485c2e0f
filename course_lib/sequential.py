"""Networks built from nn.Sequential containers, seen as one flat chain of layers.

Pruning a unit (lecture 08) and mirroring a network for the deconvnet (lecture 09) both need to know which layer
feeds which. In a model made only of (nested) ``nn.Sequential`` containers the answer is the order of the leaves:
each leaf's output is the next leaf's input. Any other container (a residual block, a custom ``forward``) may route
tensors differently, so `leaf_modules` refuses it instead of guessing.
"""

from __future__ import annotations

from torch import nn


def leaf_modules(model: nn.Module, prefix: str = "") -> list[tuple[str, nn.Module]]:
    """``[(name, module), …]`` of the leaves of a model built from nested nn.Sequential containers, in order."""
    children = list(model.named_children())
    if not children:
        return [(prefix, model)]
    if not isinstance(model, nn.Sequential):
        raise ValueError(f"model: only nn.Sequential containers can be followed layer by layer, but "
                         f"{prefix or 'the model'!r} is a {type(model).__name__}; build the chain by hand for other graphs")
    out = []
    for name, child in children:
        out += leaf_modules(child, f"{prefix}.{name}" if prefix else name)
    return out
