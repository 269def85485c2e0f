import pytest
import torch
import torchvision

from course_lib.layers import BasicBlock, BatchNorm2d, Bottleneck, PaddingShortcut, ResNet, resnet18, resnet50, small_resnet


def count(model):
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("ours, theirs, parameters", [
    (resnet18, torchvision.models.resnet18, 11_689_512),
    (resnet50, torchvision.models.resnet50, 25_557_032),
])
def test_torchvision_layouts_parameter_counts_and_keys(ours, theirs, parameters):
    mine, reference = ours(), theirs()
    assert count(mine) == count(reference) == parameters
    assert list(mine.state_dict()) == list(reference.state_dict())
    assert [tuple(v.shape) for v in mine.state_dict().values()] == [tuple(v.shape) for v in reference.state_dict().values()]


@pytest.mark.parametrize("ours, theirs", [(resnet18, torchvision.models.resnet18), (resnet50, torchvision.models.resnet50)])
@pytest.mark.parametrize("batchnorm", ["course", "torch"])
def test_torchvisions_random_weights_give_the_same_outputs(ours, theirs, batchnorm):
    torch.manual_seed(0)
    reference = theirs().double()
    mine = ours(batchnorm=batchnorm).double()
    mine.load_state_dict(reference.state_dict())
    x = torch.randn(2, 3, 64, 64, dtype=torch.float64)
    for train in (True, False):  # batch statistics, then the running estimates they updated
        mine.train(train), reference.train(train)
        torch.testing.assert_close(mine(x), reference(x), rtol=0, atol=1e-9)
    for a, b in zip(mine.buffers(), reference.buffers()):
        torch.testing.assert_close(a.double(), b.double(), rtol=0, atol=1e-9)


def test_gradients_match_torchvision():
    torch.manual_seed(1)
    reference = torchvision.models.resnet18(num_classes=5).double()
    mine = resnet18(num_classes=5).double()
    mine.load_state_dict(reference.state_dict())
    # 64×64 inputs leave 2×2 maps in the last stage: batch statistics over 8 values per channel. (With 1×1 maps
    # and a batch of 2 every normalized value is ±1 and the backward divides by tiny deviations, amplifying
    # the last bit of any rounding difference.)
    x = torch.randn(2, 3, 64, 64, dtype=torch.float64)
    mine(x).square().sum().backward()
    reference(x).square().sum().backward()
    for (name, a), b in zip(mine.named_parameters(), reference.parameters()):
        torch.testing.assert_close(a.grad, b.grad, rtol=0, atol=1e-8, msg=lambda m: f"{name}: {m}")


@pytest.mark.parametrize("block, out_factor", [(BasicBlock, 1), (Bottleneck, 4)])
@pytest.mark.parametrize("shortcut", ["projection", "padding"])
@pytest.mark.parametrize("stride", [1, 2])
def test_block_shapes(block, out_factor, shortcut, stride):
    layer = block(8, 16, stride=stride, shortcut=shortcut)
    y = layer(torch.randn(3, 8, 10, 10))
    assert y.shape == (3, 16 * out_factor, 10 // stride, 10 // stride)
    assert (y >= 0).all(), "ReLU after the sum"


def test_shortcut_parameter_counts():
    conv_params = 8 * 16 * 9 + 16 * 16 * 9
    bn_params = 2 * 16 * 2
    padding = BasicBlock(8, 16, stride=2, shortcut="padding")
    projection = BasicBlock(8, 16, stride=2, shortcut="projection")
    assert count(padding) == conv_params + bn_params, "the padding shortcut has no parameters"
    assert count(projection) == conv_params + bn_params + 8 * 16 + 2 * 16, "1×1 conv (no bias) and its BN"
    assert BasicBlock(16, 16).downsample is None, "same shape: an identity shortcut"


def test_a_zeroed_residual_branch_leaves_the_identity():
    torch.manual_seed(2)
    block = BasicBlock(4, 4)
    with torch.no_grad():
        block.bn2.weight.zero_()
        block.bn2.bias.zero_()
    x = torch.randn(2, 4, 6, 6).relu()  # a block's input comes out of a ReLU
    torch.testing.assert_close(block(x), x)
    padded = BasicBlock(4, 8, stride=2, shortcut="padding")
    with torch.no_grad():
        padded.bn2.weight.zero_()
        padded.bn2.bias.zero_()
    y = padded(x)
    torch.testing.assert_close(y[:, :4], x[:, :, ::2, ::2])
    assert torch.equal(y[:, 4:], torch.zeros_like(y[:, 4:])), "the new channels are zeros"


def test_zero_init_residual_makes_every_block_an_identity_at_start():
    model = small_resnet(blocks_per_stage=3, widths=(8,), zero_init_residual=True)
    block = model.layer1[1]
    x = torch.randn(2, 8, 7, 7).relu()
    torch.testing.assert_close(block(x), x)


def test_padding_shortcut_subsamples_and_pads():
    x = torch.arange(2 * 2 * 4 * 4, dtype=torch.float32).view(2, 2, 4, 4)
    y = PaddingShortcut(2, 5, stride=2)(x)
    assert y.shape == (2, 5, 2, 2)
    assert torch.equal(y[:, :2], x[:, :, ::2, ::2]) and torch.equal(y[:, 2:], torch.zeros(2, 3, 2, 2))
    with pytest.raises(ValueError, match="cannot reduce channels"):
        PaddingShortcut(4, 2, 1)


def test_blocks_use_course_or_torch_batchnorm():
    assert isinstance(BasicBlock(4, 4).bn1, BatchNorm2d)
    assert isinstance(BasicBlock(4, 4, batchnorm="torch").bn1, torch.nn.BatchNorm2d)


def test_small_resnet_classifies_digit_shaped_inputs():
    model = small_resnet(blocks_per_stage=2, widths=(8, 16))
    assert model(torch.randn(4, 1, 28, 28)).shape == (4, 10)
    assert model.features(torch.randn(4, 1, 28, 28)).shape == (4, 16)


@pytest.mark.parametrize("make, message", [
    (lambda: BasicBlock(4, 4, stride=3), "stride"),
    (lambda: BasicBlock(0, 4), "in_channels"),
    (lambda: BasicBlock(4, 4, shortcut="dense"), "shortcut"),
    (lambda: BasicBlock(4, 4, batchnorm="layer"), "batchnorm"),
    (lambda: ResNet(BasicBlock, [2, 2], widths=(8,)), "layers and widths"),
    (lambda: ResNet(BasicBlock, [1], widths=(8,), stem="cifar"), "stem"),
])
def test_bad_arguments_are_named(make, message):
    with pytest.raises(ValueError, match=message):
        make()
