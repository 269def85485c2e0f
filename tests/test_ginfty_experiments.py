"""The paper's experiments in quick mode, with the assertions of the reference sheet (§8.1).

These are the slowest tests of the suite (about a minute each on two CPU cores): they train the full
quick versions, all nine XOR tasks and the narrowed MNIST network.
"""

import math

import pytest
import torch

from course_lib.data import DATA_ENV
from course_lib.ginfty_experiments import finite_and_bounded, run_mnist, run_xor, spearman


def test_xor_quick_reproduces_the_papers_ordering():
    runs = [run_xor(n, steps=2000) for n in range(9)]
    for run in runs:
        threshold = 0.98 if run["n_active"] == 8 else 0.99
        assert max(run["val_accuracy"]) >= threshold, f"n = {run['n_active']} should be learned within 2000 steps"
        assert run["capacity"] == 5, "w stays below 5: no growth, as in the reference's runs"
    final_w = [run["final_w"] for run in runs]
    assert finite_and_bounded(final_w)
    assert spearman(list(range(9)), final_w) >= 0.8, f"harder tasks should end deeper: {final_w}"
    assert sum(final_w[6:]) / 3 - sum(final_w[:3]) / 3 >= 0.5, f"w spread between easy and hard tasks: {final_w}"


def test_spearman_on_known_values():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)


@pytest.mark.skipif(not __import__("os").environ.get(DATA_ENV) and not __import__("pathlib").Path(
    __file__).resolve().parent.parent.joinpath("data", "MNIST", "raw").exists(), reason="MNIST files are not on this machine")
def test_mnist_quick_trains_and_moves_the_depths_as_the_reference():
    run = run_mnist(widths=(8, 16, 64), epochs=30, batch_size=64, train_size=4000, validation_size=1000, test_size=1000)
    assert run["validation_size"] == 1000 and run["train_size"] == 4000
    assert run["test_at_best"] >= 0.95 and run["final_test"] >= 0.95, "the narrow network reaches 95 % on held-out digits"
    w = run["final_w"]
    assert all(math.isfinite(v) for v in w.values())
    assert w["cnn0"] < 1.0 < w["cnn1"], f"cnn0 shrinks, cnn1 grows, as in the reference's early epochs: {w}"
    assert w["fc0"] > 1.0, f"fc0 grows: {w}"
