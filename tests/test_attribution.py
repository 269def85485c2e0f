"""Oracles for course_lib.visualization's attribution maps (against captum, in float64, on the shape of lecture 09's
digit CNN with random weights) and for the sanity check (ranks and Spearman's ρ against closed forms, and scipy when
it is installed; the cascading randomization layer by layer)."""

import math
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from course_lib.visualization import (cascading_randomization, class_backprop, grad_cam, occlusion,
                                      parametrized_layers, randomize_top, rankdata, saliency, spearman, target_score)
from course_lib.visualization.experiments import digit_cnn

captum_attr = pytest.importorskip("captum.attr")


@pytest.fixture(scope="module")
def cnn():
    torch.manual_seed(0)
    model = digit_cnn().double().eval()
    with torch.no_grad():  # larger biases than the default: more ReLUs switch, so the rules differ more
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                m.bias.normal_(0, 0.1)
    return model


@pytest.fixture(scope="module")
def digits():
    g = torch.Generator().manual_seed(1)
    return torch.randn(3, 1, 28, 28, generator=g, dtype=torch.float64), torch.tensor([1, 4, 7])


def quiet(f, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # captum's notes about requires_grad and hooks
        return f(*args, **kwargs)


def close(a, b, tol=1e-6):
    assert a.shape == b.shape, (a.shape, b.shape)
    error = (a.double() - b.double()).abs().max().item()
    assert error <= tol * max(b.abs().max().item(), 1e-12), f"max |difference| {error:.2e}"


# --- the maps against captum ----------------------------------------------------------------------------------

def test_saliency_and_modified_backprop_equal_captums(cnn, digits):
    x, t = digits
    x_before = x.clone()
    close(saliency(cnn, x, t), quiet(captum_attr.Saliency(cnn).attribute, x, target=t))
    guided = class_backprop(cnn, x, t, "guided")
    close(guided, quiet(captum_attr.GuidedBackprop(cnn).attribute, x, target=t))
    close(class_backprop(cnn, x, t, "deconv"), quiet(captum_attr.Deconvolution(cnn).attribute, x, target=t))
    vanilla = class_backprop(cnn, x, t, "vanilla")
    close(vanilla, quiet(captum_attr.Saliency(cnn).attribute, x, target=t, abs=False))
    assert (guided - vanilla).abs().max() > 1e-3 * vanilla.abs().max(), "the rules differ on this network"
    assert torch.equal(x, x_before)
    # one int target for every image is the same as a tensor of it
    assert torch.equal(saliency(cnn, x, 4), saliency(cnn, x, torch.tensor([4, 4, 4])))


@pytest.mark.parametrize("window, stride, baseline", [(4, 2, 0.0), (5, 3, 0.3), ((3, 7), (2, 4), -1.0)])
def test_occlusion_equals_captums(cnn, digits, window, stride, baseline):
    x, t = digits
    wh, ww = (window, window) if isinstance(window, int) else window
    sh, sw = (stride, stride) if isinstance(stride, int) else stride
    ours = occlusion(cnn, x, t, window=window, stride=stride, baseline=baseline, batch_size=50)
    theirs = captum_attr.Occlusion(cnn).attribute(x, sliding_window_shapes=(1, wh, ww), strides=(1, sh, sw),
                                                  baselines=baseline, target=t)
    close(ours, theirs)  # captum returns float32: 1e-6 of the largest value
    assert ours.dtype == torch.float64 and ours.abs().max() > 0


def test_occlusion_of_a_linear_model_is_the_mean_patch_sum():
    # s(x) = Σ w ⊙ x: a patch's drop is the sum of w ⊙ (x − b) over it; averaged over the patches covering a pixel
    g = torch.Generator().manual_seed(2)
    w, x = torch.randn(2, 5, 6, generator=g, dtype=torch.float64), torch.randn(2, 2, 5, 6, generator=g, dtype=torch.float64)
    model = nn.Sequential(nn.Flatten(), nn.Linear(60, 1, bias=True)).double()
    with torch.no_grad():
        model[1].weight.copy_(w.reshape(1, -1))
    ours = occlusion(model, x, 0, window=(3, 2), stride=(2, 2), baseline=0.5, batch_size=7)
    contribution = (w * (x - 0.5)).sum(dim=1)  # (N, H, W), all channels together
    expected = torch.zeros(2, 5, 6, dtype=torch.float64)
    counts = torch.zeros(5, 6, dtype=torch.float64)
    for top in (0, 2):  # ⌈(5 − 3)/2⌉ + 1 = 2 row offsets
        for left in (0, 2, 4):  # ⌈(6 − 2)/2⌉ + 1 = 3 column offsets
            drop = contribution[:, top: top + 3, left: left + 2].sum(dim=(1, 2))
            expected[:, top: top + 3, left: left + 2] += drop[:, None, None]
            counts[top: top + 3, left: left + 2] += 1
    expected = (expected / counts)[:, None].expand(2, 2, 5, 6)
    close(ours, expected, 1e-12)


def test_occlusion_cuts_the_last_patch_at_the_border():
    # a 1×5 image, window 2, stride 2: offsets 0, 2, 4 (⌈3/2⌉ + 1 = 3), the last patch one pixel wide
    model = nn.Sequential(nn.Flatten(), nn.Linear(5, 1, bias=False)).double()
    with torch.no_grad():
        model[1].weight.copy_(torch.tensor([[1.0, 2.0, 4.0, 8.0, 16.0]], dtype=torch.float64))
    ours = occlusion(model, torch.ones(1, 1, 1, 5, dtype=torch.float64), 0, window=(1, 2), stride=(1, 2))
    assert ours.flatten().tolist() == [3.0, 3.0, 12.0, 12.0, 16.0]


@pytest.mark.parametrize("layer", ["relu2", "conv1", "pool1"])
def test_grad_cam_equals_captums(cnn, digits, layer):
    x, t = digits
    theirs = captum_attr.LayerGradCam(cnn, dict(cnn.named_modules())[layer]).attribute(x, target=t,
                                                                                        relu_attributions=True)
    ours = grad_cam(cnn, x, t, layer)
    close(ours, theirs)
    assert ours.shape[1] == 1 and not ours.requires_grad and ours.max() > 0
    close(grad_cam(cnn, x, t, layer, relu=False),
          captum_attr.LayerGradCam(cnn, dict(cnn.named_modules())[layer]).attribute(x, target=t))
    assert grad_cam(cnn, x, t, layer, relu=False).min() < 0
    for mode in ("nearest", "bilinear"):
        close(grad_cam(cnn, x, t, layer, size=28, mode=mode),
              captum_attr.LayerAttribution.interpolate(theirs, (28, 28), mode))
    assert not any(m._forward_hooks for m in cnn.modules())


def test_grad_cam_before_global_average_pooling_is_the_rectified_cam_over_hw():
    torch.manual_seed(3)
    model = nn.Sequential(nn.Conv2d(2, 5, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(5, 4)).double()
    x = torch.randn(2, 2, 7, 6, dtype=torch.float64)
    a = model[1](model[0](x))
    cam = torch.einsum("k,nkij->nij", model[4].weight[2], a).detach()
    close(grad_cam(model, x, 2, "1"), cam.clamp_min(0)[:, None] / (5 * 4), 1e-12)


def test_target_score_and_bad_arguments(cnn, digits):
    x, t = digits
    assert torch.equal(target_score(cnn, x, t), cnn(x)[torch.arange(3), t])
    with pytest.raises(ValueError, match=r"target must be in \[0, 9\]"):
        saliency(cnn, x, 10)
    with pytest.raises(ValueError, match=r"target must be in \[0, 9\]"):
        saliency(cnn, x, -1)
    with pytest.raises(ValueError, match="target must be an int or 3 class indices"):
        saliency(cnn, x, torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="target must be an int or 3 class indices"):
        saliency(cnn, x, 1.5)
    with pytest.raises(ValueError, match=r"x must be a tensor of shape \(N, C, H, W\), got \(28, 28\)"):
        saliency(cnn, x[0, 0], 1)
    with pytest.raises(ValueError, match="rule must be one of"):
        class_backprop(cnn, x, t, "relu")
    with pytest.raises(ValueError, match=r"model must return class scores of shape \(N, K\)"):
        class_backprop(cnn[:3], x, t)
    with pytest.raises(ValueError, match=r"model must return class scores of shape \(N, K\)"):
        saliency(cnn[:3], x, t)
    with pytest.raises(ValueError, match="window must be a positive int"):
        occlusion(cnn, x, t, window=0)
    with pytest.raises(ValueError, match="stride must be a positive int"):
        occlusion(cnn, x, t, window=4, stride=(1, 2, 3))
    with pytest.raises(ValueError, match="window must fit in the 28×28 image"):
        occlusion(cnn, x, t, window=(4, 29), stride=1)
    with pytest.raises(ValueError, match="stride must not exceed the window"):
        occlusion(cnn, x, t, window=(4, 4), stride=(2, 5))
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        occlusion(cnn, x, t, batch_size=0)
    with pytest.raises(ValueError, match="layer must be one of"):
        grad_cam(cnn, x, t, "conv3")
    with pytest.raises(ValueError, match="layer must be one of"):
        grad_cam(cnn, x, t, "")
    with pytest.raises(ValueError, match=r"layer must output feature maps \(N, K, h, w\), 'flatten' gives"):
        grad_cam(cnn, x, t, "flatten")
    assert not any(m._forward_hooks for m in cnn.modules())


def test_occlusion_fills_whole_windows_and_the_batch_size_does_not_matter(cnn, digits):
    x, t = digits
    a = occlusion(cnn, x, t, window=7, stride=7, batch_size=1)
    close(a, occlusion(cnn, x, t, window=7, stride=7, batch_size=1000), 1e-12)
    # non-overlapping 7×7 patches: each pixel's value is its own patch's drop
    patch = x.clone()
    patch[:, :, 7:14, 14:21] = 0
    drop = target_score(cnn, x, t) - target_score(cnn, patch, t)
    close(a[:, 0, 10, 15], drop.detach(), 1e-12)
    assert torch.equal(a[:, 0, 7:14, 14:21], a[:, 0, 7:8, 14:15].expand(3, 7, 7))


# --- the sanity check ------------------------------------------------------------------------------------------

def test_rankdata_averages_ties():
    assert rankdata(torch.tensor([10.0, 30.0, 20.0])).tolist() == [1.0, 3.0, 2.0]
    assert rankdata(torch.tensor([2.0, 1.0, 2.0, 5.0, 2.0])).tolist() == [3.0, 1.0, 3.0, 5.0, 3.0]
    assert rankdata(torch.tensor([0.0, 0.0, -1.0, 7.0])).tolist() == [2.5, 2.5, 1.0, 4.0]
    assert rankdata(torch.tensor([4])).tolist() == [1.0]
    for bad in (torch.zeros(2, 2), torch.zeros(0), [1.0, 2.0]):
        with pytest.raises(ValueError, match="v must be a non-empty 1-D tensor"):
            rankdata(bad)


def test_spearman_closed_forms_and_scipy():
    g = torch.Generator().manual_seed(4)
    a, b = torch.randn(50, generator=g, dtype=torch.float64), torch.randn(50, generator=g, dtype=torch.float64)
    d = rankdata(a) - rankdata(b)
    n = 50
    assert spearman(a, b) == pytest.approx(1 - 6 * float((d ** 2).sum()) / (n * (n * n - 1)), abs=1e-12)
    assert spearman(a, a.exp()) == pytest.approx(1.0, abs=1e-12)  # any increasing transform: ρ = 1
    assert spearman(a, -a ** 3) == pytest.approx(-1.0, abs=1e-12)
    assert spearman(a.reshape(5, 10), b.reshape(10, 5)) == pytest.approx(spearman(a, b), abs=1e-15)
    # ties, by hand: ranks (1.5, 1.5, 3, 4) and (1, 2, 3, 4) → Pearson of those
    ra, rb = torch.tensor([1.5, 1.5, 3, 4], dtype=torch.float64), torch.tensor([1.0, 2, 3, 4], dtype=torch.float64)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    expected = float((ra * rb).sum() / (ra.norm() * rb.norm()))
    assert spearman(torch.tensor([1.0, 1.0, 2.0, 3.0]), torch.tensor([1.0, 2.0, 3.0, 4.0])) == pytest.approx(expected, abs=1e-12)
    assert math.isnan(spearman(torch.ones(4), torch.arange(4.0)))
    assert math.isnan(spearman(torch.arange(4.0), torch.ones(4)))
    with pytest.raises(ValueError, match="a and b must be tensors with the same number"):
        spearman(torch.ones(3), torch.ones(4))
    with pytest.raises(ValueError, match="a and b must be tensors with the same number"):
        spearman(torch.ones(1), torch.ones(1))
    try:
        from scipy.stats import spearmanr
    except ImportError:
        return
    tied = a.round(decimals=0), b.round(decimals=0)
    for u, v in ((a, b), tied):
        assert spearman(u, v) == pytest.approx(spearmanr(u.numpy(), v.numpy()).statistic, abs=1e-12)


def test_randomize_top_cascades_from_the_top(cnn):
    assert parametrized_layers(cnn) == ["conv1", "conv2", "fc"]
    before = {k: v.clone() for k, v in cnn.state_dict().items()}
    copies = [randomize_top(cnn, depth, seed=5) for depth in range(4)]
    assert all(torch.equal(v, cnn.state_dict()[k]) for k, v in before.items()), "the model is unchanged"
    for depth, model in enumerate(copies):
        for i, name in enumerate(["fc", "conv2", "conv1"]):
            layer, trained = dict(model.named_modules())[name], dict(cnn.named_modules())[name]
            same = torch.equal(layer.weight, trained.weight) and torch.equal(layer.bias, trained.bias)
            assert same == (i >= depth), (depth, name)
            assert layer.weight.dtype == torch.float64
    # the cascade keeps the random weights of the layers above; another seed draws other ones
    assert torch.equal(copies[1].fc.weight, copies[3].fc.weight) and torch.equal(copies[2].conv2.bias, copies[3].conv2.bias)
    assert not torch.equal(randomize_top(cnn, 1, seed=6).fc.weight, copies[1].fc.weight)
    assert not torch.equal(copies[3].conv1.weight.flatten()[:8], copies[3].fc.weight.flatten()[:8])
    # the default initialization: conv1's uniform bound 1/√fan_in = 1/5
    assert copies[3].conv1.weight.abs().max() <= 0.2 and copies[3].conv1.weight.abs().max() > 0.15
    torch.manual_seed(3)
    expected = torch.rand(2)
    torch.manual_seed(3)
    randomize_top(cnn, 3, seed=7)
    assert torch.equal(torch.rand(2), expected), "the caller's random state is left as it was"
    for bad in (-1, 4, 1.0):
        with pytest.raises(ValueError, match=r"depth must be an int in \[0, 3\]"):
            randomize_top(cnn, bad)


def test_cascading_randomization_measures_each_depth(cnn, digits):
    x, t = digits
    methods = {
        "input": lambda model, x, t: x * 2,                        # does not look at the weights: ρ = 1
        "saliency": saliency,
        "nothing": lambda model, x, t: torch.zeros_like(x),        # constant: counted as 0
    }
    cascade = cascading_randomization(cnn, x, t, methods, seed=1)
    assert cascade.layers == ["fc", "conv2", "conv1"]
    assert cascade.maps["saliency"].shape == (4, 3, 1, 28, 28)
    assert cascade.similarity["input"].shape == (4, 3)
    close(cascade.similarity["input"], torch.ones(4, 3, dtype=torch.float64), 1e-12)
    assert torch.equal(cascade.similarity["nothing"], torch.zeros(4, 3, dtype=torch.float64))
    close(cascade.similarity["saliency"][0], torch.ones(3, dtype=torch.float64), 1e-12)
    for depth in range(4):
        model = randomize_top(cnn, depth, seed=1)
        assert torch.equal(cascade.maps["saliency"][depth], saliency(model, x, t))
        for i in range(3):
            expected = spearman(saliency(model, x[i:i + 1], t[i:i + 1]), saliency(cnn, x[i:i + 1], t[i:i + 1]))
            assert cascade.similarity["saliency"][depth, i].item() == pytest.approx(expected, abs=1e-12)
    assert cascade.mean("saliency")[3] < 0.9
    # signed: a map that flips its sign with the weights is anti-correlated, its absolute value is not
    flips = {"flip": lambda model, x, t: x * (1 if model.fc.weight[0, 0] == cnn.fc.weight[0, 0] else -1)}
    assert cascading_randomization(cnn, x, t, flips, seed=1, absolute=False).similarity["flip"][1:].max() < -0.999
    close(cascading_randomization(cnn, x, t, flips, seed=1).similarity["flip"], torch.ones(4, 3, dtype=torch.float64),
          1e-12)
    assert torch.equal(cascade.mean("saliency"), cascade.similarity["saliency"].mean(dim=1))
    with pytest.raises(ValueError, match="methods must be a non-empty dict"):
        cascading_randomization(cnn, x, t, {})
    with pytest.raises(ValueError, match="methods must be a non-empty dict"):
        cascading_randomization(cnn, x, t, {"x": 3})


def test_messages_name_the_bad_value_and_defaults(cnn, digits):
    x, t = digits
    with pytest.raises(ValueError, match=r"^x must be a tensor of shape \(N, C, H, W\), got list$"):
        saliency(cnn, [0.0], 1)
    with pytest.raises(ValueError, match=r"^target must be an int or 3 class indices"):
        saliency(cnn, x, torch.tensor([[1, 2, 3]]))
    with pytest.raises(ValueError, match=r"^size must be a positive int or a pair of them, got \(28, 28, 1\)$"):
        grad_cam(cnn, x, t, "relu2", size=(28, 28, 1))
    with pytest.raises(ValueError, match="^methods must be a non-empty dict"):
        cascading_randomization(cnn, x, t, {})
    with pytest.raises(ValueError, match=r"^v must be a non-empty 1-D tensor, got list$"):
        rankdata([1.0, 2.0])
    with pytest.raises(ValueError, match=r"^v must be a non-empty 1-D tensor, got \(2, 2\)$"):
        rankdata(torch.zeros(2, 2))
    with pytest.raises(ValueError, match=r"got torch.Size\(\[3\]\) and \[1.0, 2.0, 3.0\]$"):
        spearman(torch.ones(3), [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match=r"got \[1.0, 2.0, 3.0\] and torch.Size\(\[3\]\)$"):
        spearman([1.0, 2.0, 3.0], torch.ones(3))
    # a small denominator is still a correlation; the defaults: nearest resizing, seed 0
    assert spearman(torch.tensor([0.0, 1.0]), torch.tensor([0.0, 1.0])) == pytest.approx(1.0, abs=1e-12)
    assert torch.equal(grad_cam(cnn, x, t, "relu2", size=28), grad_cam(cnn, x, t, "relu2", size=28, mode="nearest"))
    assert torch.equal(randomize_top(cnn, 1).fc.weight, randomize_top(cnn, 1, seed=0).fc.weight)
    # the layer i-th from the top is drawn with seed + i
    conv2 = dict(cnn.named_modules())["conv2"]
    expected = nn.Conv2d(8, 16, 5, padding=2).double()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(5 + 1)
        expected.reset_parameters()
    assert torch.equal(randomize_top(cnn, 2, seed=5).conv2.weight, expected.weight)
    assert conv2.weight.shape == expected.weight.shape
    default = cascading_randomization(cnn, x[:1], t[:1], {"saliency": saliency})
    assert torch.equal(default.maps["saliency"], cascading_randomization(cnn, x[:1], t[:1], {"saliency": saliency},
                                                                         seed=0).maps["saliency"])
