import math

import pytest
import torch

from course_lib.layers import Dropout, dropout

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_zeroed_fraction_mean_and_variance_match_bernoulli(p):
    torch.manual_seed(0)
    x = torch.ones(400_000, dtype=torch.float64)
    y = Dropout(p)(x)
    n = x.numel()
    zeroed = (y == 0).double().mean().item()
    assert abs(zeroed - p) < 5 * math.sqrt(p * (1 - p) / n), "fraction of dropped entries"
    kept = y[y != 0]
    assert torch.allclose(kept, torch.full_like(kept, 1 / (1 - p))), "kept entries are scaled by 1/(1 − p)"
    # E[y] = x = 1 and Var[y] = p / (1 − p) for x = 1
    assert abs(y.mean().item() - 1.0) < 5 * math.sqrt(p / (1 - p) / n)
    assert y.var().item() == pytest.approx(p / (1 - p), rel=0.02)


def test_the_expectation_holds_entry_by_entry_over_many_draws():
    torch.manual_seed(1)
    x = torch.randn(50, dtype=torch.float64)
    draws = torch.stack([dropout(x, 0.3, training=True) for _ in range(20_000)])
    assert torch.allclose(draws.mean(0), x, atol=5 * (0.3 / 0.7 / 20_000) ** 0.5 * x.abs().max().item())


def test_eval_mode_and_p_zero_are_the_identity_and_p_one_zeroes():
    x = torch.randn(8, 5, requires_grad=True)
    layer = Dropout(0.5).eval()
    assert layer(x) is x
    assert dropout(x, 0.0, training=True) is x
    y = dropout(x, 1.0, training=True)
    assert torch.equal(y, torch.zeros_like(x))
    y.sum().backward()
    assert torch.equal(x.grad, torch.zeros_like(x))


def test_train_and_eval_follow_the_module_flag():
    model = torch.nn.Sequential(torch.nn.Linear(3, 10), Dropout(), torch.nn.Linear(10, 3))
    assert model[1].training
    model.train(False)
    assert not model[1].training
    x = torch.randn(4, 3)
    assert torch.equal(model(x), model(x)), "no randomness in eval mode"


def test_gradient_is_the_mask_scaled():
    torch.manual_seed(2)
    x = torch.randn(1000, requires_grad=True)
    y = dropout(x, 0.25, training=True)
    y.sum().backward()
    expected = (y.detach() != 0).float() / 0.75
    assert torch.equal(x.grad, expected)


def test_seeding_repeats_the_mask_and_matches_torch_semantics():
    x = torch.ones(1000)
    torch.manual_seed(3)
    first = Dropout(0.5)(x)
    torch.manual_seed(3)
    second = Dropout(0.5)(x)
    assert torch.equal(first, second)
    generator = torch.Generator().manual_seed(5)
    a = dropout(x, 0.5, True, generator=generator)
    b = dropout(x, 0.5, True, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16])
def test_the_mask_lives_on_the_inputs_device_and_dtype(device, dtype):
    x = torch.ones(64, 64, device=device, dtype=dtype)
    y = Dropout(0.5)(x)
    assert y.device == x.device and y.dtype == dtype
    assert set(y.unique().tolist()) <= {0.0, 2.0}


@pytest.mark.parametrize("p", [-0.1, 1.5, float("nan"), "half", True])
def test_p_outside_the_unit_interval_is_rejected(p):
    with pytest.raises(ValueError, match=r"p must be a number in \[0, 1\]"):
        Dropout(p)
    if isinstance(p, float):
        with pytest.raises(ValueError, match="p must be in"):
            dropout(torch.ones(2), p, training=True)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16])
def test_the_mask_keeps_exactly_the_entries_whose_uniform_is_at_least_p(dtype):
    """m = [u ≥ p] for u = torch.rand(x.shape) in x's dtype from the given generator: reproducible by hand, and in
    float16, where u = p happens (u lies on a grid of 2⁻¹¹), such entries are kept, so P(m = 1) is exactly 1 − p."""
    x = torch.randn(65_536, dtype=torch.float64).to(dtype)
    y = dropout(x, 0.5, training=True, generator=torch.Generator().manual_seed(11))
    uniform = torch.rand(x.shape, generator=torch.Generator().manual_seed(11), dtype=dtype)
    assert dtype == torch.float64 or (uniform == 0.5).any(), "the float16 grid has ties with p"
    assert torch.equal(y, x * (uniform >= 0.5).to(dtype) / 0.5)


def test_p_zero_and_p_one_are_valid_for_the_module():
    x = torch.randn(4, 5)
    assert Dropout(0)(x) is x and Dropout(0.0).p == 0.0
    assert torch.equal(Dropout(1)(x), torch.zeros_like(x)) and Dropout(1).p == 1.0


def test_the_mask_is_drawn_on_the_inputs_device_not_the_default_one():
    """The docstring's promise that matters on a GPU: the mask lives where x lives. Under another default device (the
    meta device, there on every machine, stands in for a GPU) a CPU input still gets the same CPU mask."""
    x = torch.randn(4, 5)
    expected = dropout(x, 0.5, training=True, generator=torch.Generator().manual_seed(0))
    with torch.device("meta"):
        dropped = dropout(x, 0.5, training=True, generator=torch.Generator().manual_seed(0))
    assert dropped.device.type == "cpu"
    assert torch.equal(dropped, expected)
