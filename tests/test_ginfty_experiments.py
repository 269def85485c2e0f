"""The paper's experiments in quick mode, with the assertions of the reference sheet (§8.1).

These are the slowest tests of the suite (about a minute each on two CPU cores): they train the full
quick versions, all nine XOR tasks and the narrowed MNIST network.
"""

import math

import pytest
import torch

from course_lib.data import DATA_ENV
from course_lib.ginfty.experiments import finite_and_bounded, run_mnist, run_xor, spearman


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


XOR_SMALL = dict(n_active=2, batch_size=100, validate_every=50, validation_size=500)


def same_run(a: dict, b: dict) -> bool:
    keys = ("steps", "w", "val_accuracy", "val_loss", "final_w", "capacity", "first_perfect_step")
    return all(a[k] == b[k] for k in keys) and all(torch.equal(p, q) for p, q in zip(a["model"].state_dict().values(),
                                                                                        b["model"].state_dict().values()))


def test_an_extended_xor_run_resumes_from_its_checkpoint_exactly(tmp_path, capsys):
    straight = run_xor(steps=300, **XOR_SMALL)
    path = tmp_path / "xor.pt"
    first = run_xor(steps=200, checkpoint=path, **XOR_SMALL)
    assert path.exists() and first["steps"][-1] == 200
    resumed = run_xor(steps=300, checkpoint=path, **XOR_SMALL)
    assert "resumed from" in capsys.readouterr().out
    assert same_run(straight, resumed)


def test_the_stop_button_saves_a_checkpoint_and_the_run_resumes_exactly(tmp_path, monkeypatch):
    import signal
    import threading

    import course_lib.ginfty.experiments as experiments

    if threading.current_thread() is not threading.main_thread():
        pytest.fail("this test must run in the main thread, where SIGINT is delivered")
    handler_before = signal.getsignal(signal.SIGINT)  # Python's default, or SIG_IGN in a job started in the background
    straight = run_xor(steps=300, **XOR_SMALL)
    path = tmp_path / "xor.pt"
    real_grow_all, calls = experiments.grow_all, []

    def grow_all_then_press_stop(model, optimizer):
        calls.append(1)
        if len(calls) == 137:
            signal.raise_signal(signal.SIGINT)  # what the notebook's stop button sends the kernel
        return real_grow_all(model, optimizer)

    monkeypatch.setattr(experiments, "grow_all", grow_all_then_press_stop)
    with pytest.raises(KeyboardInterrupt, match="stopped after step 137; run it again to resume"):
        run_xor(steps=300, checkpoint=path, **XOR_SMALL)
    monkeypatch.setattr(experiments, "grow_all", real_grow_all)
    assert signal.getsignal(signal.SIGINT) is handler_before  # the stop button works again, as it did before
    assert same_run(straight, run_xor(steps=300, checkpoint=path, **XOR_SMALL))


def test_a_checkpoint_resumes_only_its_own_run(tmp_path):
    path = tmp_path / "xor.pt"
    run_xor(steps=100, checkpoint=path, **XOR_SMALL)
    with pytest.raises(ValueError, match="belongs to another run.*n_active: saved 2, asked 3"):
        run_xor(steps=200, checkpoint=path, **{**XOR_SMALL, "n_active": 3})
    with pytest.raises(ValueError, match="already 100 steps into its run"):
        run_xor(steps=50, checkpoint=path, **XOR_SMALL)


def test_an_mnist_run_resumes_after_its_last_epoch_exactly(tmp_path, monkeypatch):
    small = dict(widths=(4, 8, 16), batch_size=128, train_size=600, validation_size=200, test_size=200)
    straight = run_mnist(epochs=3, **small)
    path = tmp_path / "mnist.pt"
    run_mnist(epochs=2, checkpoint=path, **small)
    resumed = run_mnist(epochs=3, checkpoint=path, **small)
    assert straight["w"] == resumed["w"] and straight["test_accuracy"] == resumed["test_accuracy"]
    assert all(torch.equal(p, q) for p, q in zip(straight["model"].state_dict().values(), resumed["model"].state_dict().values()))


def test_progress_prints_the_expected_duration_before_the_bulk_of_the_run(capsys):
    run_xor(steps=120, progress=True, **XOR_SMALL)
    out = capsys.readouterr().out
    assert "XOR n=2: 120 steps expected to take" in out and "(from the first 50)" in out  # one validation period


def test_the_shipped_reference_logs_hold_the_reference_sheets_check_values():
    from course_lib.ginfty.experiments import shipped_log

    xor = shipped_log("xor")
    assert xor["final_w"]["8"] == 4.40607 and xor["tasks"]["0"]["w"][xor["step"].index(2_000)] == 1.78468
    assert len(xor["tasks"]) == 9 and all(len(t["w"]) == len(xor["step"]) for t in xor["tasks"].values())
    assert xor["step"][-1] == 99_900
    mnist = shipped_log("mnist")
    assert mnist["final_w"]["cnn1"] == 1.92846
    assert mnist["best_test_accuracy"] == 0.9955 and mnist["final_test_accuracy"] == 0.9921
    assert len(mnist["epoch"]) == len(mnist["test_accuracy"]) == len(mnist["w"]["fc0"]) and mnist["epoch"][-1] == 4_999
    with pytest.raises(ValueError, match="experiment must be 'xor' or 'mnist'"):
        shipped_log("cifar")
    with pytest.raises(ValueError, match="source must be one of"):
        shipped_log("xor", "mine")
