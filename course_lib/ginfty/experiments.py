"""The g_∞ paper's two experiments, with its reference code's exact settings, in PyTorch.

XOR parity (paper §IV.A; reference ``experiment_00_xor.py``)
    8 random bits; the target is the parity of the first n ∈ {0, …, 8}. A fixed random layer 8 → 24 (ReLU),
    one g_∞ layer with f_i = Dropout₀.₁(BN(x W_i + b_i)) and h = ReLU, a fixed random output unit. Adam
    (lr 10⁻³), 1000 fresh samples per step, λ_w = 10⁻⁴ (the code; the paper says 10⁻⁵), λ_f = 10⁻⁸ on the
    last BN's γ, validation on 10 000 fresh samples every 100 steps. The reference ran 100 000 steps per n;
    the paper's claim: w ends larger for harder tasks (larger n).

MNIST (paper §IV.B; reference ``experiment_01_mnist.py``)
    fixed linear conv 3×3 → g_∞(conv 3×3 → Dropout 0.25 → BN) → max-pool → fixed linear conv → g_∞(same)
    → max-pool → fixed linear dense → g_∞(dense → Dropout 0.25 → BN) → fixed linear head, widths 30/60/256,
    λ_w = 5·10⁻⁵, 5·10⁻⁵, 10⁻³, λ_f = 10⁻⁸, Adadelta (lr 1, ρ 0.95), batch 512, 5000 epochs. Unlike the
    reference, which selected on the test set, a validation split held out of the training digits picks the
    epoch, and test accuracy is reported both at that epoch and at the end.

Keras defaults are kept where they matter: Glorot-uniform weights and zero biases, batch normalization with
momentum 0.01 (Keras' 0.99) and ε = 10⁻³.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

from course_lib.checkpoints import DeferredInterrupt, load_checkpoint, save_checkpoint
from course_lib.data import DeviceBatches, load_mnist, xor_parity
from course_lib.ginfty.layer import GInfinity, ginfinity_layers, grow_all, regularization
from course_lib import optim, rank_correlation
from course_lib.layers import BatchNorm1d, BatchNorm2d, Dropout
from course_lib.training import evaluate

KERAS_BN = dict(momentum=0.01, eps=1e-3)


def keras_init(module: nn.Module) -> nn.Module:
    """Glorot-uniform weights and zero biases for every Linear and Conv2d of ``module`` (Keras' defaults)."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return module


def frozen(module: nn.Module) -> nn.Module:
    """A fixed random layer: Keras-initialized and excluded from training."""
    keras_init(module)
    module.requires_grad_(False)
    return module


# --- XOR -----------------------------------------------------------------------------------------------

def xor_model(width: int = 24, num_bits: int = 8, lambda_w: float = 1e-4, lambda_f: float = 1e-8,
              dropout: float = 0.1, w_init: float = 1.0, w_step: int = 5) -> nn.Sequential:
    """8 bits → fixed Dense(24, ReLU) → g_∞(Dropout(BN(Dense))) → fixed Dense(1); the output is a logit."""
    def sublayer(i: int) -> nn.Module:
        return keras_init(nn.Sequential(nn.Linear(width, width), BatchNorm1d(width, **KERAS_BN), Dropout(dropout)))

    return nn.Sequential(
        frozen(nn.Linear(num_bits, width)), nn.ReLU(),
        GInfinity(sublayer, w_init=w_init, w_step=w_step, lambda_w=lambda_w, lambda_f=lambda_f),
        frozen(nn.Linear(width, 1)),
    )


def run_xor(n_active: int, steps: int = 2000, batch_size: int = 1000, validate_every: int = 100,
            validation_size: int = 10_000, lambda_w: float = 1e-4, seed: int = 0,
            device: torch.device | str = "cpu", checkpoint: str | Path | None = None,
            checkpoint_every_s: float = 300.0, progress: bool = False, deadline: float | None = None) -> dict:
    """Train `xor_model` on the parity of the first ``n_active`` bits; return the w trajectory and validation.

    Returned: ``steps`` and ``w`` (every ``validate_every`` steps, step 0 included), ``val_accuracy``,
    ``val_loss`` (data loss on fresh samples, eval mode), ``final_w``, ``first_perfect_step`` (first
    validation at 100 %, or None), ``capacity``, ``seconds``.

    Long runs: with ``checkpoint`` (a file path) the run saves itself every ``checkpoint_every_s`` seconds,
    at the end and when interrupted, and a later call with the same path and settings resumes it (asking
    for more ``steps`` extends it); see `course_lib.checkpoints`. ``progress`` shows a bar with an estimate
    and prints the expected duration once the first steps have been timed. At ``deadline`` (a
    ``time.monotonic()`` value) the run saves its checkpoint and raises ``TimeoutError``.
    """
    settings = dict(n_active=n_active, batch_size=batch_size, validate_every=validate_every,
                    validation_size=validation_size, lambda_w=lambda_w, seed=seed)
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    model = xor_model(lambda_w=lambda_w).to(device)
    layer = ginfinity_layers(model)[0]

    def make_optimizer(groups) -> torch.optim.Optimizer:
        return torch.optim.Adam(groups, lr=1e-3, eps=1e-8)

    optimizer = make_optimizer([p for p in model.parameters() if p.requires_grad])
    val_x, val_y = xor_parity(validation_size, n_active, generator=torch.Generator().manual_seed(10_000 + seed), device=device)
    log = {"n_active": n_active, "steps": [], "w": [], "val_accuracy": [], "val_loss": []}

    def validate(step: int) -> None:
        loss, accuracy = evaluate(model, [(val_x, val_y)], nn.functional.binary_cross_entropy_with_logits)
        log["steps"].append(step)
        log["w"].append(layer.w.item())
        log["val_accuracy"].append(accuracy)
        log["val_loss"].append(loss)

    optimizer, log, done, seconds_before = _resume(checkpoint, model, optimizer, make_optimizer, {"batches": generator},
                                                   settings, log, steps, "steps", f"XOR n={n_active}")

    start = time.perf_counter()

    def save(step: int) -> None:
        if checkpoint is not None:
            save_checkpoint(checkpoint, model, optimizer, {"batches": generator},
                            {"settings": settings, "log": log, "done": step,
                             "seconds": seconds_before + time.perf_counter() - start})

    if done == 0:
        validate(0)
    bar = tqdm(total=steps, initial=done, desc=f"XOR n={n_active}", unit="step", disable=not progress, leave=False)
    last_save, timer = time.perf_counter(), _DurationEstimate(f"XOR n={n_active}", steps - done, "steps", progress,
                                                                at_least=validate_every)
    with DeferredInterrupt() as stop:
        for step in range(done + 1, steps + 1):
            x, y = xor_parity(batch_size, n_active, generator=generator, device=device)
            loss = nn.functional.binary_cross_entropy_with_logits(model(x), y) + regularization(model)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            grow_all(model, optimizer)
            if step % validate_every == 0:
                validate(step)
            bar.update()
            timer.tick()
            last_save = _after_unit(step, f"XOR n={n_active}", "step", stop, deadline, bar, save, checkpoint,
                                    last_save, checkpoint_every_s)
    bar.close()
    if done < steps:
        save(steps)
    log["seconds"] = seconds_before + time.perf_counter() - start
    log["final_w"] = layer.w.item()
    log["capacity"] = layer.capacity
    log["first_perfect_step"] = next((s for s, a in zip(log["steps"], log["val_accuracy"]) if a == 1.0), None)
    log["model"] = model
    return log


def _resume(checkpoint, model, optimizer, make_optimizer, generators, settings, log, wanted: int, unit: str, name: str):
    """(optimizer, log, units done, seconds spent): as given for a fresh run, or as saved in ``checkpoint``."""
    if checkpoint is None or not Path(checkpoint).exists():
        return optimizer, log, 0, 0.0
    optimizer, saved = load_checkpoint(checkpoint, model, make_optimizer, generators)
    _check_settings(checkpoint, saved["settings"], settings)
    _check_not_beyond(checkpoint, saved["done"], wanted, unit)
    print(f"{name}: resumed from {checkpoint} after {saved['done']} {unit}", flush=True)
    return optimizer, saved["log"], saved["done"], saved["seconds"]


def _after_unit(done: int, name: str, unit: str, stop, deadline, bar, save, checkpoint, last_save: float,
                every_s: float) -> float:
    """After each step or epoch: save and stop on the stop button or the deadline, save every ``every_s``
    seconds; returns the time of the last save."""
    resume = f"; run it again to resume from {checkpoint}" if checkpoint else ""
    if stop.requested or (deadline is not None and time.monotonic() > deadline):
        bar.close()
        save(done)
        if stop.requested:
            raise KeyboardInterrupt(f"{name} stopped after {unit} {done}{resume}")
        raise TimeoutError(f"{name} reached its deadline after {unit} {done}{resume}")
    if checkpoint is not None and time.perf_counter() - last_save > every_s:
        save(done)
        return time.perf_counter()
    return last_save


def _check_settings(path, saved: dict, wanted: dict) -> None:
    """A checkpoint resumes only the run it belongs to."""
    different = {k: (saved.get(k), v) for k, v in wanted.items() if saved.get(k) != v}
    if different:
        details = ", ".join(f"{k}: saved {old!r}, asked {new!r}" for k, (old, new) in different.items())
        raise ValueError(f"checkpoint {path} belongs to another run ({details}); delete it or pass another checkpoint path")


def _check_not_beyond(path, done: int, wanted: int, unit: str) -> None:
    if done > wanted:
        raise ValueError(f"checkpoint {path} is already {done} {unit} into its run, more than the {wanted} asked for; "
                         f"ask for at least {done} {unit} or delete it")


class _DurationEstimate:
    """Times the first units of a long run (2 % of them, at least ``at_least``, or ``after_s`` seconds,
    whichever comes first) and prints, once, how long the whole run should take. ``at_least`` should cover
    one period of any periodic extra work (a validation every 100 steps), or the estimate misses it."""

    def __init__(self, name: str, remaining: int, unit: str, enabled: bool, after_s: float = 3.0,
                 at_least: int = 5) -> None:
        self.name, self.remaining, self.unit, self.after_s = name, remaining, unit, after_s
        self.enabled = enabled and remaining > 0
        self.enough = min(remaining, max(at_least, math.ceil(0.02 * remaining)))
        self.count, self.start = 0, time.perf_counter()

    def tick(self) -> None:
        if not self.enabled:
            return
        self.count += 1
        elapsed = time.perf_counter() - self.start
        if elapsed >= self.after_s or self.count >= self.enough:
            expected = elapsed / self.count * self.remaining
            print(f"{self.name}: {self.remaining} {self.unit} expected to take {format_duration(expected)} on this machine "
                  f"(from the first {self.count})", flush=True)
            self.enabled = False


def format_duration(seconds: float) -> str:
    """``3 h 05 min``, ``12 min 40 s`` or ``8 s``."""
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {secs:02d} s"
    return f"{secs} s"


def spearman(x: list[float], y: list[float]) -> float:
    """Spearman's rank correlation of two lists of numbers (`course_lib.rank_correlation`)."""
    return rank_correlation.spearman(torch.tensor(x, dtype=torch.float64), torch.tensor(y, dtype=torch.float64))


# --- MNIST ---------------------------------------------------------------------------------------------

def mnist_model(widths: tuple[int, int, int] = (30, 60, 256), lambda_w: tuple[float, float, float] = (5e-5, 5e-5, 1e-3),
                lambda_f: float = 1e-8, dropout: float = 0.25) -> nn.Sequential:
    """The reference's MNIST network: three g_∞ blocks (two convolutional, one dense) between fixed linear layers."""
    c0, c1, c2 = widths

    def conv_block(channels: int):
        return lambda i: keras_init(nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1), Dropout(dropout),
                                                  BatchNorm2d(channels, **KERAS_BN)))

    def dense_block(i: int) -> nn.Module:
        return keras_init(nn.Sequential(nn.Linear(c2, c2), Dropout(dropout), BatchNorm1d(c2, **KERAS_BN)))

    return nn.Sequential(
        frozen(nn.Conv2d(1, c0, 3, padding=1)),
        GInfinity(conv_block(c0), lambda_w=lambda_w[0], lambda_f=lambda_f),
        nn.MaxPool2d(2),
        frozen(nn.Conv2d(c0, c1, 3, padding=1)),
        GInfinity(conv_block(c1), lambda_w=lambda_w[1], lambda_f=lambda_f),
        nn.MaxPool2d(2), nn.Flatten(),
        frozen(nn.Linear(7 * 7 * c1, c2)),
        GInfinity(dense_block, lambda_w=lambda_w[2], lambda_f=lambda_f),
        frozen(nn.Linear(c2, 10)),
    )


BLOCK_NAMES = ("cnn0", "cnn1", "fc0")


def run_mnist(widths: tuple[int, int, int] = (30, 60, 256), epochs: int = 5000, batch_size: int = 512,
              train_size: int = 50_000, validation_size: int = 10_000, test_size: int = 10_000, seed: int = 0,
              device: torch.device | str = "cpu", normalize: bool = False, checkpoint: str | Path | None = None,
              checkpoint_every_s: float = 300.0, progress: bool = False, deadline: float | None = None) -> dict:
    """Train `mnist_model`; per epoch record each block's w, validation and test accuracy.

    The validation digits are the last ``validation_size`` of the training part (never trained on); the
    test digits are the held-out part. Pixels are /255 as in the reference (``normalize=False``).
    Returned: ``w`` (block name → list per epoch), ``val_accuracy``, ``test_accuracy``, ``best_epoch`` (by
    validation), ``test_at_best``, ``final_test``, ``seconds``, ``source``.

    ``checkpoint``, ``checkpoint_every_s``, ``progress`` and ``deadline`` as in `run_xor`, by epochs: an
    interrupt or the deadline takes effect at the end of the current epoch.
    """
    data = load_mnist(train_size=train_size + validation_size, heldout_size=test_size, device=device, normalize=normalize)
    available = data.train_x.shape[0]
    validation_size = min(validation_size, available // 5)
    train_x, train_y = data.train_x[: available - validation_size], data.train_y[: available - validation_size]
    val = DeviceBatches(data.train_x[available - validation_size:], data.train_y[available - validation_size:],
                        batch_size=1000, shuffle=False)
    test = DeviceBatches(data.heldout_x, data.heldout_y, batch_size=1000, shuffle=False)
    settings = dict(widths=tuple(widths), batch_size=batch_size, train_size=len(train_y), validation_size=validation_size,
                    test_size=len(data.heldout_y), seed=seed, normalize=normalize)
    torch.manual_seed(seed)
    model = mnist_model(widths).to(device)
    layers = ginfinity_layers(model)

    def make_optimizer(groups) -> torch.optim.Optimizer:  # the paper's optimizer, as course_lib.optim writes it
        return optim.Adadelta(groups, lr=1.0, rho=0.95, eps=1e-8)

    optimizer = make_optimizer([p for p in model.parameters() if p.requires_grad])
    shuffling = torch.Generator().manual_seed(seed)
    batches = DeviceBatches(train_x, train_y, batch_size=batch_size, generator=shuffling)
    log = {"w": {name: [] for name in BLOCK_NAMES}, "val_accuracy": [], "test_accuracy": [], "train_size": len(train_y),
           "validation_size": validation_size, "source": data.source}
    optimizer, log, done, seconds_before = _resume(checkpoint, model, optimizer, make_optimizer, {"shuffling": shuffling},
                                                   settings, log, epochs, "epochs", "g_∞ MNIST")
    start = time.perf_counter()

    def save(epoch: int) -> None:
        if checkpoint is not None:
            save_checkpoint(checkpoint, model, optimizer, {"shuffling": shuffling},
                            {"settings": settings, "log": log, "done": epoch,
                             "seconds": seconds_before + time.perf_counter() - start})

    bar = tqdm(total=epochs, initial=done, desc="g_∞ MNIST", unit="epoch", disable=not progress, leave=False)
    last_save, timer = time.perf_counter(), _DurationEstimate("g_∞ MNIST", epochs - done, "epochs", progress, after_s=0.0)
    with DeferredInterrupt() as stop:
        for epoch in range(done, epochs):
            model.train()
            for x, y in batches:
                loss = nn.functional.cross_entropy(model(x), y) + regularization(model)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                grow_all(model, optimizer)
            for name, layer in zip(BLOCK_NAMES, layers):
                log["w"][name].append(layer.w.item())
            log["val_accuracy"].append(evaluate(model, val, nn.functional.cross_entropy)[1])
            log["test_accuracy"].append(evaluate(model, test, nn.functional.cross_entropy)[1])
            bar.update()
            timer.tick()
            last_save = _after_unit(epoch + 1, "g_∞ MNIST", "epoch", stop, deadline, bar, save, checkpoint,
                                    last_save, checkpoint_every_s)
    bar.close()
    if done < epochs:
        save(epochs)
    log["seconds"] = seconds_before + time.perf_counter() - start
    best = max(range(epochs), key=lambda e: (log["val_accuracy"][e], -e))
    log.update(best_epoch=best, test_at_best=log["test_accuracy"][best], final_test=log["test_accuracy"][-1],
               final_w={name: values[-1] for name, values in log["w"].items()},
               capacity={name: layer.capacity for name, layer in zip(BLOCK_NAMES, layers)}, model=model)
    return log


# --- the logs shipped with the course ---------------------------------------------------------------------

RESULTS_DIR = Path(__file__).resolve().parents[2] / "results"
SHIPPED_SOURCES = {"reference": "the reference implementation's own runs (Keras)",
                   "paper": "this course's runs at the paper's scale (maintainers/paper_results.py)"}


def shipped_log(experiment: str, source: str = "reference") -> dict | None:
    """A run shipped in ``results/<source>/ginfty_<experiment>.json``, downsampled to kilobytes.

    ``experiment`` is ``xor`` or ``mnist``; ``source`` is ``reference`` (always shipped) or ``paper`` (None
    until ``maintainers/paper_results.py run`` has produced it). XOR logs hold ``step`` and, per task ``n``,
    ``w`` and ``val_accuracy``; MNIST logs hold ``epoch``, ``w`` per block and ``test_accuracy``; both hold
    ``final_w`` at full resolution and a ``label`` to put in a legend.
    """
    if experiment not in ("xor", "mnist"):
        raise ValueError(f"experiment must be 'xor' or 'mnist', got {experiment!r}")
    if source not in SHIPPED_SOURCES:
        raise ValueError(f"source must be one of {sorted(SHIPPED_SOURCES)}, got {source!r}")
    path = RESULTS_DIR / source / f"ginfty_{experiment}.json"
    if not path.exists():
        if source == "reference":
            raise FileNotFoundError(f"{path} is missing: the reference logs ship with the course (results/reference/)")
        return None
    return json.loads(path.read_text())


def finite_and_bounded(values: list[float], low: float = 0.0, high: float = 5.0) -> bool:
    return all(math.isfinite(v) and low < v < high for v in values)
