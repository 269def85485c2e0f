"""Training a model: the `fit` loop, `evaluate`, and the `History` they record.

One epoch of mini-batch training, for a loss averaged over each batch of B samples, is

    for (x_b, y_b) in batches:          x_b: (B, ...), y_b: (B, ...)
        ℓ_b = loss(model(x_b), y_b)      a scalar, the mean over the batch
        w ← optimizer step with ∇_w ℓ_b

`fit` repeats it for a number of epochs, records per epoch the training loss and accuracy (the
average over the epoch's batches, weighted by batch size, measured while the weights move) and the
held-out loss and accuracy (measured after the epoch with `evaluate`). When the loss becomes NaN or
infinite, typically because a learning rate is too large, it stops at once and says so in the
returned `History` rather than raising: an experiment with a slider must survive a bad setting.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable

import torch
from tqdm.auto import tqdm

Batches = Iterable[tuple[torch.Tensor, torch.Tensor]]
Metric = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def accuracy(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Fraction of correct predictions, as a 0-d tensor.

    - Several classes: ``output`` (B, C) scores, ``target`` (B,) class indices; the prediction is
      the arg-max.
    - Two classes: ``output`` (B,) or (B, 1) logits, ``target`` the same shape with 0/1 values;
      the prediction is ``output > 0`` (probability above 1/2).
    """
    if output.ndim == 2 and output.shape[1] > 1:
        if target.shape != output.shape[:1]:
            raise ValueError(f"target must have shape {tuple(output.shape[:1])} for output {tuple(output.shape)}")
        return (output.argmax(dim=1) == target).float().mean()
    if output.shape != target.shape:
        raise ValueError(f"binary accuracy needs output and target of one shape, got {tuple(output.shape)} and {tuple(target.shape)}")
    return ((output > 0) == (target > 0.5)).float().mean()


@dataclass
class History:
    """What `fit` measured: one entry per completed epoch, plus every step's loss."""

    train_loss: list[float] = field(default_factory=list)
    train_accuracy: list[float] = field(default_factory=list)
    heldout_loss: list[float] = field(default_factory=list)
    heldout_accuracy: list[float] = field(default_factory=list)
    step_loss: list[float] = field(default_factory=list)
    diverged: bool = False
    stop_reason: str | None = None
    seconds: float = 0.0

    @property
    def epochs(self) -> int:
        return len(self.train_loss)

    def summary(self) -> str:
        """One line: epochs run, the last losses and accuracies, the time, and any divergence."""
        parts = [f"{self.epochs} epoch{'s' if self.epochs != 1 else ''}"]
        if self.train_loss:
            parts.append(f"train loss {self.train_loss[-1]:.4f} accuracy {self.train_accuracy[-1]:.3f}")
        if self.heldout_loss:
            parts.append(f"held-out loss {self.heldout_loss[-1]:.4f} accuracy {self.heldout_accuracy[-1]:.3f}")
        parts.append(f"{self.seconds:.1f} s")
        text = ", ".join(parts)
        return f"{text} — stopped: {self.stop_reason}" if self.diverged else text

    def __repr__(self) -> str:
        return f"History({self.summary()})"


def set_trainable(module: torch.nn.Module, trainable: bool) -> int:
    """Freeze (``trainable=False``) or unfreeze every parameter of ``module``; return how many values changed state.

    A frozen parameter has ``requires_grad = False``: backward computes no gradient for it, its ``grad``
    stays None, and optimizers skip it, so its value stays as it is (fine-tuning keeps pretrained features
    this way). Its module still runs, and a batch normalization in it still updates its running statistics
    in train mode.
    """
    changed = 0
    for parameter in module.parameters():
        if parameter.requires_grad != trainable:
            parameter.requires_grad_(trainable)
            changed += parameter.numel()
    return changed


def _model_device(model: torch.nn.Module) -> torch.device:
    for tensor in model.parameters():
        return tensor.device
    return torch.device("cpu")


@torch.no_grad()
def evaluate(
    model: torch.nn.Module,
    batches: Batches,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    metric: Metric | None = accuracy,
    device: torch.device | str | None = None,
) -> tuple[float, float]:
    """Mean loss and mean metric over all samples of ``batches``, in eval mode and without gradients.

    The model's train/eval mode is restored afterwards. With ``metric=None`` the second value is NaN.
    """
    device = torch.device(device) if device is not None else _model_device(model)
    was_training = model.training
    model.eval()
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    metric_sum = torch.zeros((), dtype=torch.float64, device=device)
    count = 0
    try:
        for x, y in batches:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            output = model(x)
            n = x.shape[0]
            loss_sum += loss_fn(output, y).double() * n
            if metric is not None:
                metric_sum += metric(output, y).double() * n
            count += n
    finally:
        model.train(was_training)
    if count == 0:
        raise ValueError("batches is empty: there is nothing to evaluate")
    mean_metric = metric_sum.item() / count if metric is not None else math.nan
    return loss_sum.item() / count, mean_metric


def fit(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    train_batches: Batches,
    epochs: int,
    heldout_batches: Batches | None = None,
    metric: Metric | None = accuracy,
    device: torch.device | str | None = None,
    progress: bool = True,
    description: str = "training",
    before_epoch: Callable[[int], object] | None = None,
) -> History:
    """Train ``model`` for ``epochs`` passes over ``train_batches`` and return its `History`.

    ``train_batches`` and ``heldout_batches`` are re-iterable collections of ``(x, y)`` batches: a
    `course_lib.data.DeviceBatches` or a ``torch.utils.data.DataLoader``. Batches are moved to
    ``device`` (default: the model's), a no-op when they already live there. A NaN or infinite
    loss ends training before the optimizer step that would spread it, and is reported in
    ``History.diverged`` and ``History.stop_reason``. ``before_epoch(e)``, if given, runs at the start of
    epoch e = 0, 1, …: a schedule, e.g. unfreezing pretrained layers after a few epochs.
    """
    if not isinstance(epochs, int) or epochs < 0:
        raise ValueError(f"epochs must be a non-negative int, got {epochs!r}")
    device = torch.device(device) if device is not None else _model_device(model)
    history = History()
    start = time.perf_counter()
    bar = tqdm(range(epochs), desc=description, unit="epoch", disable=not progress, leave=True)
    for epoch in bar:
        if before_epoch is not None:
            before_epoch(epoch)
        model.train()
        loss_sum, count = 0.0, 0
        metric_sum = torch.zeros((), dtype=torch.float64, device=device)  # summed on the device: no sync per step
        for step, (x, y) in enumerate(train_batches):
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            output = model(x)
            loss = loss_fn(output, y)
            loss_value = loss.item()
            history.step_loss.append(loss_value)
            if not math.isfinite(loss_value):
                history.diverged = True
                history.stop_reason = f"the loss became {loss_value} at epoch {epoch + 1}, step {step + 1}"
                break
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            n = x.shape[0]
            loss_sum += loss_value * n
            if metric is not None:
                metric_sum += metric(output.detach(), y).double() * n
            count += n
        if history.diverged:
            break
        if count == 0:
            raise ValueError("train_batches is empty: there is nothing to train on")
        history.train_loss.append(loss_sum / count)
        history.train_accuracy.append(metric_sum.item() / count if metric is not None else math.nan)
        postfix = {"loss": f"{history.train_loss[-1]:.4f}"}
        if heldout_batches is not None:
            heldout_loss, heldout_metric = evaluate(model, heldout_batches, loss_fn, metric, device)
            history.heldout_loss.append(heldout_loss)
            history.heldout_accuracy.append(heldout_metric)
            postfix["held-out acc"] = f"{heldout_metric:.3f}"
        bar.set_postfix(postfix)
    bar.close()
    history.seconds = time.perf_counter() - start
    if history.diverged and progress:
        tqdm.write(f"{description}: {history.stop_reason}; training stopped.")
    return history
