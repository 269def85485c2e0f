import re

import pytest
import torch
import torchvision

from course_lib.layers import (BasicBlock, BatchNorm2d, Bottleneck, PaddingShortcut, PlainBlock, ResNet, resnet18, resnet50,
                               small_resnet)


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


@pytest.mark.parametrize("ours, theirs", [(resnet18, torchvision.models.resnet18), (resnet50, torchvision.models.resnet50)])
def test_modules_print_like_torchvisions_module_for_module(ours, theirs):
    """With torch's BatchNorm2d, every part of the stem, every stage and the classifier prints as torchvision's: the
    same convolutions (no biases), normalizations, in-place ReLUs, shortcuts, in the same order."""
    mine, reference = ours(batchnorm="torch", num_classes=10), theirs(num_classes=10)
    for name in ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4", "fc"):
        assert str(getattr(mine, name)) == str(getattr(reference, name)), name
    assert all(type(m) is not BatchNorm2d for m in mine.modules()), "batchnorm='torch' reaches every block"
    assert mine.out_features == reference.fc.in_features


def test_convolutions_start_with_kaiming_normal_fan_out():
    """torchvision's initialization: conv weights ~ N(0, 2 / fan_out) with fan_out = out_channels · k · k."""
    torch.manual_seed(12)
    for name, m in resnet18().named_modules():
        if isinstance(m, torch.nn.Conv2d) and m.weight.numel() >= 8192:  # enough weights for a 5 % estimate
            out_channels, _, kh, kw = m.weight.shape
            assert m.weight.std().item() == pytest.approx((2 / (out_channels * kh * kw)) ** 0.5, rel=0.05), name


def test_small_resnet_defaults_keep_the_resolution_with_one_block_per_stage():
    model = small_resnet()
    x = torch.randn(4, 1, 28, 28)
    assert model.conv1(x).shape == (4, 16, 28, 28) and isinstance(model.maxpool, torch.nn.Identity)
    assert str(model.conv1) == "Conv2d(1, 16, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1), bias=False)"
    assert len(model.layer1) == len(model.layer2) == 1 and model.stages == ["layer1", "layer2"]
    stem = 1 * 16 * 9 + 2 * 16
    stage1 = 2 * 16 * 16 * 9 + 2 * 2 * 16
    stage2 = 16 * 32 * 9 + 32 * 32 * 9 + 2 * 2 * 32 + 16 * 32 + 2 * 32  # with the projection shortcut
    assert count(model) == stem + stage1 + stage2 + 32 * 10 + 10
    assert model.out_features == 32 and model(x).shape == (4, 10)
    assert torch.equal(model.layer1[0].bn2.weight, torch.ones(16)), "zero_init_residual is off by default"


def test_zero_init_residual_zeroes_the_last_normalization_of_bottlenecks_too():
    model = ResNet(Bottleneck, [2], widths=(4,), in_channels=16, stem="small", zero_init_residual=True)
    assert all(torch.equal(block.bn3.weight, torch.zeros(16)) for block in model.layer1)
    assert all(torch.equal(block.bn2.weight, torch.ones(4)) for block in model.layer1)
    x = torch.randn(2, 16, 5, 5).relu()
    torch.testing.assert_close(model.layer1[1](x), x)


def test_block_defaults_are_stride_one_projection_and_course_batchnorm():
    block = Bottleneck(8, 4)
    assert block(torch.randn(2, 8, 6, 6)).shape == (2, 16, 6, 6)
    conv, norm = block.downsample
    assert str(conv) == "Conv2d(8, 16, kernel_size=(1, 1), stride=(1, 1), bias=False)" and isinstance(norm, BatchNorm2d)
    assert isinstance(block.bn1, BatchNorm2d) and str(block.relu) == "ReLU(inplace=True)"


def test_one_channel_is_the_smallest_block_and_other_counts_are_rejected_by_name():
    assert BasicBlock(1, 1)(torch.randn(2, 1, 4, 4)).shape == (2, 1, 4, 4)
    assert Bottleneck(1, 1)(torch.randn(2, 1, 4, 4)).shape == (2, 4, 4, 4)
    for make, message in [(lambda: BasicBlock(0, 4), "in_channels must be a positive int, got 0"),
                          (lambda: BasicBlock(True, 4), "in_channels must be a positive int, got True"),
                          (lambda: BasicBlock(4, 0), "channels must be a positive int, got 0"),
                          (lambda: Bottleneck(4, 2.5), "channels must be a positive int, got 2.5"),
                          (lambda: BasicBlock(4, 4, stride=3), "stride must be 1 or 2, got 3"),
                          (lambda: ResNet(BasicBlock, [2, 0], widths=(8, 16)),
                           "layers and widths must be non-empty, of equal length, with at least one block per stage; "
                           "got [2, 0] and (8, 16)")]:
        with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
            make()


def test_padding_shortcut_with_equal_or_one_more_channel_on_a_non_square_input():
    x = torch.randn(2, 3, 6, 4)
    torch.testing.assert_close(PaddingShortcut(3, 3, stride=2)(x), x[:, :, ::2, ::2])
    y = PaddingShortcut(3, 4, stride=1)(x)
    assert y.shape == (2, 4, 6, 4) and torch.equal(y[:, :3], x) and torch.equal(y[:, 3], torch.zeros(2, 6, 4))


def test_the_options_of_resnet50_reach_the_model():
    assert resnet50(num_classes=7, widths=(8, 8, 8, 8)).fc.out_features == 7


def test_plain_block_is_the_basic_block_without_its_shortcut():
    torch.manual_seed(13)
    plain, residual = PlainBlock(4, 8, stride=2), BasicBlock(4, 8, stride=2, shortcut="padding")
    assert plain.downsample is None and isinstance(plain.bn1, BatchNorm2d)
    plain.load_state_dict(residual.state_dict())  # the same parameters, the same names
    x = torch.randn(2, 4, 6, 6)
    torch.testing.assert_close(plain(x), residual.residual(x).relu())
    same_shape = PlainBlock(4, 4, batchnorm="torch")
    assert isinstance(same_shape.bn2, torch.nn.BatchNorm2d) and same_shape(x).shape == x.shape, "stride 1 by default"
