import math

import matplotlib

matplotlib.use("Agg")

import pytest

import torch

from course_lib.plots import plot_curves, plot_history, plot_trajectories
from course_lib.training import History


def test_plot_history_draws_train_and_heldout_and_marks_divergence():
    good = History(train_loss=[1.0, 0.5], train_accuracy=[0.6, 0.8], heldout_loss=[1.1, 0.6], heldout_accuracy=[0.5, 0.7])
    bad = History(train_loss=[2.0], train_accuracy=[0.1], diverged=True, stop_reason="the loss became nan")
    fig = plot_history({"lr 0.1": good, "lr 10": bad})
    loss_ax, acc_ax = fig.axes
    labels = [line.get_label() for line in loss_ax.get_lines()]
    assert "lr 0.1 train" in labels and "lr 0.1 held-out" in labels and "lr 10 train (diverged)" in labels
    assert any(text.get_text() == "diverged" for text in loss_ax.texts)
    assert list(acc_ax.get_lines()[1].get_ydata()) == [0.5, 0.7]


def test_plot_curves_marks_the_last_finite_point_of_a_diverged_curve():
    fig = plot_curves({"a": ([1, 2, 3], [1.0, 0.5, 0.2]), "b": ([1, 2, 3], [1.0, 5.0, math.nan])},
                      xlabel="samples", ylabel="loss", logy=True, diverged=["b"])
    ax = fig.axes[0]
    crosses = [line for line in ax.get_lines() if line.get_marker() == "x"]
    assert len(crosses) == 1 and list(crosses[0].get_xydata()[0]) == [2.0, 5.0]
    assert ax.get_yscale() == "log"
    with pytest.raises(ValueError, match="x values"):
        plot_curves({"c": ([1, 2], [1.0])}, "x", "y")


def test_plot_trajectories_cuts_paths_that_leave_the_window():
    def bowl(w):
        return (w ** 2).sum(dim=-1)

    inside = torch.tensor([[1.0, 1.0], [0.5, 0.5], [0.0, 0.0]])
    escaping = torch.tensor([[1.0, -1.0], [3.0, -3.0], [float("nan"), 0.0]])
    fig = plot_trajectories(bowl, {"calm": inside, "wild": escaping}, xlim=(-2, 2), ylim=(-2, 2),
                            minimum=(0.0, 0.0), diverged=["wild"])
    ax = fig.axes[0]
    paths = {line.get_label(): line for line in ax.get_lines()}
    assert len(paths["calm"].get_xdata()) == 3
    assert list(paths["wild (diverged)"].get_xdata()) == [1.0]  # only the point inside the window
    assert any(line.get_marker() == "x" for line in ax.get_lines())
    assert "minimum" in paths
