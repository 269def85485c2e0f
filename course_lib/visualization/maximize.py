"""Activation maximization: the input a unit likes best, found by gradient ascent on the input.

Fix a trained network and one objective a(x) — a unit, the mean of a channel, a class score. Starting from a small
random image x_0, repeat

    g = ∇_x [a(x_t) − penalties(x_t)]          x_{t+1} = r( x_t + η · g / mean|g| )

where r is a **regularizing operator applied after every step** (Yosinski et al. 2015, as their toolbox does it —
not once after the ascent, as the thesis describes it). Without r the image grows without bound and fills with
high-frequency patterns no natural image has. The operators of the toolbox, in its order:

- `L2Decay(θ)`        x ← (1 − θ)·x: pulls every pixel towards 0. With ‖step‖ ≤ η it bounds ‖x‖ ≤ η(1 − θ)/θ.
- `GaussianBlur(σ, every)`  smooth x with a Gaussian of width σ every k steps: removes high frequencies.
- `ClipSmallNorm(p)`  set to 0 the p % of pixels whose norm over channels is smallest.
- `ClipSmallContribution(p)`  set to 0 the p % of pixels whose contribution |Σ_c x·g| (the first-order change of
  a if the pixel were set to 0) is smallest.

Mahendran & Vedaldi (2015) add priors for *natural* pre-images, as penalties on the objective and transforms:

- `BoundedRange(B, α)`  the soft penalty (1/(H·W·B^α)) Σ_pixels ‖x_pixel‖^α (α = 6) and, if ``hard``, the
  projection of every pixel's norm back into the ball of radius B after each step;
- `TotalVariation(β)`   Σ ((x_{i+1,j} − x_{i,j})² + (x_{i,j+1} − x_{i,j})²)^{β/2}: zero on constant images;
- `Jitter(d)`           shift x by a random offset of at most d pixels before each evaluation (then back).

The random start and the jitter come from one `torch.Generator` seeded by ``seed``: the same seed, the same image.
Objectives are read before the ReLU by default: behind a ReLU an inactive unit has gradient exactly 0, and the
ascent could never start ("dead start"); `maximize` stops with an error in that case, as the toolbox does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn


# --- objectives ------------------------------------------------------------------------------------------


@dataclass
class Objective:
    """Which number to maximize: ``layer``'s output at ``channel`` — its mean over positions ("channel"), its value at
    one position ("neuron", default the centre), or a unit of a Linear layer / a class score (``position`` None)."""

    layer: str
    channel: int
    kind: str = "channel"
    position: tuple[int, int] | None = None

    def __call__(self, activation: Tensor) -> Tensor:
        if not 0 <= self.channel < activation.shape[1]:
            raise ValueError(f"channel must be in [0, {activation.shape[1] - 1}] for {self.layer!r}, got {self.channel}")
        a = activation[:, self.channel]
        if a.dim() == 1:  # (N,): a Linear unit or a logit
            return a.sum()
        if self.kind == "channel":
            return a.mean(dim=(-2, -1)).sum()
        h, w = a.shape[-2:]
        row, col = self.position if self.position is not None else (h // 2, w // 2)
        return a[:, row, col].sum()


def channel(layer: str, index: int) -> Objective:
    return Objective(layer, index, "channel")


def neuron(layer: str, index: int, position: tuple[int, int] | None = None) -> Objective:
    return Objective(layer, index, "neuron", position)


def logit(layer: str, index: int) -> Objective:
    return Objective(layer, index, "channel")


# --- regularizers: projections applied after each step, and penalties added to the objective ----------------


class L2Decay:
    def __init__(self, decay: float):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"decay must be in [0, 1), got {decay!r}")
        self.decay = decay

    def project(self, x: Tensor, grad: Tensor, step: int) -> Tensor:
        return x * (1.0 - self.decay)


def _check_images(x: Tensor) -> None:
    if x.dim() != 4:
        raise ValueError(f"x must be a batch of images (N, C, H, W), got shape {tuple(x.shape)}")


def gaussian_blur(x: Tensor, sigma: float) -> Tensor:
    """Blur each channel of x (N, C, H, W) with a separable Gaussian of standard deviation ``sigma`` (zero padding
    is avoided by reflecting the border)."""
    _check_images(x)
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0, got {sigma!r}")
    radius = max(1, math.ceil(3 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    kernel = torch.exp(-t**2 / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    c = x.shape[1]
    padded = F.pad(x, (radius, radius, radius, radius), mode="reflect" if min(x.shape[-2:]) > radius else "replicate")
    horizontal = F.conv2d(padded, kernel.reshape(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(horizontal, kernel.reshape(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


class GaussianBlur:
    def __init__(self, sigma: float = 1.0, every: int = 4):
        if not sigma > 0 or not isinstance(every, int) or every < 1:
            raise ValueError(f"sigma must be > 0 and every a positive integer, got sigma={sigma!r}, every={every!r}")
        self.sigma, self.every = sigma, every

    def project(self, x: Tensor, grad: Tensor, step: int) -> Tensor:
        return gaussian_blur(x, self.sigma) if step % self.every == 0 else x


def _zero_smallest(x: Tensor, score: Tensor, percent: float) -> Tensor:
    """Zero the pixels (all channels) whose ``score`` (N, H, W) lies in the lowest ``percent`` % of each image."""
    if percent <= 0:
        return x
    flat = score.reshape(score.shape[0], -1)
    count = int(round(flat.shape[1] * percent / 100))
    if count == 0:
        return x
    smallest = flat.argsort(dim=1)[:, :count]
    keep = torch.ones_like(flat).scatter_(1, smallest, 0.0).reshape(score.shape)
    return x * keep[:, None]


class _ClipSmallest:
    """Zero the ``percent`` % of pixels of each image with the smallest `score` (a subclass says what it is)."""

    def __init__(self, percent: float = 20.0):
        if not 0.0 <= percent <= 100.0:
            raise ValueError(f"percent must be in [0, 100], got {percent!r}")
        self.percent = percent

    def project(self, x: Tensor, grad: Tensor, step: int) -> Tensor:
        return _zero_smallest(x, self.score(x, grad), self.percent)


class ClipSmallNorm(_ClipSmallest):
    @staticmethod
    def score(x: Tensor, grad: Tensor) -> Tensor:
        return x.norm(dim=1)  # the pixel's norm over channels


class ClipSmallContribution(_ClipSmallest):
    @staticmethod
    def score(x: Tensor, grad: Tensor) -> Tensor:
        return (x * grad).sum(dim=1).abs()  # |Σ_c x·g|: how much a would change if the pixel were set to 0


def alpha_norm(x: Tensor, B: float = 1.0, alpha: float = 6.0) -> Tensor:
    """(1/(H·W·B^α)) Σ_pixels ‖x_pixel‖^α for x (N, C, H, W), the pixel norm taken over channels."""
    _check_images(x)
    h, w = x.shape[-2:]
    return x.norm(dim=1).pow(alpha).sum() / (h * w * B**alpha)


def total_variation(x: Tensor, beta: float = 2.0) -> Tensor:
    """Σ_{i,j} ((x_{i+1,j} − x_{i,j})² + (x_{i,j+1} − x_{i,j})²)^{β/2}, summed over channels and images."""
    dy = x[..., 1:, :-1] - x[..., :-1, :-1]
    dx = x[..., :-1, 1:] - x[..., :-1, :-1]
    return (dy**2 + dx**2).pow(beta / 2).sum()


class BoundedRange:
    def __init__(self, B: float = 1.0, alpha: float = 6.0, weight: float = 1.0, hard: bool = True):
        if not B > 0 or not alpha > 0 or weight < 0:
            raise ValueError(f"need B > 0, alpha > 0, weight ≥ 0; got B={B!r}, alpha={alpha!r}, weight={weight!r}")
        self.B, self.alpha, self.weight, self.hard = B, alpha, weight, hard

    def penalty(self, x: Tensor) -> Tensor:
        return self.weight * alpha_norm(x, self.B, self.alpha)

    def project(self, x: Tensor, grad: Tensor, step: int) -> Tensor:
        if not self.hard:
            return x
        norm = x.norm(dim=1, keepdim=True)
        return x * (self.B / norm.clamp_min(self.B))  # pixels with norm > B are scaled back onto the sphere


class TotalVariation:
    def __init__(self, weight: float = 0.1, beta: float = 2.0):
        if weight < 0 or not beta > 0:
            raise ValueError(f"need weight ≥ 0 and beta > 0; got weight={weight!r}, beta={beta!r}")
        self.weight, self.beta = weight, beta

    def penalty(self, x: Tensor) -> Tensor:
        return self.weight * total_variation(x, self.beta)


class Jitter:
    def __init__(self, pixels: int = 2):
        if not isinstance(pixels, int) or pixels < 0:
            raise ValueError(f"pixels must be a non-negative integer, got {pixels!r}")
        self.pixels = pixels

    def offsets(self, generator: torch.Generator) -> tuple[int, int]:
        dy, dx = torch.randint(-self.pixels, self.pixels + 1, (2,), generator=generator).tolist()
        return dy, dx


# --- the ascent ----------------------------------------------------------------------------------------


@dataclass
class Maximization:
    image: Tensor  # the final x
    history: list[float]  # the objective a(x_t) for t = 0 … steps (without penalties, without jitter)
    best_image: Tensor
    best_value: float
    snapshots: list[Tensor] = field(default_factory=list)


def ascent_step(x: Tensor, grad: Tensor, lr: float, step: int, regularizers: list) -> Tensor:
    """x + η·g/mean|g|, then every regularizer's projection in order (the toolbox's r_θ)."""
    x = x + lr * grad / grad.abs().mean().clamp_min(1e-12)
    for r in regularizers:
        if hasattr(r, "project"):
            x = r.project(x, grad, step)
    return x


def evaluate_objective(model: nn.Module, objective: Objective, x: Tensor) -> Tensor:
    """a(x): the objective read from ``objective.layer``'s output inside a forward hook.

    Reading it in the hook, before later modules run, keeps it right when a ReLU(inplace=True) follows the layer.
    """
    module = dict(model.named_modules()).get(objective.layer)
    if module is None:
        raise ValueError(f"objective.layer: no module named {objective.layer!r}")
    values = []
    handle = module.register_forward_hook(lambda m, args, output: values.append(objective(output)) and None)
    try:
        model(x)
    finally:
        handle.remove()
    return values[0]


def maximize(model: nn.Module, objective: Objective, shape: tuple[int, ...], steps: int = 200, lr: float = 1.0,
             regularizers: list | tuple = (), jitter: Jitter | None = None, seed: int = 0, init_scale: float = 0.1,
             init: Tensor | None = None, record_every: int = 0) -> Maximization:
    """Gradient ascent on the input of ``model`` (in eval mode, its weights untouched) for ``objective``.

    ``shape``: the input's shape, e.g. (1, 1, 28, 28). The start is ``init`` or N(0, init_scale²) noise from a
    generator seeded with ``seed``. Penalties (`BoundedRange`, `TotalVariation`) are subtracted from the objective
    before the gradient; projections (`L2Decay`, `GaussianBlur`, `ClipSmallNorm`, `ClipSmallContribution`,
    `BoundedRange(hard=True)`) follow each step, in the order given.
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    generator = torch.Generator().manual_seed(seed)
    device = next(model.parameters()).device
    x = init.detach().clone().to(device) if init is not None else \
        (torch.randn(shape, generator=generator) * init_scale).to(device)
    regularizers = list(regularizers)
    was_training = model.training
    model.eval()
    history, snapshots = [], []
    try:
        with torch.no_grad():
            history.append(float(evaluate_objective(model, objective, x)))
        best_value, best_image = history[0], x.clone()
        for step in range(1, steps + 1):
            dy, dx = jitter.offsets(generator) if jitter is not None else (0, 0)
            x_var = torch.roll(x, shifts=(dy, dx), dims=(-2, -1)).requires_grad_(True)
            total = evaluate_objective(model, objective, x_var)
            for r in regularizers:
                if hasattr(r, "penalty"):
                    total = total - r.penalty(x_var)
            grad, = torch.autograd.grad(total, x_var)
            grad = torch.roll(grad, shifts=(-dy, -dx), dims=(-2, -1))
            if step == 1 and not grad.any():
                raise ValueError("the gradient is exactly 0 at the start (a dead start: the unit is inactive behind a "
                                 "ReLU); maximize the pre-activation instead, or start from another image")
            x = ascent_step(x, grad, lr, step, regularizers)
            with torch.no_grad():
                history.append(float(evaluate_objective(model, objective, x)))
            if history[-1] > best_value:
                best_value, best_image = history[-1], x.clone()
            if record_every and step % record_every == 0:
                snapshots.append(x.clone())
    finally:
        model.train(was_training)
    return Maximization(x, history, best_image, best_value, snapshots)


@dataclass
class Reconstruction:
    """The objective of a pre-image (Mahendran & Vedaldi): −‖Φ(x) − Φ(x₀)‖² / ‖Φ(x₀)‖² for the representation Φ
    = ``layer``'s output and a target ``representation`` Φ(x₀). Maximizing it makes Φ(x) match Φ(x₀)."""

    layer: str
    representation: Tensor

    def __call__(self, activation: Tensor) -> Tensor:
        target = self.representation.to(activation.device)
        return -((activation - target) ** 2).sum() / (target**2).sum().clamp_min(1e-12)


@dataclass
class _Identity:
    layer: str

    def __call__(self, activation: Tensor) -> Tensor:
        return activation.detach().clone()


def invert(model: nn.Module, layer: str, image: Tensor, steps: int = 200, lr: float = 0.05,
           regularizers: list | tuple = (), jitter: Jitter | None = None, seed: int = 0) -> Maximization:
    """A pre-image of ``image``'s representation at ``layer``: an input the network cannot tell from ``image`` there."""
    with torch.no_grad():
        was_training = model.training
        model.eval()
        target = evaluate_objective(model, _Identity(layer), image)
        model.train(was_training)
    return maximize(model, Reconstruction(layer, target), tuple(image.shape), steps, lr, regularizers, jitter, seed)
