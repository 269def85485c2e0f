"""Figures the lectures share: training curves from a `History`, labelled curves of any quantity, and
optimizer trajectories over the contour lines of a 2-D loss surface.

Each function draws into the axes it is given (or a new figure), marks runs that diverged with a
red cross at their last finite point and "(diverged)" in the legend, and returns the figure, so a
notebook can show it and a test can inspect it.
"""

from __future__ import annotations

import math
from typing import Callable, Mapping, Sequence

import matplotlib.pyplot as plt
import torch
from matplotlib.ticker import MaxNLocator

from course_lib.training import History


def plot_curves(
    curves: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    xlabel: str,
    ylabel: str,
    title: str | None = None,
    logx: bool = False,
    logy: bool = False,
    diverged: Sequence[str] = (),
    ax: plt.Axes | None = None,
) -> plt.Figure:
    """One line per entry of ``curves`` (label → (x values, y values)); labels in ``diverged`` get a cross."""
    if ax is None:
        _, ax = plt.subplots()
    for label, (xs, ys) in curves.items():
        xs, ys = list(xs), list(ys)
        if len(xs) != len(ys):
            raise ValueError(f"curve {label!r}: {len(xs)} x values but {len(ys)} y values")
        name = f"{label} (diverged)" if label in diverged else label
        (line,) = ax.plot(xs, ys, label=name)
        if label in diverged:
            finite = [(x, y) for x, y in zip(xs, ys) if math.isfinite(y)]
            if finite:
                ax.plot(*finite[-1], marker="x", color="red", markersize=10, mew=2)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if logx:
        ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
    if title:
        ax.set_title(title)
    if curves:
        ax.legend(fontsize="small")
    return ax.figure


def plot_history(histories: History | Mapping[str, History], title: str | None = None) -> plt.Figure:
    """Loss (left) and accuracy (right) per epoch; training dashed, held-out solid, one colour per run."""
    if isinstance(histories, History):
        histories = {"": histories}
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(10, 3.6))
    for index, (label, history) in enumerate(histories.items()):
        colour = f"C{index % 10}"
        epochs = range(1, history.epochs + 1)
        prefix = f"{label} " if label else ""
        suffix = " (diverged)" if history.diverged else ""
        loss_ax.plot(epochs, history.train_loss, "--", color=colour, label=f"{prefix}train{suffix}")
        acc_ax.plot(epochs, history.train_accuracy, "--", color=colour, label=f"{prefix}train")
        if history.heldout_loss:
            loss_ax.plot(epochs, history.heldout_loss, "-", color=colour, label=f"{prefix}held-out")
            acc_ax.plot(epochs, history.heldout_accuracy, "-", color=colour, label=f"{prefix}held-out")
        if history.diverged:
            x = history.epochs + 0.5
            loss_ax.axvline(x, color="red", linestyle=":")
            loss_ax.annotate("diverged", (x, 0.5), xycoords=("data", "axes fraction"), color="red", rotation=90)
    loss_ax.set(xlabel="epoch", ylabel="loss")
    acc_ax.set(xlabel="epoch", ylabel="accuracy")
    for ax in (loss_ax, acc_ax):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(fontsize="small")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_trajectories(
    loss: Callable[[torch.Tensor], torch.Tensor],
    trajectories: Mapping[str, torch.Tensor],
    xlim: tuple[float, float],
    ylim: tuple[float, float],
    minimum: tuple[float, float] | None = None,
    diverged: Sequence[str] = (),
    ax: plt.Axes | None = None,
    title: str | None = None,
) -> plt.Figure:
    """Paths w_0, w_1, … (each a (T, 2) tensor) over log-spaced contour lines of ``loss``.

    ``loss`` maps a (..., 2) tensor of points to the (...) tensor of their losses. A path that left
    the window or diverged is drawn up to its last point inside, with a red cross.
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4.5))
    xs = torch.linspace(*xlim, 200, dtype=torch.float64)
    ys = torch.linspace(*ylim, 200, dtype=torch.float64)
    grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1)
    values = loss(grid)
    low = max(values.min().item(), 1e-3)
    levels = torch.logspace(math.log10(low), math.log10(values.max().item()), 20).tolist()
    ax.contour(xs.numpy(), ys.numpy(), values.numpy(), levels=levels, colors="grey", linewidths=0.5)
    for label, path in trajectories.items():
        path = path.detach().double()
        inside = ((path[:, 0] >= xlim[0]) & (path[:, 0] <= xlim[1]) & (path[:, 1] >= ylim[0]) & (path[:, 1] <= ylim[1]))
        inside &= torch.isfinite(path).all(dim=1)
        stop = len(path) if bool(inside.all()) else int((~inside).nonzero()[0, 0])
        shown = path[: max(stop, 1)]
        name = f"{label} (diverged)" if label in diverged else label
        ax.plot(shown[:, 0].numpy(), shown[:, 1].numpy(), ".-", markersize=3, linewidth=1, label=name)
        if label in diverged or stop < len(path):
            ax.plot(shown[-1, 0].item(), shown[-1, 1].item(), marker="x", color="red", markersize=10, mew=2)
    if minimum is not None:
        ax.plot(*minimum, marker="*", color="black", markersize=12, linestyle="none", label="minimum")
    ax.set(xlim=xlim, ylim=ylim, xlabel="$w_1$", ylabel="$w_2$")
    if title:
        ax.set_title(title)
    ax.legend(fontsize="small", loc="upper right")
    return ax.figure
