import math

import pytest
import torch

from course_lib.data import DeviceBatches
from course_lib.training import History, accuracy, evaluate, fit


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
