"""The model-randomization sanity check of Adebayo et al. (2018): does a map depend on what the network learned?

An attribution map that explains a trained network must change when the network's weights are destroyed. The
check re-initializes the parametrized layers **from the top down, cascading**: at depth d the d top-most layers
carry fresh random weights (their default initialization) and the layers below keep the trained ones. For each
method and depth it compares the map of the randomized network with the trained network's map, on the same input
and class, by the **Spearman rank correlation** of the maps' absolute values (the sign of a map is often arbitrary:
Adebayo et al. compare absolute values too):

    ρ(a, b) = Pearson correlation of rank(a) and rank(b),

with rank(v)_i the position of v_i in v sorted ascending (1-based), tied values sharing the mean of their positions.
Without ties ρ = 1 − 6 Σ_i (rank(a)_i − rank(b)_i)² / (n(n² − 1)). A method **passes** when ρ falls as layers are
randomized (its map depends on the weights); one whose map stays put (ρ near 1 even with every layer random) shows
something about the input and the architecture, not about what was learned.

Shapes: a map is any tensor (N, …) with one map per image; similarities are averaged over the N images. A map that is
constant (all zeros, as Grad-CAM's can be after its ReLU) carries no ranking: its similarity is counted as 0.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from course_lib.rank_correlation import rankdata, spearman
from course_lib.sequential import leaf_modules


def parametrized_layers(model: nn.Module) -> list[str]:
    """The names of the leaf modules that own parameters, from the bottom (input) to the top (output)."""
    return [name for name, m in leaf_modules(model) if any(True for _ in m.parameters())]


def randomize_top(model: nn.Module, depth: int, seed: int = 0) -> nn.Module:
    """A deep copy of ``model`` whose ``depth`` top-most parametrized layers are re-initialized by their own
    ``reset_parameters()``. The layer i-th from the top is drawn with seed ``seed + i`` whatever the depth, so that
    the cascade adds one layer at a time and keeps the random weights of the layers above. ``model`` is unchanged."""
    layers = parametrized_layers(model)
    if not isinstance(depth, int) or not 0 <= depth <= len(layers):
        raise ValueError(f"depth must be an int in [0, {len(layers)}] (the parametrized layers), got {depth!r}")
    randomized = copy.deepcopy(model)
    modules = dict(randomized.named_modules())
    for i, name in enumerate(reversed(layers[len(layers) - depth:])):
        with torch.random.fork_rng():  # the caller's random state is restored afterwards
            torch.manual_seed(seed + i)
            modules[name].reset_parameters()
    return randomized


@dataclass
class Cascade:
    """``layers[d - 1]`` is the layer randomized at step d; ``maps[method]`` (D + 1, N, …) the maps at depths
    0 … D (depth 0: the trained model); ``similarity[method]`` (D + 1, N) ρ(|map at depth d|, |map at depth 0|)."""
    layers: list[str]
    maps: dict[str, Tensor]
    similarity: dict[str, Tensor]

    def mean(self, method: str) -> Tensor:
        """The similarity averaged over the images, shape (D + 1,)."""
        return self.similarity[method].mean(dim=1)


def cascading_randomization(model: nn.Module, x: Tensor, target, methods: dict, seed: int = 0,
                            absolute: bool = True) -> Cascade:
    """Run each ``methods[name](model, x, target) -> maps (N, …)`` on ``model`` with 0, 1, …, D of its top layers
    randomized (`randomize_top`) and compare every map with the trained model's, image by image (`spearman` of the
    absolute values, or of the signed maps when ``absolute`` is False; a constant map counts as 0)."""
    if not methods or not all(callable(f) for f in methods.values()):
        raise ValueError("methods must be a non-empty dict of name → function(model, x, target) returning maps")
    layers = parametrized_layers(model)
    maps = {name: [] for name in methods}
    for depth in range(len(layers) + 1):
        randomized = randomize_top(model, depth, seed).eval()
        for name, method in methods.items():
            maps[name].append(method(randomized, x, target).detach())
    maps = {name: torch.stack(m) for name, m in maps.items()}
    similarity = {}
    for name, m in maps.items():
        if absolute:
            m = m.abs()
        rho = torch.tensor([[spearman(m[d, i], m[0, i]) for i in range(m.shape[1])]
                            for d in range(m.shape[0])], dtype=torch.float64)
        similarity[name] = torch.nan_to_num(rho, nan=0.0)
    return Cascade(layers[::-1], maps, similarity)
