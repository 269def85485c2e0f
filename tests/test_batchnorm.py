import copy
import itertools
import types

import pytest
import torch

from course_lib.layers import BatchNorm1d, BatchNorm2d, BatchNormFunction, fold_batchnorm, fold_batchnorm_into_next
from course_lib.layers.batchnorm import eval_affine
from messages import exactly

TOL = dict(rtol=0.0, atol=1e-10)
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
CASES = [  # (ours, torch's, input shape)
    (BatchNorm1d, torch.nn.BatchNorm1d, (16, 5)),
    (BatchNorm1d, torch.nn.BatchNorm1d, (8, 5, 7)),
    (BatchNorm2d, torch.nn.BatchNorm2d, (6, 5, 4, 3)),
]


def pair(ours, theirs, device, **options):
    mine = ours(5, **options).double().to(device)
    reference = theirs(5, **options).double().to(device)
    if mine.weight is not None:  # non-trivial γ and β
        with torch.no_grad():
            mine.weight.uniform_(0.5, 2.0)
            mine.bias.uniform_(-1.0, 1.0)
    reference.load_state_dict(mine.state_dict())
    return mine, reference


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("affine, track, momentum", list(itertools.product([True, False], [True, False], [0.1, None])))
@pytest.mark.parametrize("ours, theirs, shape", CASES, ids=["1d-BC", "1d-BCL", "2d"])
def test_ten_training_steps_then_eval_match_torch(ours, theirs, shape, affine, track, momentum, device):
    torch.manual_seed(0)
    mine, reference = pair(ours, theirs, device, affine=affine, track_running_stats=track, momentum=momentum)
    for step in range(10):
        x = (torch.randn(shape, dtype=torch.float64) * 3 + step).to(device)
        x_mine, x_ref = x.clone().requires_grad_(), x.clone().requires_grad_()
        y_mine, y_ref = mine(x_mine), reference(x_ref)
        torch.testing.assert_close(y_mine, y_ref, **TOL)
        upstream = torch.randn(shape, dtype=torch.float64).to(device)
        (y_mine * upstream).sum().backward()
        (y_ref * upstream).sum().backward()
        torch.testing.assert_close(x_mine.grad, x_ref.grad, **TOL)
        if affine:
            torch.testing.assert_close(mine.weight.grad, reference.weight.grad, **TOL)
            torch.testing.assert_close(mine.bias.grad, reference.bias.grad, **TOL)
        if track:
            torch.testing.assert_close(mine.running_mean, reference.running_mean, **TOL)
            torch.testing.assert_close(mine.running_var, reference.running_var, **TOL)
            assert mine.num_batches_tracked.item() == reference.num_batches_tracked.item() == step + 1
    mine.eval(), reference.eval()
    x = (torch.randn(shape, dtype=torch.float64) * 3).to(device).requires_grad_()
    torch.testing.assert_close(mine(x), reference(x), **TOL)
    x_ref = x.detach().clone().requires_grad_()
    mine(x).sum().backward()
    reference(x_ref).sum().backward()
    torch.testing.assert_close(x.grad, x_ref.grad, **TOL)


@pytest.mark.parametrize("shape", [(7, 3), (4, 3, 5), (3, 3, 2, 4)])
@pytest.mark.parametrize("affine", [True, False])
def test_the_hand_written_backward_passes_gradcheck(shape, affine):
    torch.manual_seed(1)
    x = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    weight = torch.rand(3, dtype=torch.float64, requires_grad=True) + 0.5 if affine else None
    bias = torch.randn(3, dtype=torch.float64, requires_grad=True) if affine else None
    inputs = (x, weight, bias) if affine else (x,)

    def normalize(*args):
        return BatchNormFunction.apply(args[0], args[1] if affine else None, args[2] if affine else None, 1e-5)[0]

    assert torch.autograd.gradcheck(normalize, inputs)


def test_state_dict_keys_are_torchs_and_load_both_ways():
    for ours, theirs, _ in CASES:
        for options in ({}, {"affine": False}, {"track_running_stats": False}):
            assert list(ours(5, **options).state_dict()) == list(theirs(5, **options).state_dict())
    torch.manual_seed(2)
    reference = torch.nn.BatchNorm2d(5)
    reference(torch.randn(8, 5, 3, 3) * 2 + 1)
    mine = BatchNorm2d(5)
    mine.load_state_dict(reference.state_dict())
    back = torch.nn.BatchNorm2d(5)
    back.load_state_dict(mine.state_dict())
    for key, value in reference.state_dict().items():
        assert torch.equal(back.state_dict()[key], value)


def test_the_slides_example():
    """Slide 41: three components of scales 2, 5, 10 come out with means β and standard deviations ≈ γ."""
    torch.manual_seed(0)
    x = torch.empty(1000, 3).normal_() * torch.tensor([2.0, 5.0, 10.0]) + torch.tensor([-10.0, 25.0, 3.0])
    bn = BatchNorm1d(3)
    with torch.no_grad():
        bn.bias.copy_(torch.tensor([2.0, 4.0, 8.0]))
        bn.weight.copy_(torch.tensor([1.0, 2.0, 3.0]))
    y = bn(x)
    torch.testing.assert_close(y.mean(0), torch.tensor([2.0, 4.0, 8.0]), rtol=0, atol=1e-4)
    # the biased batch variance normalizes: the unbiased std is √(1000/999) γ
    torch.testing.assert_close(y.std(0), torch.tensor([1.0, 2.0, 3.0]) * (1000 / 999) ** 0.5, rtol=1e-4, atol=0)


def test_bad_inputs_name_what_is_wrong():
    with pytest.raises(ValueError, match="num_features"):
        BatchNorm1d(0)
    with pytest.raises(ValueError, match="momentum"):
        BatchNorm1d(3, momentum=1.5)
    with pytest.raises(ValueError, match="eps"):
        BatchNorm2d(3, eps=0.0)
    with pytest.raises(ValueError, match="4-D input"):
        BatchNorm2d(3)(torch.randn(2, 3))
    with pytest.raises(ValueError, match="3 channels|num_features=3"):
        BatchNorm1d(3)(torch.randn(2, 4))
    with pytest.raises(ValueError, match="more than one value per channel"):
        BatchNorm1d(3)(torch.randn(1, 3))


@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("use_course_bn", [True, False])
def test_folding_into_a_linear_layer_is_exact(affine, use_course_bn):
    torch.manual_seed(3)
    layer = torch.nn.Linear(6, 4).double()
    bn = (BatchNorm1d if use_course_bn else torch.nn.BatchNorm1d)(4, affine=affine).double()
    for _ in range(5):
        bn(layer(torch.randn(32, 6, dtype=torch.float64) * 2 + 1))
    if affine:
        with torch.no_grad():
            bn.weight.uniform_(0.5, 2)
            bn.bias.uniform_(-1, 1)
    bn.eval()
    folded = fold_batchnorm(layer, bn)
    x = torch.randn(10, 6, dtype=torch.float64)
    torch.testing.assert_close(folded(x), bn(layer(x)), **TOL)
    assert isinstance(folded, torch.nn.Linear) and folded is not layer


@pytest.mark.parametrize("bias", [True, False])
def test_folding_into_a_conv_layer_is_exact(bias):
    torch.manual_seed(4)
    conv = torch.nn.Conv2d(3, 5, 3, padding=1, bias=bias, stride=2).double()
    bn = BatchNorm2d(5).double()
    for _ in range(5):
        bn(conv(torch.randn(8, 3, 9, 9, dtype=torch.float64)))
    with torch.no_grad():
        bn.weight.uniform_(0.5, 2)
        bn.bias.uniform_(-1, 1)
    bn.eval()
    before = conv.weight.clone()
    folded = fold_batchnorm(conv, bn)
    x = torch.randn(2, 3, 9, 9, dtype=torch.float64)
    torch.testing.assert_close(folded(x), bn(conv(x)), **TOL)
    assert folded.stride == conv.stride and torch.equal(conv.weight, before), "the original layer is left unchanged"


def test_folding_refuses_what_it_cannot_fold():
    with pytest.raises(ValueError, match="running statistics"):
        fold_batchnorm(torch.nn.Linear(3, 4), BatchNorm1d(4, track_running_stats=False))
    with pytest.raises(ValueError, match="4 features but the layer has 2"):
        fold_batchnorm(torch.nn.Linear(3, 2), BatchNorm1d(4))
    with pytest.raises(ValueError, match="Linear or torch.nn.Conv2d"):
        fold_batchnorm(torch.nn.ReLU(), BatchNorm1d(4))


@pytest.mark.parametrize("affine, bias, kind", [(True, True, "course"), (False, False, "course"), (True, True, "torch")])
def test_folding_a_batchnorm_into_the_next_linear_layer_is_exact(affine, bias, kind):
    torch.manual_seed(5)
    make = BatchNorm1d if kind == "course" else torch.nn.BatchNorm1d
    bn = make(6, affine=affine).double()
    for _ in range(20):  # running statistics far from 0 and 1
        bn(torch.randn(32, 6, dtype=torch.float64) * 3 + 2)
    if affine:
        with torch.no_grad():
            bn.weight.uniform_(0.5, 2)
            bn.bias.uniform_(-1, 1)
    bn.eval()
    layer = torch.nn.Linear(6, 4, bias=bias).double()
    before = layer.weight.clone()
    folded = fold_batchnorm_into_next(bn, layer)
    x = torch.randn(10, 6, dtype=torch.float64)
    torch.testing.assert_close(folded(x), layer(bn(x)), **TOL)
    assert not torch.allclose(folded(x), layer(x)), "the normalization really changed something"
    assert torch.equal(layer.weight, before) and folded is not layer
    with pytest.raises(ValueError, match="6 features but the layer has 3 inputs"):
        fold_batchnorm_into_next(bn, torch.nn.Linear(3, 4))
    with pytest.raises(ValueError, match="must be a torch.nn.Linear"):
        fold_batchnorm_into_next(bn, torch.nn.Conv2d(6, 4, 1))
    with pytest.raises(ValueError, match="running statistics"):
        fold_batchnorm_into_next(BatchNorm1d(6, track_running_stats=False), torch.nn.Linear(6, 4))


def test_error_messages_name_the_layer_the_argument_and_the_shape():
    with pytest.raises(ValueError, match=exactly("BatchNorm1d expects a 2-D or 3-D input (batch, channels, ...), got shape (2, 3, 4, 5)")):
        BatchNorm1d(3)(torch.randn(2, 3, 4, 5))
    with pytest.raises(ValueError, match=exactly("BatchNorm2d expects a 4-D input (batch, channels, ...), got shape (2, 3)")):
        BatchNorm2d(3)(torch.randn(2, 3))
    with pytest.raises(ValueError, match=exactly("BatchNorm1d(num_features=3) got an input with 4 channels, shape (2, 4)")):
        BatchNorm1d(3)(torch.randn(2, 4))
    with pytest.raises(ValueError, match=exactly("BatchNorm2d needs more than one value per channel in training, got shape (1, 3, 1, 1)")):
        BatchNorm2d(3)(torch.randn(1, 3, 1, 1))
    for bad in (0, -2, True, 2.5, "3"):
        with pytest.raises(ValueError, match=exactly(f"num_features must be a positive int, got {bad!r}")):
            BatchNorm1d(bad)
    with pytest.raises(ValueError, match=exactly("eps must be > 0, got 0.0")):
        BatchNorm1d(3, eps=0.0)
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError, match=exactly(f"momentum must be in [0, 1] or None (cumulative average), got {bad!r}")):
            BatchNorm1d(3, momentum=bad)


@pytest.mark.parametrize("momentum", [0.0, 1.0])
def test_one_feature_two_values_and_momentum_at_either_end_match_torch(momentum):
    """The smallest legal layer and batch: 1 feature, N = 2 values per channel; momentum 0 keeps the running
    estimates at their start, momentum 1 replaces them by the last batch's."""
    torch.manual_seed(6)
    for ours, theirs, shape in [(BatchNorm1d, torch.nn.BatchNorm1d, (2, 1)), (BatchNorm2d, torch.nn.BatchNorm2d, (1, 1, 1, 2))]:
        mine, reference = ours(1, momentum=momentum).double(), theirs(1, momentum=momentum).double()
        for _ in range(3):
            x = torch.randn(shape, dtype=torch.float64) * 2 + 3
            torch.testing.assert_close(mine(x), reference(x), **TOL)
        last = x.flatten()
        expected_mean, expected_var = (last.mean(), last.var()) if momentum == 1.0 else (torch.tensor(0.0), torch.tensor(1.0))
        torch.testing.assert_close(mine.running_mean, expected_mean.double().view(1), **TOL)
        torch.testing.assert_close(mine.running_var, expected_var.double().view(1), **TOL)
        torch.testing.assert_close(mine.running_var, reference.running_var, **TOL)


def test_without_running_statistics_the_buffers_are_none_like_torchs():
    mine, reference = BatchNorm1d(3, track_running_stats=False), torch.nn.BatchNorm1d(3, track_running_stats=False)
    for name in ("running_mean", "running_var", "num_batches_tracked"):
        assert getattr(mine, name) is None and getattr(reference, name) is None, name
    assert BatchNorm1d(3).num_batches_tracked.dtype == torch.long


def test_reset_running_stats_restores_the_start_like_torchs():
    torch.manual_seed(7)
    mine, reference = BatchNorm1d(4), torch.nn.BatchNorm1d(4)
    for _ in range(3):
        x = torch.randn(8, 4) * 3 + 2
        mine(x), reference(x)
    mine.reset_running_stats(), reference.reset_running_stats()
    for key, value in reference.state_dict().items():
        if "running" in key or "batches" in key:
            assert torch.equal(mine.state_dict()[key], value), key
    BatchNorm1d(4, track_running_stats=False).reset_running_stats()  # nothing to reset


def test_batch_statistics_are_returned_without_gradient():
    torch.manual_seed(8)
    x = torch.randn(6, 3, 4, dtype=torch.float64, requires_grad=True)
    weight = torch.rand(3, dtype=torch.float64, requires_grad=True)
    _, mean, var = BatchNormFunction.apply(x, weight, None, 1e-5)
    assert not mean.requires_grad and not var.requires_grad
    torch.testing.assert_close(mean, x.detach().mean(dim=(0, 2)), **TOL)
    torch.testing.assert_close(var, x.detach().var(dim=(0, 2), unbiased=False), **TOL)


@pytest.mark.parametrize("weight_needs_grad, bias_needs_grad", [(True, False), (False, True)])
def test_gradients_go_to_exactly_the_parameters_that_need_them(weight_needs_grad, bias_needs_grad):
    """γ and β that are tensors but frozen (requires_grad=False) get no gradient; the others get torch's."""
    torch.manual_seed(9)
    x = torch.randn(5, 3, 2, dtype=torch.float64)
    upstream = torch.randn(5, 3, 2, dtype=torch.float64)
    gamma, beta = torch.rand(3, dtype=torch.float64) + 0.5, torch.randn(3, dtype=torch.float64)
    grads = []
    for normalize in (lambda *a: BatchNormFunction.apply(*a, 1e-5)[0],
                      lambda x, w, b: torch.nn.functional.batch_norm(x, None, None, w, b, training=True, eps=1e-5)):
        inputs = [x.clone().requires_grad_(), gamma.clone().requires_grad_(weight_needs_grad),
                  beta.clone().requires_grad_(bias_needs_grad)]
        (normalize(*inputs) * upstream).sum().backward()
        grads.append([t.grad for t in inputs])
    (mine_x, mine_w, mine_b), (ref_x, ref_w, ref_b) = grads
    torch.testing.assert_close(mine_x, ref_x, **TOL)
    assert (mine_w is None) == (not weight_needs_grad) and (mine_b is None) == (not bias_needs_grad)
    if weight_needs_grad:
        torch.testing.assert_close(mine_w, ref_w, **TOL)
    if bias_needs_grad:
        torch.testing.assert_close(mine_b, ref_b, **TOL)


def test_eval_affine_refuses_a_module_without_both_running_statistics():
    message = exactly("bn must track running statistics (track_running_stats=True): eval mode uses them")
    half_tracked = types.SimpleNamespace(running_mean=torch.zeros(3), running_var=None, eps=1e-5, weight=None, bias=None)
    for bn in (BatchNorm1d(3, track_running_stats=False), torch.nn.LayerNorm(3), half_tracked):
        with pytest.raises(ValueError, match=message):
            eval_affine(bn)


def test_folding_errors_name_the_layer_type():
    with pytest.raises(ValueError, match=exactly("layer must be a torch.nn.Linear or torch.nn.Conv2d, got ReLU")):
        fold_batchnorm(torch.nn.ReLU(), BatchNorm1d(4))
    with pytest.raises(ValueError, match=exactly("layer must be a torch.nn.Linear, got Conv2d")):
        fold_batchnorm_into_next(BatchNorm1d(6), torch.nn.Conv2d(6, 4, 1))


@pytest.mark.parametrize("layer_dtype, bn_dtype", [(torch.float32, torch.float64), (torch.float64, torch.float32)])
def test_folding_keeps_the_layers_dtype_when_the_normalization_has_another(layer_dtype, bn_dtype):
    torch.manual_seed(10)
    for bias in (True, False):
        before, after = torch.nn.Linear(6, 4, bias=bias).to(layer_dtype), torch.nn.Linear(4, 3, bias=bias).to(layer_dtype)
        bn = BatchNorm1d(4).to(bn_dtype)
        for _ in range(5):
            bn(torch.randn(32, 4, dtype=bn_dtype) * 3 + 2)
        with torch.no_grad():
            bn.weight.uniform_(0.5, 2)
            bn.bias.uniform_(-1, 1)
        bn.eval()
        x = torch.randn(10, 6, dtype=torch.float64)
        folded = fold_batchnorm(before, bn)
        following = fold_batchnorm_into_next(bn, after)
        for layer in (folded, following):
            assert layer.weight.dtype == layer_dtype and (layer.bias is None or layer.bias.dtype == layer_dtype)
        exact_bn = BatchNorm1d(4).double()
        exact_bn.load_state_dict(bn.state_dict())
        exact_bn.eval()
        x_bn = torch.randn(10, 4, dtype=torch.float64)
        exact_before, exact_after = copy.deepcopy(before).double(), copy.deepcopy(after).double()
        torch.testing.assert_close(folded(x.to(layer_dtype)).double(), exact_bn(exact_before(x)), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(following(x_bn.to(layer_dtype)).double(), exact_after(exact_bn(x_bn)), rtol=1e-5, atol=1e-5)
