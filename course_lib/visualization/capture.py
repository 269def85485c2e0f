"""Looking inside: recording what hidden layers compute, and which inputs excite a channel most.

A forward hook on a module sees its output tensor. Two traps make naive hooks wrong:

- **in-place operations.** ``nn.ReLU(inplace=True)`` after a convolution overwrites the convolution's output
  tensor, so a hook that *keeps a reference* to it sees post-ReLU values afterwards (never a negative number).
  `capture` copies every output at the moment the hook runs.
- **leaked hooks.** A hook registered and never removed runs on every later forward pass (and keeps tensors
  alive). `capture` is a context manager: its hooks are removed when the ``with`` block ends, error or not.

Activations of a convolution have shape (N, C, H, W): C **feature maps**, one per channel. `feature_grid` lays
the maps of one sample out as a grid of images; `top_activating` finds, over a dataset, the k inputs on which one
channel's largest value is largest — the "top-9" figures of Zeiler & Fergus.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class Recording(dict):
    """``{layer name: tensor}`` (or a list of tensors for a module that ran several times) filled by `capture`."""


def _modules_by_name(model: nn.Module, layers: Sequence[str]) -> dict[str, nn.Module]:
    named = dict(model.named_modules())
    missing = [n for n in layers if n not in named]
    if missing:
        raise ValueError(f"layers: no module named {missing}; the model has {[n for n in named if n]}")
    return {n: named[n] for n in layers}


@contextmanager
def capture(model: nn.Module, layers: Sequence[str], inputs: bool = False):
    """Record a copy of each named module's output (or, with ``inputs=True``, of its first input) while the
    ``with`` block runs forward passes; yields the `Recording`. Hooks are removed on exit, always.
    """
    if isinstance(layers, str):
        layers = [layers]
    modules = _modules_by_name(model, layers)
    recording = Recording()

    def recorder(name: str):
        def hook(module, args, output):
            value = (args[0] if inputs else output).detach().clone()
            if name not in recording:
                recording[name] = value
            elif isinstance(recording[name], list):
                recording[name].append(value)
            else:
                recording[name] = [recording[name], value]
        return hook

    handles = [m.register_forward_hook(recorder(n)) for n, m in modules.items()]
    try:
        yield recording
    finally:
        for h in handles:
            h.remove()


def feature_grid(maps: Tensor, channels: Iterable[int] | None = None, columns: int = 8, normalize: str = "per_channel",
                 upsample_to: tuple[int, int] | None = None, padding: int = 1) -> Tensor:
    """The (C, H, W) feature maps of one sample as one (rows·(H+p), columns·(W+p)) image for ``imshow``.

    ``normalize``: "per_channel" scales each map to [0, 1] on its own (shows the pattern of a weak channel);
    "global" scales all maps together (shows which channels are strong); "none" leaves the values.
    """
    if maps.dim() != 3:
        raise ValueError(f"maps must be (C, H, W) feature maps of one sample, got shape {tuple(maps.shape)}")
    if normalize not in ("per_channel", "global", "none"):
        raise ValueError(f"normalize must be 'per_channel', 'global' or 'none', got {normalize!r}")
    maps = maps.detach().float().cpu()
    if channels is not None:
        maps = maps[list(channels)]
    if upsample_to is not None:
        maps = F.interpolate(maps[None], size=upsample_to, mode="nearest")[0]
    if normalize == "per_channel":
        low = maps.amin(dim=(1, 2), keepdim=True)
        high = maps.amax(dim=(1, 2), keepdim=True)
        maps = (maps - low) / (high - low).clamp_min(1e-12)
    elif normalize == "global":
        maps = (maps - maps.min()) / (maps.max() - maps.min()).clamp_min(1e-12)
    c, h, w = maps.shape
    rows = -(-c // columns)
    grid = torch.full((rows * (h + padding), columns * (w + padding)), float("nan"))
    for i in range(c):
        r, col = divmod(i, columns)
        grid[r * (h + padding): r * (h + padding) + h, col * (w + padding): col * (w + padding) + w] = maps[i]
    return grid


@dataclass
class TopActivations:
    values: Tensor  # (k,) the channel's largest value on each of the k inputs, largest first
    inputs: Tensor  # (k, ...) those inputs
    positions: Tensor  # (k, 2) where in the feature map (row, column) the largest value sits
    indices: Tensor  # (k,) their positions in the dataset


@torch.no_grad()
def top_activating(model: nn.Module, layer: str, channel: int, batches: Iterable, k: int = 9) -> TopActivations:
    """The k inputs of ``batches`` on which ``channel`` of ``layer`` reaches its largest values (model in eval mode).

    Streams: only the best k so far are kept between batches.
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    was_training = model.training
    model.eval()
    best: TopActivations | None = None
    seen = 0
    try:
        for batch in batches:
            x = batch[0] if isinstance(batch, (tuple, list)) else batch
            with capture(model, [layer]) as rec:
                model(x)
            a = rec[layer]
            if not 0 <= channel < a.shape[1]:
                raise ValueError(f"channel must be in [0, {a.shape[1] - 1}] for layer {layer!r}, got {channel}")
            values, where = a[:, channel].reshape(a.shape[0], -1).max(dim=1)  # over positions (none for Linear)
            width = a.shape[-1] if a.dim() == 4 else 1
            candidate = TopActivations(values, x, torch.stack([where // width, where % width], dim=1),
                                       torch.arange(seen, seen + x.shape[0], device=values.device))
            if best is not None:
                candidate = TopActivations(*(torch.cat([getattr(best, f), getattr(candidate, f)])
                                             for f in ("values", "inputs", "positions", "indices")))
            order = candidate.values.argsort(descending=True, stable=True)[:k]
            best = TopActivations(*(getattr(candidate, f)[order] for f in ("values", "inputs", "positions", "indices")))
            seen += x.shape[0]
    finally:
        model.train(was_training)
    if best is None:
        raise ValueError("batches: no data was seen (an empty iterable?)")
    return best
