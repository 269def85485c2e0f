"""How often each unit fires: activation statistics streamed over a dataset.

Activation-based pruning (Hu et al. 2016, "Network Trimming") asks one question of every hidden unit j of a
trained network: over all the data, how often is its output a_j positive? For a unit of a Linear layer one
observation is one sample; for a channel of a convolution it is one sample at one position, so a channel of an
(N, C, H, W) activation has N·H·W observations per batch. With n_j observations and z_j of them equal to zero,

    frequency_j = (n_j − z_j) / n_j          APoZ_j = z_j / n_j = 1 − frequency_j

(APoZ: "average percentage of zeros"). A unit that is **dead** on the data (frequency 0, all outputs 0) sends
nothing to the next layer, so removing it changes no output on that data. A unit that is **always active**
(frequency 1) is, behind a ReLU, a linear unit on the data.

The statistics are taken on the output of the modules named (by default every activation module: ReLU and
friends), i.e. on the real post-activation tensor, even behind a BatchNorm and even when the ReLU works in place.
Each batch is reduced to per-unit sums inside the forward hook, so memory stays O(units), not O(data); counts are
integers, so the result does not depend on the batch size.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Softplus, nn.Tanh, nn.Sigmoid)


@dataclass
class UnitStats:
    """Per-unit statistics of one module's output; every tensor has one entry per unit (shape (units,))."""

    observations: int  # n: values seen per unit (samples × positions)
    active: Tensor  # int64, how many of them were > 0
    total: Tensor  # float64, their sum
    total_sq: Tensor  # float64, the sum of their squares
    max: Tensor  # largest value seen
    min: Tensor  # smallest value seen

    @property
    def units(self) -> int:
        return self.active.numel()

    @property
    def frequency(self) -> Tensor:
        """Fraction of observations in which the unit was active (> 0)."""
        return self.active.double() / self.observations

    @property
    def apoz(self) -> Tensor:
        """Average percentage of zeros (of non-positive values, for activations that can go negative)."""
        return 1.0 - self.frequency

    @property
    def mean(self) -> Tensor:
        return self.total / self.observations

    @property
    def std(self) -> Tensor:
        return (self.total_sq / self.observations - self.mean**2).clamp_min(0.0).sqrt()

    def dead(self, threshold: int = 0) -> Tensor:
        """Units active in at most ``threshold`` observations (the thesis' "activation threshold"; 0: never)."""
        return self.active <= threshold

    def always_active(self) -> Tensor:
        """Units active in every observation: behind a ReLU they act as linear units on this data."""
        return self.active == self.observations

    def outliers(self, k: float = 2.0) -> Tensor:
        """Units whose frequency lies below mean − k·std of the layer's frequencies (the thesis' outlier rule)."""
        f = self.frequency
        return f < f.mean() - k * f.std(unbiased=False)


class ActivationStats(dict):
    """``{module name: UnitStats}`` with the layer-wise selections of `UnitStats` applied to every layer."""

    def dead(self, threshold: int = 0) -> dict[str, Tensor]:
        return {name: s.dead(threshold) for name, s in self.items()}

    def always_active(self) -> dict[str, Tensor]:
        return {name: s.always_active() for name, s in self.items()}

    def widths(self) -> dict[str, int]:
        return {name: s.units for name, s in self.items()}

    def summary(self, threshold: int = 0) -> str:
        lines = [f"{'layer':<14}{'units':>7}{'dead':>7}{'always on':>11}{'mean APoZ':>11}"]
        for name, s in self.items():
            lines.append(f"{name:<14}{s.units:>7}{int(s.dead(threshold).sum()):>7}"
                         f"{int(s.always_active().sum()):>11}{float(s.apoz.mean()):>11.3f}")
        return "\n".join(lines)


def _select_modules(model: nn.Module, layers: Sequence[str | type] | None) -> dict[str, nn.Module]:
    named = dict(model.named_modules())
    if layers is None:
        layers = list(ACTIVATIONS)
    chosen: dict[str, nn.Module] = {}
    for item in layers:
        if isinstance(item, str):
            if item not in named:
                raise ValueError(f"layers: no module named {item!r}; the model has {sorted(n for n in named if n)}")
            chosen[item] = named[item]
        elif isinstance(item, type) and issubclass(item, nn.Module):
            chosen.update({n: m for n, m in named.items() if isinstance(m, item) and n})
        else:
            raise ValueError(f"layers: each entry must be a module name or an nn.Module class, got {item!r}")
    if not chosen:
        raise ValueError("layers: no module of the model matched; name the modules to observe")
    return chosen


@torch.no_grad()
def observe(model: nn.Module, batches: Iterable, hooks: dict[nn.Module, Callable]) -> None:
    """Run ``batches`` (tensors, or (inputs, targets) pairs) through ``model`` in eval mode without autograd, with
    each ``hooks[module]`` attached as a forward hook; the hooks are always removed and the mode restored."""
    handles = [m.register_forward_hook(hook) for m, hook in hooks.items()]
    was_training = model.training
    try:
        model.eval()
        for batch in batches:
            model(batch[0] if isinstance(batch, (tuple, list)) else batch)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)


@torch.no_grad()
def activation_stats(model: nn.Module, batches: Iterable, layers: Sequence[str | type] | None = None) -> ActivationStats:
    """Stream ``batches`` (tensors, or (inputs, targets) pairs) through ``model`` in eval mode and count, for each
    unit of each observed module, how often its output is positive, with the sum, sum of squares, max and min.

    ``layers``: module names and/or module classes to observe (default: every activation module). The unit axis is
    dim 1: features of an (N, F) output, channels of an (N, C, ...) output. A module called twice per forward pass
    counts both calls. The model's training mode is restored afterwards and its hooks are always removed.
    """
    modules = _select_modules(model, layers)
    stats: dict[str, UnitStats] = {}

    def observer(name: str):
        def hook(module, inputs, output):
            if not isinstance(output, Tensor) or output.dim() < 2:
                raise ValueError(f"layers: module {name!r} must output a (N, units, ...) tensor")
            a = output.detach()
            dims = [0, *range(2, a.dim())]  # every axis but the unit axis 1
            units = a.shape[1]
            s = stats.get(name)
            if s is None:
                zeros = torch.zeros(units, dtype=torch.float64, device=a.device)
                s = stats[name] = UnitStats(0, torch.zeros(units, dtype=torch.int64, device=a.device), zeros,
                                            zeros.clone(), torch.full_like(zeros, -torch.inf),
                                            torch.full_like(zeros, torch.inf))
            elif s.units != units:
                raise ValueError(f"module {name!r} produced {units} units after {s.units} in an earlier batch")
            per_unit = a.numel() // units
            s.observations += per_unit
            if per_unit < 2**24:  # sign(relu(a)) is 1 where a > 0, else 0; a float sum of ones is exact below 2**24
                s.active += torch.relu(a).sign_().sum(dims).long()  # (several times faster than summing a > 0)
            else:
                s.active += (a > 0).sum(dims)
            s.total += a.sum(dims).double()  # per batch in a's precision, accumulated in float64
            s.total_sq += a.square().sum(dims).double()
            torch.maximum(s.max, a.amax(dims).double(), out=s.max)
            torch.minimum(s.min, a.amin(dims).double(), out=s.min)
        return hook

    observe(model, batches, {m: observer(n) for n, m in modules.items()})
    if not stats:
        raise ValueError("batches: no data was seen (an empty iterable?)")
    for name, s in stats.items():
        if not torch.isfinite(s.total).all():
            raise ValueError(f"module {name!r} produced NaN or infinite activations: fix the model before pruning it")
    result = ActivationStats()
    for name in modules:  # in the model's order
        if name in stats:
            s = stats[name]
            result[name] = UnitStats(s.observations, s.active.cpu(), s.total.cpu(), s.total_sq.cpu(), s.max.cpu(),
                                     s.min.cpu())
    return result
