"""The thesis' two pruning experiments (Çallı, "Optimizing neural networks for mobile devices", §2.2.2–2.2.3).

E1 — y = i1 + i2
    Two inputs from U(0, 1), one hidden layer of 1000 ReLU units, one linear output, mean squared error, SGD with
    momentum (lr 0.01, momentum 0.3), batches of 1000. One unit with weights (1, 1) and a positive bias shift would
    do, so nearly all units are redundant. The thesis does not say how it initialized the network; with every
    parameter drawn from N(0, 1) (TensorFlow's ``random_normal``), large early gradients kill most units and about
    950 of 1000 are dead after the first cycle, as the thesis reports; PyTorch's default initialization leaves far
    fewer dead units. What "prunable" means depends on the initialization, not only on the task.

E2 — an MNIST convolutional autoencoder
    conv(1→32, 3×3, stride 2) → conv(32→64) → transposed conv(64→32) → transposed conv(32→1), each hidden block
    with an optional BatchNorm and a ReLU; Adam (lr 10⁻²), batches of 64, mean squared error on pixels in [0, 1].
    Channels that never fire on the training digits are removed; with BatchNorm before the ReLU almost none are
    dead, unless an L1 penalty on the BN scales γ (network slimming) pushes channels off.
"""

from __future__ import annotations

import copy
from collections import OrderedDict

import torch
from torch import nn

from course_lib.compression.activations import activation_stats
from course_lib.compression.counting import count_macs, count_params
from course_lib.compression.distillation import distillation_loss
from course_lib.compression.pruning import (batchnorm_scales, find_chains, l1_penalty, prune_dead_units,
                                            train_prune_cycles)
from course_lib.data import DeviceBatches
from course_lib.optim import SGD, Adam

# --- E1 ------------------------------------------------------------------------------------------------


def sum_data(n: int, generator: torch.Generator | None = None, device: torch.device | str = "cpu"):
    """n samples (i1, i2) ~ U(0, 1)² and their targets i1 + i2: shapes (n, 2) and (n, 1)."""
    x = torch.rand(n, 2, generator=generator).to(device)
    return x, x.sum(1, keepdim=True)


def sum_model(width: int = 1000, init: str = "normal", generator: torch.Generator | None = None) -> nn.Sequential:
    """2 → ``width`` ReLU → 1. ``init``: "normal" (every parameter N(0, 1)) or "default" (PyTorch's)."""
    if init not in ("normal", "default"):
        raise ValueError(f"init must be 'normal' or 'default', got {init!r}")
    model = nn.Sequential(OrderedDict(hidden=nn.Linear(2, width), relu=nn.ReLU(), out=nn.Linear(width, 1)))
    if init == "normal":
        with torch.no_grad():
            for p in model.parameters():
                p.copy_(torch.randn(p.shape, generator=generator))
    return model


def run_sum_toy(init: str = "normal", width: int = 1000, steps_per_cycle: int = 500, max_cycles: int = 5,
                distort: bool = False, l1: float = 0.0, pool: int = 100_000, seed: int = 0,
                device: torch.device | str = "cpu") -> dict:
    """Train/prune cycles on y = i1 + i2 from a pool of ``pool`` samples in batches of 1000.

    Returns the cycle history, the hidden width after each cycle, the final MSE on the pool, the counts of dead /
    always-active / switching units after the first training, and the model.
    """
    g = torch.Generator().manual_seed(seed)
    model = sum_model(width, init, g).to(device)
    x, y = sum_data(pool, g, device)
    batches = DeviceBatches(x, y, batch_size=1000, generator=g)

    def train(m: nn.Module) -> float:
        optimizer = SGD(m.parameters(), lr=0.01, momentum=0.3)
        step = 0
        while step < steps_per_cycle:
            for xb, yb in batches:
                loss = nn.functional.mse_loss(m(xb), yb)
                if l1:
                    loss = loss + l1 * l1_penalty(m.parameters())
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                step += 1
                if step == steps_per_cycle:
                    break
        return float(loss.detach())

    chains = find_chains(model, x[:2])
    history = train_prune_cycles(model, chains, train, batches, max_cycles=max_cycles, distort=distort, generator=g)
    with torch.no_grad():
        mse = float(nn.functional.mse_loss(model(x), y))
    dead, always = history[0].removed["relu"], history[0].always_active["relu"]
    first = {"dead": dead, "always_active": always, "switching": width - dead - always}
    return {"history": history, "widths": [c.widths["relu"] for c in history], "mse": mse, "first_cycle": first,
            "model": model}


# --- E2 ------------------------------------------------------------------------------------------------

def _block(layer: nn.Module, channels: int, batchnorm: bool) -> nn.Sequential:
    parts = [("conv", layer)] + ([("norm", nn.BatchNorm2d(channels))] if batchnorm else []) + [("relu", nn.ReLU())]
    return nn.Sequential(OrderedDict(parts))


def autoencoder(channels: tuple[int, int, int] = (32, 64, 32), batchnorm: bool = False) -> nn.Sequential:
    """28×28×1 → 14×14×c1 → 7×7×c2 → 14×14×c3 → 28×28×1 with 3×3, stride-2 (transposed) convolutions."""
    c1, c2, c3 = channels
    return nn.Sequential(OrderedDict(
        enc1=_block(nn.Conv2d(1, c1, 3, stride=2, padding=1), c1, batchnorm),
        enc2=_block(nn.Conv2d(c1, c2, 3, stride=2, padding=1), c2, batchnorm),
        dec1=_block(nn.ConvTranspose2d(c2, c3, 3, stride=2, padding=1, output_padding=1), c3, batchnorm),
        dec2=nn.ConvTranspose2d(c3, 1, 3, stride=2, padding=1, output_padding=1),
    ))


def train_autoencoder(model: nn.Module, images: torch.Tensor, epochs: int, gamma_l1: float = 0.0, lr: float = 1e-2,
                      batch_size: int = 64, generator: torch.Generator | None = None) -> float:
    """Adam on the pixel MSE (+ ``gamma_l1`` · Σ|γ| over the BatchNorms); returns the last epoch's mean loss."""
    optimizer = Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(epochs):
        total, count = 0.0, 0
        for (xb,) in DeviceBatches(images, batch_size=batch_size, generator=generator):
            loss = nn.functional.mse_loss(model(xb), xb)
            total_loss = loss + gamma_l1 * l1_penalty(batchnorm_scales(model)) if gamma_l1 else loss
            optimizer.zero_grad()
            total_loss.backward()
            optimizer.step()
            total, count = total + float(loss.detach()) * xb.shape[0], count + xb.shape[0]
    return total / count


@torch.no_grad()
def reconstruction_mse(model: nn.Module, images: torch.Tensor) -> float:
    model.eval()
    return float(nn.functional.mse_loss(model(images), images))


def run_autoencoder_pruning(images: torch.Tensor, heldout: torch.Tensor, epochs: int, batchnorm: bool = False,
                            gamma_l1: float = 0.0, seed: int = 0) -> dict:
    """Train the autoencoder, remove every channel that never fires on ``images``, and compare before and after.

    Returns the numbers before and after, the largest change of the held-out reconstructions, the pruned ``model``
    and a copy of the trained network before pruning (``unpruned``).
    """
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    model = autoencoder(batchnorm=batchnorm).to(images.device)
    train_autoencoder(model, images, epochs, gamma_l1, generator=g)
    example = images[:1]
    chains = find_chains(model, example)
    before = {"widths": {n: c.width for n, c in chains.items()}, "mse": reconstruction_mse(model, heldout),
              "macs": count_macs(model, example).total_macs, "params": count_params(model)}
    with torch.no_grad():
        out_before = model.eval()(heldout)
    unpruned = copy.deepcopy(model)
    prune_dead_units(chains, activation_stats(model, DeviceBatches(images, batch_size=500, shuffle=False),
                                              layers=list(chains)).dead())
    with torch.no_grad():
        out_after = model(heldout)
    after = {"widths": {n: c.width for n, c in chains.items()}, "mse": reconstruction_mse(model, heldout),
             "macs": count_macs(model, example).total_macs, "params": count_params(model)}
    return {"before": before, "after": after, "output_change": float((out_after - out_before).abs().max()),
            "model": model, "unpruned": unpruned}


# --- Distillation (Hinton et al. 2015) on MNIST --------------------------------------------------------

def mnist_mlp(hidden: int) -> nn.Sequential:
    """28×28 → ``hidden`` ReLU → 10 logits: the lecture's classifier (hidden 256) and its small students."""
    if isinstance(hidden, bool) or not isinstance(hidden, int) or hidden < 1:
        raise ValueError(f"hidden must be a positive integer, got {hidden!r}")
    return nn.Sequential(nn.Flatten(), nn.Linear(784, hidden), nn.ReLU(), nn.Linear(hidden, 10))


def train_classifier(images: torch.Tensor, labels: torch.Tensor, hidden: int, epochs: int, seed: int = 0,
                     teacher_logits: torch.Tensor | None = None, temperature: float = 4.0, alpha: float = 0.9,
                     lr: float = 1e-3, batch_size: int = 64) -> nn.Module:
    """Adam on a fresh ``mnist_mlp(hidden)``: cross-entropy on the labels, or, given the teacher's logits on
    ``images``, the distillation loss α·T²·KL + (1 − α)·CE. The seed fixes the initialization and the batch order."""
    torch.manual_seed(seed)
    model = mnist_mlp(hidden).to(images.device)
    g = torch.Generator().manual_seed(seed)
    optimizer = Adam(model.parameters(), lr=lr)
    targets = (labels,) if teacher_logits is None else (labels, teacher_logits)
    model.train()
    for _ in range(epochs):
        for xb, *rest in DeviceBatches(images, *targets, batch_size=batch_size, generator=g):
            out = model(xb)
            if teacher_logits is None:
                loss = nn.functional.cross_entropy(out, rest[0])
            else:
                loss = distillation_loss(out, rest[1], rest[0], temperature, alpha)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return model.eval()


@torch.no_grad()
def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    model.eval()
    return float((model(images).argmax(1) == labels).float().mean())


def run_distillation(teacher: nn.Module, train_x: torch.Tensor, train_y: torch.Tensor, heldout_x: torch.Tensor,
                     heldout_y: torch.Tensor, hidden: int, epochs: int, seeds=(0, 1, 2), temperature: float = 4.0,
                     alpha: float = 0.9) -> dict:
    """The same student, the same seeds, trained on labels alone and from the teacher's soft targets.

    Returns held-out accuracies per seed: {"labels": [...], "distilled": [...]}, and the teacher's accuracy.
    """
    with torch.no_grad():
        teacher_logits = teacher.eval()(train_x)
    result = {"labels": [], "distilled": [], "teacher": accuracy(teacher, heldout_x, heldout_y)}
    for seed in seeds:
        plain = train_classifier(train_x, train_y, hidden, epochs, seed)
        taught = train_classifier(train_x, train_y, hidden, epochs, seed, teacher_logits, temperature, alpha)
        result["labels"].append(accuracy(plain, heldout_x, heldout_y))
        result["distilled"].append(accuracy(taught, heldout_x, heldout_y))
    return result
