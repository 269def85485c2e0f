"""course_lib.layers' LayerNorm and GroupNorm against torch.nn's, in float64 to 1e-12, forward and backward."""

import pytest
import torch

from course_lib.layers import GroupNorm, LayerNorm
from messages import exactly

TOLERANCE = dict(rtol=0.0, atol=1e-12)


def compare(ours, theirs, x):
    """Same output, same gradients for the input and every parameter, after the same random upstream gradient."""
    theirs.load_state_dict(ours.state_dict())
    x_ours, x_theirs = x.clone().requires_grad_(), x.clone().requires_grad_()
    y_ours, y_theirs = ours(x_ours), theirs(x_theirs)
    torch.testing.assert_close(y_ours, y_theirs, **TOLERANCE)
    upstream = torch.randn_like(y_ours)
    (y_ours * upstream).sum().backward()
    (y_theirs * upstream).sum().backward()
    torch.testing.assert_close(x_ours.grad, x_theirs.grad, **TOLERANCE)
    for (name, p), q in zip(ours.named_parameters(), theirs.parameters()):
        torch.testing.assert_close(p.grad, q.grad, **TOLERANCE, msg=lambda m: f"{name}: {m}")


def randomize(module):
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn_like(p))
    return module


@pytest.mark.parametrize("shape, normalized_shape", [((4, 10), 10), ((3, 5, 7), (7,)), ((2, 3, 4, 5), (3, 4, 5)),
                                                     ((1, 6), (6,)), ((2, 3, 4, 5), (4, 5))])
@pytest.mark.parametrize("affine", [dict(), dict(elementwise_affine=False), dict(bias=False)], ids=["affine", "none", "no-bias"])
def test_layernorm_matches_torch(shape, normalized_shape, affine):
    torch.manual_seed(0)
    ours = randomize(LayerNorm(normalized_shape, eps=1e-5, dtype=torch.float64, **affine))
    theirs = torch.nn.LayerNorm(normalized_shape, eps=1e-5, dtype=torch.float64, **affine)
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    compare(ours, theirs, 3.0 * torch.randn(shape, dtype=torch.float64) + 2.0)


@pytest.mark.parametrize("shape, groups", [((4, 6, 5, 5), 3), ((2, 6, 7), 2), ((3, 4), 4), ((2, 8, 3, 3), 1), ((1, 4, 2, 2), 2)])
@pytest.mark.parametrize("affine", [True, False], ids=["affine", "none"])
def test_groupnorm_matches_torch(shape, groups, affine):
    torch.manual_seed(1)
    ours = randomize(GroupNorm(groups, shape[1], eps=1e-5, affine=affine, dtype=torch.float64))
    theirs = torch.nn.GroupNorm(groups, shape[1], eps=1e-5, affine=affine, dtype=torch.float64)
    compare(ours, theirs, 3.0 * torch.randn(shape, dtype=torch.float64) - 1.0)


@pytest.mark.parametrize("module, shape", [(LayerNorm((3, 4), dtype=torch.float64), (2, 3, 4)),
                                           (GroupNorm(2, 4, dtype=torch.float64), (3, 4, 5))], ids=["LayerNorm", "GroupNorm"])
def test_gradcheck_for_the_input_and_the_parameters(module, shape):
    torch.manual_seed(2)
    randomize(module)
    x = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    w, b = (p.detach().clone().requires_grad_() for p in (module.weight, module.bias))
    call = lambda x, w, b: torch.func.functional_call(module, {"weight": w, "bias": b}, (x,))  # noqa: E731
    assert torch.autograd.gradcheck(call, (x, w, b))


def test_a_sample_is_normalized_alone_the_same_in_train_and_eval_mode_and_batch_size_one_works():
    torch.manual_seed(3)
    x = torch.randn(5, 6, 4, 4, dtype=torch.float64)
    for module in (randomize(LayerNorm((6, 4, 4), dtype=torch.float64)), randomize(GroupNorm(3, 6, dtype=torch.float64))):
        whole = module.train()(x)
        torch.testing.assert_close(module(x[2:3]), whole[2:3], **TOLERANCE)  # the other samples play no part
        torch.testing.assert_close(module.eval()(x), whole, **TOLERANCE)  # no running estimates, one function
        assert not list(module.buffers())


def test_the_normalized_values_have_mean_zero_and_variance_one_per_sample_and_group():
    x = 5.0 * torch.randn(3, 6, 7, dtype=torch.float64) + 4.0
    y = GroupNorm(3, 6, eps=0.0, affine=False, dtype=torch.float64)(x).reshape(3, 3, 14)
    torch.testing.assert_close(y.mean(-1), torch.zeros(3, 3, dtype=torch.float64), **TOLERANCE)
    torch.testing.assert_close(y.var(-1, unbiased=False), torch.ones(3, 3, dtype=torch.float64), rtol=0, atol=1e-12)
    z = LayerNorm(7, eps=0.0, elementwise_affine=False, dtype=torch.float64)(x)
    torch.testing.assert_close(z.mean(-1), torch.zeros(3, 6, dtype=torch.float64), **TOLERANCE)


def test_the_defaults_and_parameter_shapes_are_torchs():
    assert (LayerNorm(8).eps, GroupNorm(2, 4).eps) == (torch.nn.LayerNorm(8).eps, torch.nn.GroupNorm(2, 4).eps) == (1e-5, 1e-5)
    assert LayerNorm((3, 4)).weight.shape == torch.nn.LayerNorm((3, 4)).weight.shape == (3, 4)
    assert LayerNorm(4, bias=False).bias is None and LayerNorm(4, elementwise_affine=False).weight is None
    assert GroupNorm(2, 6).weight.shape == (6,) and GroupNorm(2, 6, affine=False).bias is None
    torch.nn.GroupNorm(2, 6).load_state_dict(GroupNorm(2, 6).state_dict())
    LayerNorm((3, 4)).load_state_dict(torch.nn.LayerNorm((3, 4)).state_dict())


@pytest.mark.parametrize("make, message", [
    (lambda: GroupNorm(4, 6), "num_channels (6) must be divisible by num_groups (4)"),
    (lambda: GroupNorm(0, 6), "num_groups must be a positive int, got 0"),
    (lambda: GroupNorm(2, 6.0), "num_channels must be a positive int, got 6.0"),
    (lambda: GroupNorm(2, 6, eps=-1e-5), "eps must be a number ≥ 0, got -1e-05"),
    (lambda: LayerNorm(0), "normalized_shape must be a positive int or a non-empty tuple of them, got 0"),
    (lambda: LayerNorm(()), "normalized_shape must be a positive int or a non-empty tuple of them, got ()"),
    (lambda: LayerNorm(4, eps="small"), "eps must be a number ≥ 0, got 'small'"),
])
def test_bad_arguments_are_named(make, message):
    with pytest.raises(ValueError, match=exactly(message)):
        make()


@pytest.mark.parametrize("module, shape, message", [
    (LayerNorm((3, 4)), (2, 4, 3), "LayerNorm(normalized_shape=(3, 4)) expects an input whose last 2 dimension(s) are "
                                   "(3, 4), got shape (2, 4, 3)"),
    (LayerNorm((2, 3, 4)), (3, 4), "LayerNorm(normalized_shape=(2, 3, 4)) expects an input whose last 3 dimension(s) are "
                                   "(2, 3, 4), got shape (3, 4)"),
    (GroupNorm(2, 4), (2, 6, 3), "GroupNorm(num_channels=4) expects an input (batch, 4, ...), got shape (2, 6, 3)"),
    (GroupNorm(2, 4), (4,), "GroupNorm(num_channels=4) expects an input (batch, 4, ...), got shape (4,)"),
])
def test_a_wrong_input_shape_is_named(module, shape, message):
    with pytest.raises(ValueError, match=exactly(message)):
        module(torch.zeros(shape))


def test_edge_shapes_behave_like_torch():
    """An input that is exactly ``normalized_shape`` (no batch dimension), and a normalized dimension of size one."""
    torch.manual_seed(4)
    compare(randomize(LayerNorm((3, 4), dtype=torch.float64)), torch.nn.LayerNorm((3, 4), dtype=torch.float64),
            torch.randn(3, 4, dtype=torch.float64))
    compare(randomize(LayerNorm((5, 1), dtype=torch.float64)), torch.nn.LayerNorm((5, 1), dtype=torch.float64),
            torch.randn(2, 5, 1, dtype=torch.float64))


def test_parameters_are_made_on_the_device_and_in_the_dtype_asked_for():
    for module in (LayerNorm((2, 3), device="meta", dtype=torch.float16), GroupNorm(2, 4, device="meta", dtype=torch.float16)):
        assert all(p.device.type == "meta" and p.dtype == torch.float16 for p in module.parameters())
