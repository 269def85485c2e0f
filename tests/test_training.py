import math
import threading
import time

import pytest
import torch
from tqdm.auto import tqdm

from course_lib.data import DeviceBatches
from course_lib.training import History, accuracy, evaluate, fit, set_trainable


@pytest.fixture(autouse=True)
def own_progress_bar_lock():
    """Each test draws its bars under a fresh lock of its own. tqdm's default lock is shared with forked processes and
    stays held when drawing a bar raises, which would block every bar drawn after it."""
    shared = tqdm.get_lock()
    tqdm.set_lock(threading.RLock())
    yield
    tqdm.set_lock(shared)


def blobs(n=400, seed=0):
    """Two well separated Gaussian blobs in 2-D: a linear model reaches ~100 % accuracy."""
    generator = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=generator)
    x = torch.randn(n, 2, generator=generator) * 0.5 + (y.float().unsqueeze(1) * 2 - 1) * 2
    return x, y


def test_accuracy_multiclass_and_binary():
    scores = torch.tensor([[2.0, 1.0, 0.0], [0.0, 0.1, 3.0], [1.0, 2.0, 0.0], [0.0, 0.0, -1.0]])
    assert accuracy(scores, torch.tensor([0, 2, 0, 1])).item() == pytest.approx(0.5)
    logits = torch.tensor([[1.5], [-0.2], [0.3]])
    assert accuracy(logits, torch.tensor([[1.0], [0.0], [0.0]])).item() == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="shape"):
        accuracy(logits, torch.tensor([1.0, 0.0, 0.0]))


def test_fit_learns_and_records_a_history():
    torch.manual_seed(0)
    x, y = blobs()
    model = torch.nn.Linear(2, 2)
    train = DeviceBatches(x[:300], y[:300], batch_size=32, generator=torch.Generator().manual_seed(0))
    heldout = DeviceBatches(x[300:], y[300:], batch_size=100, shuffle=False)
    history = fit(model, torch.optim.SGD(model.parameters(), lr=0.1), torch.nn.functional.cross_entropy,
                  train, epochs=5, heldout_batches=heldout, progress=False)
    assert history.epochs == 5 and not history.diverged
    assert len(history.heldout_accuracy) == 5 and len(history.step_loss) == 5 * len(train)
    assert history.train_loss[-1] < history.train_loss[0]
    assert history.heldout_accuracy[-1] > 0.95
    # the recorded held-out numbers are exactly what evaluate() measures on the final model
    loss, acc = evaluate(model, heldout, torch.nn.functional.cross_entropy)
    assert loss == pytest.approx(history.heldout_loss[-1]) and acc == pytest.approx(history.heldout_accuracy[-1])
    assert "5 epochs" in history.summary() and "held-out" in repr(history)


def test_fit_epoch_loss_is_the_sample_weighted_mean_of_step_losses():
    x, y = blobs(n=70)
    model = torch.nn.Linear(2, 2)
    batches = DeviceBatches(x, y, batch_size=32, shuffle=False)  # sizes 32, 32, 6
    history = fit(model, torch.optim.SGD(model.parameters(), lr=0.0), torch.nn.functional.cross_entropy,
                  batches, epochs=1, progress=False)
    expected = (32 * history.step_loss[0] + 32 * history.step_loss[1] + 6 * history.step_loss[2]) / 70
    assert history.train_loss[0] == pytest.approx(expected)


def test_fit_stops_cleanly_when_the_loss_diverges():
    torch.manual_seed(0)
    x = torch.randn(256, 10)
    y = x @ torch.randn(10, 1) * 100
    model = torch.nn.Linear(10, 1)
    history = fit(model, torch.optim.SGD(model.parameters(), lr=10.0), torch.nn.functional.mse_loss,
                  DeviceBatches(x, y, batch_size=16), epochs=20, metric=None, progress=False)
    assert history.diverged
    assert "epoch 1" in history.stop_reason and history.epochs == 0
    assert not math.isfinite(history.step_loss[-1])
    assert "stopped" in history.summary()


def test_evaluate_restores_the_mode_and_uses_no_gradient():
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Dropout(0.5))
    x, y = blobs(n=64)
    model.train()
    evaluate(model, [(x, y)], torch.nn.functional.cross_entropy)
    assert model.training
    model.eval()
    evaluate(model, [(x, y)], torch.nn.functional.cross_entropy)
    assert not model.training
    assert all(p.grad is None for p in model.parameters())
    with pytest.raises(ValueError, match="empty"):
        evaluate(model, [], torch.nn.functional.cross_entropy)


def test_evaluate_is_the_per_sample_mean_in_eval_mode_over_uneven_batches():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.BatchNorm1d(8), torch.nn.Dropout(0.5), torch.nn.Linear(8, 2))
    model(torch.randn(32, 2) * 3 + 1)  # running statistics unlike any batch below
    x, y = blobs(n=70)
    batches = [(x[:64], y[:64]), (x[64:], y[64:])]  # 64 and 6 samples
    model.train()
    loss, accuracy_value = evaluate(model, batches, torch.nn.functional.cross_entropy)
    model.eval()
    with torch.no_grad():
        output = model(x)
    model.train()
    assert loss == pytest.approx(torch.nn.functional.cross_entropy(output, y).item(), rel=1e-6), \
        "the mean over the 70 samples, computed in eval mode (running statistics, no dropout)"
    assert accuracy_value == pytest.approx((output.argmax(1) == y).double().mean().item(), rel=1e-12)


def test_fit_rejects_a_negative_epoch_count():
    model = torch.nn.Linear(2, 2)
    with pytest.raises(ValueError, match="epochs"):
        fit(model, torch.optim.SGD(model.parameters(), lr=0.1), torch.nn.functional.cross_entropy, [], epochs=-1)


def test_history_summary_of_an_empty_run():
    assert History().summary().startswith("0 epochs")


def test_set_trainable_freezes_and_unfreezes_and_a_frozen_layer_does_not_move():
    from course_lib.training import set_trainable

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(2, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    assert set_trainable(model[0], False) == 2 * 4 + 4
    assert set_trainable(model[0], False) == 0, "already frozen"
    before = model[0].weight.detach().clone()
    x, y = blobs(n=64)
    fit(model, torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9), torch.nn.functional.cross_entropy,
        [(x, y)], epochs=3, progress=False)
    assert torch.equal(model[0].weight, before) and model[0].weight.grad is None
    assert set_trainable(model, True) == 12
    fit(model, torch.optim.SGD(model.parameters(), lr=0.5), torch.nn.functional.cross_entropy, [(x, y)], epochs=1, progress=False)
    assert not torch.equal(model[0].weight, before)


def test_before_epoch_runs_a_schedule_at_every_epoch_start():
    model = torch.nn.Linear(2, 2)
    seen = []
    x, y = blobs(n=32)
    fit(model, torch.optim.SGD(model.parameters(), lr=0.1), torch.nn.functional.cross_entropy, [(x, y)], epochs=3,
        progress=False, before_epoch=seen.append)
    assert seen == [0, 1, 2]


def test_accuracy_shape_errors_say_which_shapes_were_expected():
    scores = torch.zeros(4, 3)
    with pytest.raises(ValueError, match=r"^target must have shape \(4,\) for output \(4, 3\)$"):
        accuracy(scores, torch.zeros(4, 1, dtype=torch.long))
    with pytest.raises(ValueError, match=r"^binary accuracy needs output and target of one shape, got \(3, 1\) and \(3,\)$"):
        accuracy(torch.zeros(3, 1), torch.zeros(3))


def test_binary_accuracy_predicts_positive_only_above_logit_zero_and_target_one_half():
    """A logit of exactly 0 (probability 1/2) predicts class 0; a target counts as class 1 only above 1/2."""
    assert accuracy(torch.tensor([0.0]), torch.tensor([0.0])).item() == 1.0
    assert accuracy(torch.tensor([0.0]), torch.tensor([1.0])).item() == 0.0
    assert accuracy(torch.tensor([1.0]), torch.tensor([0.5])).item() == 0.0
    assert accuracy(torch.tensor([-1.0]), torch.tensor([0.5])).item() == 1.0


def test_history_summary_shows_the_last_epoch_in_full():
    history = History(train_loss=[0.9, 0.7, 0.5], train_accuracy=[0.6, 0.7, 0.8],
                      heldout_loss=[1.0, 0.8, 0.6], heldout_accuracy=[0.55, 0.65, 0.75], seconds=12.34)
    expected = "3 epochs, train loss 0.5000 accuracy 0.800, held-out loss 0.6000 accuracy 0.750, 12.3 s"
    assert history.summary() == expected
    assert repr(history) == f"History({expected})"
    history.diverged, history.stop_reason = True, "the loss became nan at epoch 4, step 2"
    assert history.summary() == expected + " — stopped: the loss became nan at epoch 4, step 2"


def test_history_summary_says_epoch_in_the_singular_only_for_one():
    assert History().summary() == "0 epochs, 0.0 s"
    one = History(train_loss=[0.25], train_accuracy=[1.0])
    assert one.summary() == "1 epoch, train loss 0.2500 accuracy 1.000, 0.0 s"
    two = History(train_loss=[0.5, 0.25], train_accuracy=[0.5, 1.0])
    assert two.summary().startswith("2 epochs, ")


def test_evaluate_runs_a_model_without_parameters_on_the_cpu():
    x, y = blobs(n=8)
    loss, accuracy_value = evaluate(torch.nn.Identity(), [(x, y)], torch.nn.functional.cross_entropy)
    assert loss == pytest.approx(torch.nn.functional.cross_entropy(x, y).item())
    assert accuracy_value == pytest.approx(accuracy(x, y).item())


def test_fit_for_zero_epochs_returns_an_empty_history_and_leaves_the_model_alone():
    model = torch.nn.Linear(2, 2)
    before = model.weight.detach().clone()
    x, y = blobs(n=8)
    history = fit(model, torch.optim.SGD(model.parameters(), lr=0.1), torch.nn.functional.cross_entropy, [(x, y)],
                  epochs=0, progress=False)
    assert history.epochs == 0 and history.step_loss == [] and not history.diverged
    assert torch.equal(model.weight, before)


def test_fit_trains_on_a_single_sample_and_rejects_empty_batches():
    model = torch.nn.Linear(2, 2)
    x, y = blobs(n=1)
    history = fit(model, torch.optim.SGD(model.parameters(), lr=0.1), torch.nn.functional.cross_entropy, [(x, y)],
                  epochs=1, progress=False)
    assert history.epochs == 1
    with pytest.raises(ValueError, match=r"^train_batches is empty: there is nothing to train on$"):
        fit(model, torch.optim.SGD(model.parameters(), lr=0.1), torch.nn.functional.cross_entropy, [], epochs=1,
            progress=False)


def test_fit_epoch_metric_is_the_sample_weighted_mean_summed_in_float64():
    """With the weights fixed (lr = 0), the epoch's metric is Σ_b n_b·m_b / N over batches of uneven size, exact in float64."""
    torch.manual_seed(0)
    x = torch.randn(70, 2)
    y = torch.randn(70, 1)
    model = torch.nn.Linear(2, 1)
    batches = [(x[:32], y[:32]), (x[32:64], y[32:64]), (x[64:], y[64:])]  # 32, 32 and 6 samples

    def squared_error(output, target):
        return (output.double() - target.double()).pow(2).mean()

    history = fit(model, torch.optim.SGD(model.parameters(), lr=0.0), torch.nn.functional.mse_loss, batches,
                  epochs=2, metric=squared_error, progress=False)
    with torch.no_grad():
        expected = sum(squared_error(model(xb), yb).item() * len(xb) for xb, yb in batches) / 70
    assert history.train_accuracy == [pytest.approx(expected, rel=1e-13, abs=0)] * 2
    without = fit(model, torch.optim.SGD(model.parameters(), lr=0.0), torch.nn.functional.mse_loss, batches,
                  epochs=1, metric=None, progress=False)
    assert math.isnan(without.train_accuracy[0]) and without.train_loss[0] == pytest.approx(history.train_loss[0])


def test_fit_reports_the_epoch_and_step_where_the_loss_diverged(capsys):
    """A schedule puts a NaN target into the second batch at the start of epoch 2: training stops at epoch 2, step 2."""
    x, y = blobs(n=6)
    targets = y.float().unsqueeze(1)
    batches = [(x[:3], targets[:3]), (x[3:], targets[3:])]
    model = torch.nn.Linear(2, 1)

    def corrupt_a_target(epoch):
        if epoch == 1:
            targets[4] = math.nan

    history = fit(model, torch.optim.SGD(model.parameters(), lr=0.01), torch.nn.functional.mse_loss, batches, epochs=3,
                  metric=None, description="slider", before_epoch=corrupt_a_target)
    assert history.diverged and history.epochs == 1 and len(history.step_loss) == 4
    assert history.stop_reason == "the loss became nan at epoch 2, step 2"
    assert capsys.readouterr().out == "slider: the loss became nan at epoch 2, step 2; training stopped.\n"
    fit(model, torch.optim.SGD(model.parameters(), lr=0.01), torch.nn.functional.mse_loss, batches, epochs=1,
        metric=None, progress=False)
    assert capsys.readouterr() == ("", ""), "progress=False prints nothing, not even the divergence"


def _final_bar(stderr):
    """The last state of a tqdm bar written to a non-terminal: the text after the last carriage return."""
    return [part for part in stderr.split("\r") if part.strip()][-1].strip()


def test_fit_progress_bar_is_on_by_default_and_shows_epochs_loss_and_heldout_accuracy(capsys):
    x, y = blobs(n=64)
    model = torch.nn.Linear(2, 2)
    history = fit(model, torch.optim.SGD(model.parameters(), lr=0.1), torch.nn.functional.cross_entropy, [(x, y)],
                  epochs=3, heldout_batches=[(x, y)])
    captured = capsys.readouterr()
    assert captured.out == ""
    bar = _final_bar(captured.err)
    assert bar.startswith("training: 100%") and "3/3 [" in bar and ("epoch/s" in bar or "s/epoch" in bar)
    assert bar.endswith(f"loss={history.train_loss[-1]:.4f}, held-out acc={history.heldout_accuracy[-1]:.3f}]")
    assert captured.err.endswith("\n"), "the finished bar stays on screen"

    fit(model, torch.optim.SGD(model.parameters(), lr=0.1), torch.nn.functional.cross_entropy, [(x, y)],
        epochs=2, description="frozen", progress=True)
    assert _final_bar(capsys.readouterr().err).startswith("frozen: 100%")
    fit(model, torch.optim.SGD(model.parameters(), lr=0.1), torch.nn.functional.cross_entropy, [(x, y)],
        epochs=2, progress=False)
    assert capsys.readouterr() == ("", "")


def test_fit_progress_bar_stays_on_screen_inside_an_outer_bar(capsys):
    """In a sweep with a bar of its own, each run's finished bar is kept, not cleared as tqdm clears nested bars by default."""
    x, y = blobs(n=64)
    model = torch.nn.Linear(2, 2)
    sweep = tqdm(range(2), desc="learning rates")
    try:
        fit(model, torch.optim.SGD(model.parameters(), lr=0.1), torch.nn.functional.cross_entropy, [(x, y)], epochs=3)
        stderr = capsys.readouterr().err
    finally:
        sweep.close()
    assert _final_bar(stderr).startswith("training: 100%") and "3/3 [" in _final_bar(stderr)


def test_fit_history_seconds_is_the_time_fit_took():
    x, y = blobs(n=8)
    model = torch.nn.Linear(2, 2)
    start = time.perf_counter()
    history = fit(model, torch.optim.SGD(model.parameters(), lr=0.1), torch.nn.functional.cross_entropy, [(x, y)],
                  epochs=2, progress=False)
    assert 0 < history.seconds <= time.perf_counter() - start


def test_fit_stops_zeroing_a_parameter_frozen_by_a_schedule_so_momentum_cannot_move_it():
    """Gradients are reset to None, not to zero: a parameter frozen in epoch 1 has no gradient and SGD skips it."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(2, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    x, y = blobs(n=64)
    frozen = {}

    def freeze_first_layer_after_epoch_0(epoch):
        if epoch == 1:
            set_trainable(model[0], False)
            frozen["weight"] = model[0].weight.detach().clone()

    fit(model, torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9), torch.nn.functional.cross_entropy,
        [(x, y)], epochs=3, progress=False, before_epoch=freeze_first_layer_after_epoch_0)
    assert torch.equal(model[0].weight, frozen["weight"])


class MoveRecorder(torch.Tensor):
    """A tensor that notes the device of every `.to(...)` call made on it."""

    moves: list = []

    def to(self, *args, **kwargs):
        MoveRecorder.moves.append(args[0] if args else kwargs.get("device"))
        return super().to(*args, **kwargs)


def test_fit_moves_every_batch_to_the_models_device():
    x, y = blobs(n=16)
    batches = [(x[:8].as_subclass(MoveRecorder), y[:8].as_subclass(MoveRecorder)),
               (x[8:].as_subclass(MoveRecorder), y[8:].as_subclass(MoveRecorder))]
    model = torch.nn.Linear(2, 2)
    MoveRecorder.moves = []
    fit(model, torch.optim.SGD(model.parameters(), lr=0.1), torch.nn.functional.cross_entropy, batches, epochs=2,
        progress=False)
    assert MoveRecorder.moves == [torch.device("cpu")] * (2 * 2 * 2), "x and y of 2 batches in 2 epochs"


def test_fit_trains_and_evaluates_on_the_device_given_rather_than_the_models():
    """device= wins over the model's device (that of its first parameter, here one on the meta device that forward does not use)."""

    class PartlyElsewhere(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.unused = torch.nn.Parameter(torch.zeros(1, device="meta"))
            self.linear = torch.nn.Linear(2, 2)

        def forward(self, x):
            return self.linear(x)

    torch.manual_seed(0)
    model = PartlyElsewhere()
    x, y = blobs(n=32)
    history = fit(model, torch.optim.SGD(model.linear.parameters(), lr=0.1), torch.nn.functional.cross_entropy,
                  [(x, y)], epochs=2, heldout_batches=[(x, y)], progress=False, device="cpu")
    assert history.epochs == 2 and history.heldout_loss[-1] == pytest.approx(
        evaluate(model, [(x, y)], torch.nn.functional.cross_entropy, device="cpu")[0])


def test_fit_keeps_its_sums_on_the_training_device_whatever_the_default_device():
    """Under another default device (here meta, where nothing can be read back), fit on the CPU still works."""
    torch.manual_seed(0)
    model = torch.nn.Linear(2, 2)
    x, y = blobs(n=32)
    with torch.device("meta"):
        history = fit(model, torch.optim.SGD(model.parameters(), lr=0.1), torch.nn.functional.cross_entropy, [(x, y)],
                      epochs=2, heldout_batches=[(x, y)], progress=False)
    assert history.epochs == 2 and 0 <= history.train_accuracy[-1] <= 1
