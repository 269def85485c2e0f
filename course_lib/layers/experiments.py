"""Normalization beyond batches (lecture 04): a small convnet normalized four ways, trained at batch sizes 2 … 256.

The network, for 28 × 28 digits, with one normalization (``norm``) after each convolution and the hidden layer:

    conv 3×3 (1 → C₁) → norm → ReLU → max-pool 2    (C₁, 14, 14)
    conv 3×3 (C₁ → C₂) → norm → ReLU → max-pool 2   (C₂, 7, 7)
    flatten → linear (C₂·7·7 → D) → norm → ReLU → linear (D → 10)

    norm = "none":  nothing (the layers without normalization keep a bias)
           "batch": BatchNorm2d(C): per channel, over the batch and the positions (B, H, W); BatchNorm1d(D) per
                    unit over the batch
           "layer": LayerNorm((C, H, W)): per sample, over all its channels and positions; LayerNorm(D)
           "group": GroupNorm(G, C): per sample, over each group of C/G channels and their positions; GroupNorm(G, D)

With batches of two, the hidden layer's BatchNorm1d sees two values per unit and turns each into ±1 (up to ε):
the collapse of batch normalization at tiny batches that lecture 04 measures.

Every weight is drawn with He's initialization (std √(2 / fan_in)), so that the plain network starts with
activations of a steady scale and the comparison is with a good initialization, not with a bad one.

`batch_size_sweep` trains one such network per (norm, batch size) on the same digits, in the same order of
samples up to the cut into batches, for the same number of epochs, i.e. the same number of samples seen: every
run sees each digit equally often, and a smaller batch takes more, noisier steps. SGD with momentum 0.9 and the
linear scaling rule, η = η₃₂ · B / 32 (Goyal et al., 2017), keep the step per sample comparable across batch sizes.
Each run reports its held-out accuracy in eval mode (batch normalization with its running estimates) and, for
batch normalization, also with the statistics of held-out batches of the training batch size, as in training.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from course_lib.data import DeviceBatches
from course_lib.layers.batchnorm import BatchNorm1d, BatchNorm2d
from course_lib.layers.layernorm import GroupNorm, LayerNorm
from course_lib.optim import SGD

NORMS = ("none", "batch", "layer", "group")


def normalization(norm: str, channels: int, size: int | None, groups: int) -> nn.Module:
    """The normalization ``norm`` of a (B, channels, size, size) activation, or of a (B, channels) one when ``size``
    is None (nn.Identity for "none")."""
    if norm == "none":
        return nn.Identity()
    if norm == "batch":
        return BatchNorm2d(channels) if size else BatchNorm1d(channels)
    if norm == "layer":
        return LayerNorm((channels, size, size) if size else channels)
    if norm == "group":
        return GroupNorm(groups, channels)
    raise ValueError(f"norm must be one of {', '.join(NORMS)}, got {norm!r}")


def small_convnet(norm: str = "none", channels: tuple[int, int] = (8, 16), hidden: int = 64,
                  groups: int = 4) -> nn.Sequential:
    """The module docstring's network for (B, 1, 28, 28) digits → (B, 10) scores, He-initialized; C₁, C₂ =
    ``channels``, D = ``hidden``.

    ``groups`` is GroupNorm's G, used only with ``norm="group"``; it must divide both channel counts and D.
    """
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {', '.join(NORMS)}, got {norm!r}")
    if len(channels) != 2 or not all(isinstance(c, int) and c > 0 for c in channels):
        raise ValueError(f"channels must be two positive ints, got {channels!r}")
    if norm == "group" and any(c % groups for c in (*channels, hidden)):
        raise ValueError(f"groups ({groups}) must divide the channel counts {channels} and hidden ({hidden})")
    c1, c2 = channels
    bias = norm == "none"  # a normalization removes a per-channel bias anyway (lecture 04, question 3)
    model = nn.Sequential(
        nn.Conv2d(1, c1, 3, padding=1, bias=bias), normalization(norm, c1, 28, groups), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(c1, c2, 3, padding=1, bias=bias), normalization(norm, c2, 14, groups), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(c2 * 7 * 7, hidden, bias=bias), normalization(norm, hidden, None, groups), nn.ReLU(),
        nn.Linear(hidden, 10),
    )
    for layer in model:
        if isinstance(layer, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
    return model


def train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int, epochs: int, lr: float,
          seed: int = 0) -> list[float]:
    """SGD (momentum 0.9) on cross-entropy over ``epochs`` passes of (x, y) in batches of ``batch_size``; the last
    incomplete batch is dropped (a batch of one cannot be batch-normalized). Returns the loss of every step."""
    optimizer = SGD(model.parameters(), lr=lr, momentum=0.9)
    batches = DeviceBatches(x, y, batch_size=batch_size, drop_last=True, generator=torch.Generator().manual_seed(seed))
    losses = []
    model.train()
    for _ in range(epochs):
        for xb, yb in batches:
            loss = nn.functional.cross_entropy(model(xb), yb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
    return losses


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1000,
             batch_statistics: bool = False) -> float:
    """The fraction of (x, y) classified right, in batches of ``batch_size`` taken in order.

    ``batch_statistics=False``: in eval mode (batch normalization uses its running estimates). ``True``: in train
    mode, on a copy of the model, so that batch normalization normalizes each batch with its own statistics, as in
    training, and the model's running estimates stay untouched. The last incomplete batch is dropped only then.
    The model's train/eval mode is left as it was.
    """
    was_training = model.training
    probe = copy.deepcopy(model).train() if batch_statistics else model.eval()
    stop = len(x) - len(x) % batch_size if batch_statistics else len(x)
    if stop == 0:
        raise ValueError(f"batch_size={batch_size} leaves no complete batch of {len(x)} samples")
    right = sum((probe(x[i:i + batch_size]).argmax(1) == y[i:i + batch_size]).sum().item()
                for i in range(0, stop, batch_size))
    model.train(was_training)
    return right / stop


def batch_size_sweep(train_x: torch.Tensor, train_y: torch.Tensor, heldout_x: torch.Tensor, heldout_y: torch.Tensor,
                     batch_sizes=(2, 8, 32, 256), norms=NORMS, epochs: int = 1, lr_32: float = 0.02,
                     seed: int = 0, progress=None) -> dict:
    """Train ``small_convnet(norm)`` at every batch size B with η = ``lr_32`` · B / 32, the same seed (weights and
    order of the samples) for every run.

    Returns ``{norm: {B: {"eval": held-out accuracy in eval mode, "batch statistics": held-out accuracy in train
    mode, in batches of B (only for norm "batch"), "final loss": mean loss of the last 10 % of the steps}}}``.
    ``progress``, if given, wraps the list of runs (e.g. ``tqdm``).
    """
    for name in norms:
        if name not in NORMS:
            raise ValueError(f"norms must be taken from {', '.join(NORMS)}, got {name!r}")
    for b in batch_sizes:
        if not isinstance(b, int) or not 2 <= b <= len(train_x):
            raise ValueError(f"batch sizes must be ints from 2 to the number of training samples, got {b!r}")
    runs = [(name, b) for name in norms for b in batch_sizes]
    results: dict = {name: {} for name in norms}
    for name, b in (progress(runs) if progress else runs):
        torch.manual_seed(seed)
        model = small_convnet(name).to(train_x.device)
        losses = train(model, train_x, train_y, b, epochs, lr_32 * b / 32, seed)
        tail = losses[-max(1, len(losses) // 10):]
        result = {"eval": accuracy(model, heldout_x, heldout_y), "final loss": sum(tail) / len(tail)}
        if name == "batch":
            result["batch statistics"] = accuracy(model, heldout_x, heldout_y, b, batch_statistics=True)
        results[name][b] = result
    return results
