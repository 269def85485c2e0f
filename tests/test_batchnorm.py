import itertools

import pytest
import torch

from course_lib.layers import BatchNorm1d, BatchNorm2d, BatchNormFunction, fold_batchnorm, fold_batchnorm_into_next

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
