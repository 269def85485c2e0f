"""Structured pruning that really removes units: smaller weight matrices, fewer channels, fewer MACs.

A hidden unit j sits in a **chain**

    producer  →  [norm]  →  activation  →  [channel-wise modules, Flatten]  →  consumers

The producer computes it (row j of a Linear weight, output channel j of a Conv2d or ConvTranspose2d), an optional
BatchNorm rescales it (entry j of γ, β and the running statistics), the activation acts on it alone, and each
consumer reads it (column j of a Linear weight, input channel j of a convolution; behind a Flatten of a (C, H, W)
map, the H·W columns c·HW … (c+1)·HW − 1). Removing unit j deletes exactly these slices. If j was dead on the data
(its activation output was 0 every time), every consumer received 0 from it, so the pruned network computes the
same outputs on that data, up to the rounding of a shorter sum.

`torch.nn.utils.prune` does something else: it multiplies the weight by a mask. The tensors keep their shapes, so
nothing gets smaller or faster, and a "pruned" unit with a bias still outputs activation(bias) (plus β after a
BatchNorm). Removal equals masking only when the weight, the bias and the norm's γ and β are all zeroed.

The thesis' train/prune cycles (after Hu et al. 2016) repeat: train → freeze → count activations on the data →
remove units active at most ``threshold`` times → train again, until a cycle removes nothing. Its "distorted"
variant adds noise u·(1 − var(W)), u ~ U(−1, 1) elementwise, to every weight before training; its "regularized"
variant adds an L1 penalty to the loss (`l1_penalty`).

Pruning replaces parameters by new, smaller ones: build the optimizer again afterwards.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from course_lib.compression.activations import ACTIVATIONS, activation_stats, observe
from course_lib.layers import BatchNorm1d, BatchNorm2d, Dropout
from course_lib.sequential import leaf_modules

PRODUCERS = (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)
# torch's and course_lib's batch norms share the attribute names weight, bias, running_mean, running_var
NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, BatchNorm1d, BatchNorm2d)
CHANNELWISE = (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.Dropout, nn.Dropout2d,
               Dropout, nn.Identity, nn.Flatten)


@dataclass
class Chain:
    """One prunable layer: its producer, optional norm, the activation's name, and every consumer.

    ``spatial``: how many consumer inputs each unit feeds per consumer, 1 unless a Flatten of a (C, H, W) map sits
    between the activation and a Linear consumer (then H·W).
    """

    producer: nn.Module
    consumers: list[nn.Module]
    norm: nn.Module | None = None
    activation: str = ""
    spatial: int = 1

    @property
    def width(self) -> int:
        return _out_units(self.producer)


def _out_units(m: nn.Module) -> int:
    return m.out_features if isinstance(m, nn.Linear) else m.out_channels


def _check_groups(m: nn.Module, role: str) -> None:
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)) and m.groups != 1:
        raise ValueError(f"{role}: grouped convolutions (groups={m.groups}) are not supported; only groups=1")


@torch.no_grad()
def find_chains(model: nn.Module, example_input: Tensor) -> dict[str, Chain]:
    """The prunable chains of a model built from (nested) nn.Sequential containers, keyed by activation name.

    ``example_input`` (one batch) is run once to learn the map size in front of each Flatten. A chain needs a
    producer, an optional norm, an activation, only channel-wise modules or a Flatten after it, and a consumer;
    the output layer has no consumer and is never pruned.
    """
    leaves = leaf_modules(model)
    shapes: dict[str, torch.Size] = {}
    observe(model, [example_input], {m: lambda mod, i, o, n=n: shapes.__setitem__(n, i[0].shape) for n, m in leaves})
    chains: dict[str, Chain] = {}
    i = 0
    while i < len(leaves):
        name, m = leaves[i]
        if not isinstance(m, PRODUCERS):
            i += 1
            continue
        j = i + 1
        norm = None
        if j < len(leaves) and isinstance(leaves[j][1], NORMS):
            norm = leaves[j][1]
            j += 1
        if j >= len(leaves) or not isinstance(leaves[j][1], ACTIVATIONS):
            i = j
            continue
        act_name = leaves[j][0]
        j += 1
        spatial = 1
        while j < len(leaves) and isinstance(leaves[j][1], CHANNELWISE):
            if isinstance(leaves[j][1], nn.Flatten):
                spatial = math.prod(shapes[leaves[j][0]][2:])
            j += 1
        if j < len(leaves) and isinstance(leaves[j][1], PRODUCERS):
            consumer = leaves[j][1]
            if spatial > 1 and not isinstance(consumer, nn.Linear):
                i = j
                continue
            chains[act_name] = Chain(m, [consumer], norm, act_name, spatial)
        i = j
    return chains


def _replace(module: nn.Module, name: str, value: Tensor) -> None:
    old = getattr(module, name)
    if isinstance(old, nn.Parameter):
        setattr(module, name, nn.Parameter(value.clone(), requires_grad=old.requires_grad))
    else:
        setattr(module, name, value.clone())  # a buffer


@dataclass
class PruneReport:
    removed: int
    kept: int
    params_before: int
    params_after: int


def _params(chain: Chain) -> int:
    modules = [chain.producer, *chain.consumers] + ([chain.norm] if chain.norm is not None else [])
    return sum(p.numel() for m in modules for p in m.parameters())


@torch.no_grad()
def prune_units(chain: Chain, keep: Tensor) -> PruneReport:
    """Physically remove the units of ``chain`` where ``keep`` is False (``keep``: bool, one entry per unit).

    Producer: Linear rows / Conv2d output channels (weight dim 0) / ConvTranspose2d output channels (weight dim 1),
    and the bias. Norm: γ, β, running mean and variance. Consumers: Linear columns (H·W of them per channel behind a
    Flatten) / Conv2d input channels (dim 1) / ConvTranspose2d input channels (dim 0).
    """
    p, width = chain.producer, chain.width
    if not isinstance(p, PRODUCERS):
        raise ValueError(f"chain.producer must be one of Linear, Conv2d, ConvTranspose2d, got {type(p).__name__}")
    _check_groups(p, "chain.producer")
    keep = torch.as_tensor(keep)
    if keep.dtype != torch.bool or keep.shape != (width,):
        raise ValueError(f"keep must be a bool tensor of shape ({width},) (one entry per unit), got "
                         f"{keep.dtype} {tuple(keep.shape)}")
    if not keep.any():
        raise ValueError("keep: at least one unit must be kept (removing a whole layer would disconnect the network)")
    before = _params(chain)
    idx = keep.nonzero().squeeze(1).to(p.weight.device)
    kept = idx.numel()

    _replace(p, "weight", p.weight.index_select(1 if isinstance(p, nn.ConvTranspose2d) else 0, idx))
    if p.bias is not None:
        _replace(p, "bias", p.bias[idx])
    if isinstance(p, nn.Linear):
        p.out_features = kept
    else:
        p.out_channels = kept

    if chain.norm is not None:
        norm = chain.norm
        if norm.num_features != width:
            raise ValueError(f"chain.norm has {norm.num_features} features but the producer has {width} units")
        for name in ("weight", "bias", "running_mean", "running_var"):
            if getattr(norm, name, None) is not None:
                _replace(norm, name, getattr(norm, name)[idx])
        norm.num_features = kept

    for c in chain.consumers:
        _check_groups(c, "chain.consumers")
        if isinstance(c, nn.Linear):
            if c.in_features != width * chain.spatial:
                raise ValueError(f"chain.consumers: a Linear with {c.in_features} inputs cannot read {width} units × "
                                 f"spatial {chain.spatial}")
            cols = (idx[:, None] * chain.spatial + torch.arange(chain.spatial, device=idx.device)).reshape(-1)
            _replace(c, "weight", c.weight.index_select(1, cols))
            c.in_features = cols.numel()
        elif isinstance(c, nn.Conv2d):
            _replace(c, "weight", c.weight.index_select(1, idx))
            c.in_channels = kept
        elif isinstance(c, nn.ConvTranspose2d):
            _replace(c, "weight", c.weight.index_select(0, idx))
            c.in_channels = kept
        else:
            raise ValueError(f"chain.consumers: each must be a Linear, Conv2d or ConvTranspose2d, got {type(c).__name__}")
    return PruneReport(width - kept, kept, before, _params(chain))


@torch.no_grad()
def merge_always_active(model: nn.Module, chain: Chain, batches: Iterable, always_active: Tensor,
                        margin: float = 1.0) -> int:
    """Replace the always-active units A of a Linear → ReLU → Linear chain by r = rank(W2_A W1_A) units.

    On the data, a ReLU unit that is always active is linear: together the units A add
    M x + W2_A b1_A to the consumer, with M = W2_A W1_A. Take the SVD M = U S Vᵀ of rank r and make r new units
    z_j = v_jᵀ x + s_j, feeding u_j σ_j to the consumer, with shifts s_j = margin − min over the data of v_jᵀ x so
    they stay active (hence linear) on the same data; subtract Σ_j u_j σ_j s_j from the consumer's bias. The model
    computes the same outputs on ``batches``; returns the new width.
    """
    p, (c,) = chain.producer, chain.consumers
    if not (isinstance(p, nn.Linear) and isinstance(c, nn.Linear) and chain.norm is None and chain.spatial == 1):
        raise ValueError("chain: merging needs Linear → ReLU → Linear without a norm or a Flatten")
    if p.bias is None or c.bias is None:
        raise ValueError("chain: merging needs biases on the producer (for the shifts) and the consumer (for the constant)")
    if not isinstance(dict(model.named_modules()).get(chain.activation), nn.ReLU):
        raise ValueError(f"chain.activation {chain.activation!r} must name an nn.ReLU of the model")
    a = torch.as_tensor(always_active, dtype=torch.bool)
    if a.shape != (chain.width,):
        raise ValueError(f"always_active must be a bool tensor of shape ({chain.width},)")
    if not a.any():
        return chain.width
    ia, rest = a.nonzero().squeeze(1), (~a).nonzero().squeeze(1)
    b1 = p.bias
    M = c.weight[:, ia] @ p.weight[ia]  # (out, in)
    U, S, Vh = torch.linalg.svd(M, full_matrices=False)
    tol = S.max() * max(M.shape) * torch.finfo(M.dtype).eps if S.numel() else 0.0
    r = int((S > tol).sum())
    V, US = Vh[:r], U[:, :r] * S[:r]

    lowest = torch.full((r,), torch.inf, dtype=M.dtype, device=M.device)

    def record_lowest(module, inputs, output):  # returns None: the module's output is left alone
        torch.minimum(lowest, (inputs[0] @ V.T).amin(0), out=lowest)

    observe(model, batches, {p: record_lowest})
    shift = margin - lowest

    new_bias = c.bias + c.weight[:, ia] @ b1[ia] - US @ shift
    _replace(p, "weight", torch.cat([p.weight[rest], V]))
    _replace(p, "bias", torch.cat([b1[rest], shift]))
    _replace(c, "weight", torch.cat([c.weight[:, rest], US], dim=1))
    _replace(c, "bias", new_bias)
    p.out_features = c.in_features = rest.numel() + r
    return p.out_features


def prune_dead_units(chains: dict[str, Chain], dead: dict[str, Tensor]) -> dict[str, int]:
    """Remove the units marked in ``dead`` (bool masks keyed like ``chains``, e.g. `ActivationStats.dead`) from every
    chain; a chain whose units are all dead keeps its first one, so the network stays connected. Returns the number
    of units removed per chain."""
    removed = {}
    for name, chain in chains.items():
        keep = ~dead[name]
        if not keep.any():
            keep[0] = True
        removed[name] = prune_units(chain, keep).removed if not keep.all() else 0
    return removed


def l1_penalty(tensors: Iterable[Tensor]) -> Tensor:
    """Σ |t| over all entries of all ``tensors`` (the thesis' "regularized" variant; on BN γ: network slimming)."""
    return sum(t.abs().sum() for t in tensors)


def batchnorm_scales(model: nn.Module) -> list[Tensor]:
    """The γ of every BatchNorm of ``model``: L1 on them pushes whole channels towards zero (Liu et al. 2017)."""
    return [m.weight for m in model.modules() if isinstance(m, NORMS) and m.weight is not None]


@torch.no_grad()
def distort_weights(model: nn.Module, generator: torch.Generator | None = None) -> None:
    """The thesis' distortion: W ← W + u·(1 − var(W)), u ~ U(−1, 1) per entry, for every Linear/conv weight."""
    for m in model.modules():
        if isinstance(m, PRODUCERS):
            w = m.weight
            u = torch.rand(w.shape, generator=generator, dtype=w.dtype).to(w.device) * 2 - 1
            w.add_(u * (1 - w.var()))


@dataclass
class Cycle:
    cycle: int
    loss: float  # what ``train`` returned
    widths: dict[str, int]  # units per chain after this cycle's pruning
    removed: dict[str, int] = field(default_factory=dict)
    always_active: dict[str, int] = field(default_factory=dict)  # units active on every observation, before pruning
    output_change: float = 0.0  # max |output after − output before| this cycle's pruning, on the first batch


def train_prune_cycles(model: nn.Module, chains: dict[str, Chain], train: Callable[[nn.Module], float],
                       batches: Iterable, threshold: int = 0, max_cycles: int = 10, distort: bool = False,
                       generator: torch.Generator | None = None) -> list[Cycle]:
    """Train → count activations on ``batches`` → remove units active at most ``threshold`` times → repeat.

    ``train(model)`` trains the current model (building its own optimizer, since pruning replaces parameters) and
    returns its last loss. Stops after the first cycle that removes nothing, or after ``max_cycles``. With
    ``distort``, the weights are distorted (`distort_weights`) before each training. ``chains`` is keyed by
    activation name, as `find_chains` returns it.
    """
    if max_cycles < 1:
        raise ValueError(f"max_cycles must be at least 1, got {max_cycles}")
    probe = next(iter(batches))
    probe = probe[0] if isinstance(probe, (tuple, list)) else probe

    def outputs() -> Tensor:
        was_training = model.training
        model.eval()
        with torch.no_grad():
            y = model(probe)
        model.train(was_training)
        return y

    history: list[Cycle] = []
    for cycle in range(1, max_cycles + 1):
        if distort:
            distort_weights(model, generator)
        loss = float(train(model))
        stats = activation_stats(model, batches, layers=list(chains))
        dead = stats.dead(threshold)
        before = outputs()
        removed = prune_dead_units(chains, dead)
        change = float((outputs() - before).abs().max())
        always = {n: int(s.always_active().sum()) for n, s in stats.items()}
        history.append(Cycle(cycle, loss, {n: c.width for n, c in chains.items()}, removed, always, change))
        if not any(removed.values()):
            break
    return history
