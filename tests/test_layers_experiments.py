"""course_lib.layers.experiments: the small convnet's four normalizations, per-sample normalization, and the sweep."""

import pytest
import torch
from torch import nn

from course_lib.layers import BatchNorm1d, BatchNorm2d, GroupNorm, LayerNorm
from course_lib.layers.experiments import NORMS, accuracy, batch_size_sweep, small_convnet, train


def norm_layers(model):
    return [m for m in model if not isinstance(m, (nn.Conv2d, nn.Linear, nn.ReLU, nn.MaxPool2d, nn.Flatten))]


@pytest.mark.parametrize("norm, kinds", [("none", [nn.Identity] * 3), ("batch", [BatchNorm2d, BatchNorm2d, BatchNorm1d]),
                                         ("layer", [LayerNorm] * 3), ("group", [GroupNorm] * 3)])
def test_factory_puts_the_asked_normalization_after_each_conv_and_the_hidden_linear(norm, kinds):
    model = small_convnet(norm, channels=(4, 8), hidden=12, groups=2)
    layers = norm_layers(model)
    assert [type(m) for m in layers] == kinds
    weighted = [m for m in model if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert [m.weight.shape[0] for m in weighted] == [4, 8, 12, 10]
    assert [m.bias is not None for m in weighted] == [norm == "none"] * 3 + [True], "a normalization makes a bias useless"
    if norm == "layer":
        assert [m.normalized_shape for m in layers] == [(4, 28, 28), (8, 14, 14), (12,)], "per sample, all channels and positions"
    if norm == "group":
        assert [(m.num_groups, m.num_channels) for m in layers] == [(2, 4), (2, 8), (2, 12)]
    assert model(torch.randn(3, 1, 28, 28)).shape == (3, 10)


def test_factory_uses_he_initialization():
    torch.manual_seed(0)
    model = small_convnet("none", channels=(32, 64), hidden=256)
    for layer in (m for m in model if isinstance(m, (nn.Conv2d, nn.Linear))):
        fan_in = layer.weight[0].numel()
        assert abs(layer.weight.std().item() / (2 / fan_in) ** 0.5 - 1) < 0.1, "std √(2 / fan_in)"
        assert torch.equal(layer.bias, torch.zeros_like(layer.bias))


@pytest.mark.parametrize("call, message", [(lambda: small_convnet("instance"), "norm must be one of"),
                                           (lambda: small_convnet("group", channels=(6, 8)), "groups"),
                                           (lambda: small_convnet("none", channels=(8,)), "channels")])
def test_factory_rejects_bad_arguments(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def outputs_in_two_batches(norm):
    """The first sample's scores within two different batches, in train mode."""
    torch.manual_seed(0)
    model = small_convnet(norm, channels=(4, 8), hidden=8, groups=2).double().train()
    x = torch.randn(5, 1, 28, 28, dtype=torch.float64)
    mates = torch.randn(3, 1, 28, 28, dtype=torch.float64) * 3 + 1
    with torch.no_grad():
        return model(x[:3])[0], model(torch.cat([x[:1], mates]))[0]


@pytest.mark.parametrize("norm", ["none", "layer", "group"])
def test_per_sample_normalizations_give_a_sample_the_same_output_whatever_its_batch(norm):
    alone, with_others = outputs_in_two_batches(norm)
    torch.testing.assert_close(alone, with_others, rtol=0, atol=1e-12)


def test_batch_normalization_in_train_mode_depends_on_the_batch_mates():
    alone, with_others = outputs_in_two_batches("batch")
    assert (alone - with_others).abs().max() > 1e-3


def test_accuracy_in_eval_mode_and_with_batch_statistics():
    torch.manual_seed(0)
    model = small_convnet("batch", channels=(4, 8), hidden=8, groups=2)
    x, y = torch.randn(10, 1, 28, 28), torch.randint(0, 10, (10,))
    model.eval()
    expected_eval = (model(x).argmax(1) == y).float().mean().item()
    model.train()
    expected_batch = torch.cat([model(x[i:i + 4]).argmax(1) == y[i:i + 4] for i in (0, 4)]).float().mean().item()
    before = [m.running_mean.clone() for m in norm_layers(model)]
    assert accuracy(model, x, y) == pytest.approx(expected_eval)
    assert accuracy(model, x, y, batch_size=4, batch_statistics=True) == pytest.approx(expected_batch), "8 of 10: the last 2 dropped"
    assert all(torch.equal(m.running_mean, r) for m, r in zip(norm_layers(model), before)), "running estimates untouched"
    assert model.training, "the model is left in train mode"
    model.eval()
    accuracy(model, x, y)
    assert not model.training, "and in eval mode when it was in eval mode"
    with pytest.raises(ValueError, match="batch_size"):
        accuracy(model, x, y, batch_size=20, batch_statistics=True)


def test_train_takes_one_step_per_complete_batch_and_lowers_the_loss():
    torch.manual_seed(0)
    x, y = torch.randn(20, 1, 28, 28), torch.randint(0, 10, (20,))
    model = small_convnet("group", channels=(4, 8), hidden=8, groups=2)
    losses = train(model, x, y, batch_size=6, epochs=30, lr=0.05)
    assert len(losses) == 30 * 3, "20 samples in batches of 6: 3 steps, the last 2 samples dropped"
    assert sum(losses[-3:]) < 0.5 * sum(losses[:3])


def test_sweep_result_structure_and_the_linear_scaling_rule(monkeypatch):
    import course_lib.layers.experiments as experiments
    calls = []
    real_train = experiments.train
    monkeypatch.setattr(experiments, "train", lambda model, x, y, b, epochs, lr, seed: calls.append((b, lr)) or real_train(model, x, y, b, epochs, lr, seed))
    torch.manual_seed(0)
    x, y = torch.randn(16, 1, 28, 28), torch.randint(0, 10, (16,))
    results = batch_size_sweep(x, y, x[:8], y[:8], batch_sizes=(2, 8), norms=NORMS, epochs=1, lr_32=0.04)
    assert list(results) == list(NORMS) and all(list(per_b) == [2, 8] for per_b in results.values())
    for norm, per_b in results.items():
        for result in per_b.values():
            keys = {"eval", "final loss"} | ({"batch statistics"} if norm == "batch" else set())
            assert set(result) == keys and all(0 <= result[k] <= 1 for k in keys - {"final loss"})
    assert calls == [(2, 0.04 * 2 / 32), (8, 0.04 * 8 / 32)] * 4
    with pytest.raises(ValueError, match="norms"):
        batch_size_sweep(x, y, x, y, norms=("batch", "instance"))
    with pytest.raises(ValueError, match="batch sizes"):
        batch_size_sweep(x, y, x, y, batch_sizes=(1, 8))
