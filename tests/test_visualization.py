"""Oracles for course_lib.visualization: switches, the deconvnet against the modified gradient, the regularizers'
invariants, reproducibility, and the overlap maps of transposed convolutions."""

import itertools
import math
import re

import pytest
import torch
import torch.nn.functional as F
import torchvision.transforms.functional as TF
from torch import nn

from course_lib.visualization import (ascent_step, BoundedRange, ClipSmallContribution, ClipSmallNorm, DeconvNet, GaussianBlur,
                                      Jitter, L2Decay, Objective, Reconstruction, TotalVariation, alpha_norm, capture,
                                      channel, checkerboard_score, feature_grid, gaussian_blur, invert, logit, maximize,
                                      modified_backprop, neuron, overlap_map, parity_energies, top_activating,
                                      total_variation, unpool)
from messages import exactly


def small_cnn(dtype=torch.float64, seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        nn.Conv2d(4, 6, 3, stride=2, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(6 * 4 * 4, 5),
    ).to(dtype).eval()


# --- capture ---------------------------------------------------------------------------------------------

def test_capture_copies_outputs_before_an_inplace_relu_and_removes_its_hooks():
    model = small_cnn()
    x = torch.randn(3, 1, 32, 32, dtype=torch.float64)
    with capture(model, ["0", "1"]) as rec:
        model(x)
    assert rec["0"].min() < 0, "the convolution's own output has negative values"
    assert rec["1"].min() == 0 and torch.equal(rec["1"], rec["0"].clamp_min(0))
    assert all(not m._forward_hooks for m in model.modules())
    naive = {}
    handle = model[0].register_forward_hook(lambda m, i, o: naive.__setitem__("0", o))  # keeps a reference
    model(x)
    handle.remove()
    assert naive["0"].min() == 0, "a naive hook sees the in-place ReLU's result"


def test_capture_removes_hooks_even_when_the_forward_pass_fails():
    model = small_cnn()
    with pytest.raises(RuntimeError):
        with capture(model, ["0"]):
            model(torch.randn(1, 3, 32, 32, dtype=torch.float64))  # wrong number of channels
    assert not model[0]._forward_hooks
    with pytest.raises(ValueError, match="no module named"):
        with capture(model, ["conv9"]):
            pass


def test_feature_grid_and_top_activating():
    maps = torch.arange(2 * 3 * 4, dtype=torch.float32).reshape(2 * 3, 2, 2)[:5]
    grid = feature_grid(maps, columns=3, padding=1)
    assert grid.shape == (2 * 3, 3 * 3) and torch.isnan(grid[2]).all()
    assert grid[:2, :2].min() == 0 and grid[:2, :2].max() == 1  # per-channel scaling
    model = small_cnn()
    data = torch.randn(40, 1, 32, 32, dtype=torch.float64)
    top = top_activating(model, "3", channel=2, batches=data.split(7), k=5)
    with torch.no_grad():
        best = model[:4](data)[:, 2].amax(dim=(1, 2))
    assert torch.allclose(top.values, best.sort(descending=True).values[:5])
    assert torch.equal(top.inputs, data[top.indices])


def test_feature_grid_lays_out_tiles_row_by_row_between_nan_padding():
    maps = torch.tensor([[[0.0, 1.0], [2.0, 3.0]],  # range 3
                         [[5.0, 5.5], [5.25, 5.0]],  # range 0.5: scaled up, not clamped to a range of 1
                         [[-1.0, -1.0], [-1.0, -1.0]]])  # constant: all 0
    nan = float("nan")
    expected = torch.tensor([[0.0, 1 / 3, nan, 0.0, 1.0, nan],
                             [2 / 3, 1.0, nan, 0.5, 0.0, nan],
                             [nan] * 6,
                             [0.0, 0.0, nan, nan, nan, nan],
                             [0.0, 0.0, nan, nan, nan, nan],
                             [nan] * 6])
    torch.testing.assert_close(feature_grid(maps, columns=2, padding=1), expected, equal_nan=True)
    torch.testing.assert_close(feature_grid(maps, channels=[1, 0], normalize="none", columns=2, padding=0),
                               torch.cat([maps[1], maps[0]], dim=1))


def test_feature_grid_defaults_eight_columns_padding_one_per_channel_scaling():
    maps = torch.randn(10, 2, 3, generator=torch.Generator().manual_seed(0))
    grid = feature_grid(maps)
    assert grid.shape == (2 * (2 + 1), 8 * (3 + 1))
    torch.testing.assert_close(grid, feature_grid(maps, columns=8, normalize="per_channel", padding=1),
                               equal_nan=True)


def test_feature_grid_global_scaling_no_scaling_and_nearest_upsampling():
    maps = torch.tensor([[[0.2, 0.4]], [[0.6, 0.3]]])  # global range 0.4
    torch.testing.assert_close(feature_grid(maps, normalize="global", columns=2, padding=0),
                               torch.tensor([[0.0, 0.5, 1.0, 0.25]]))
    torch.testing.assert_close(feature_grid(maps, normalize="none", columns=2, padding=0),
                               torch.tensor([[0.2, 0.4, 0.6, 0.3]]))
    small = torch.tensor([[[1.0, 2.0], [3.0, 4.0]]])
    torch.testing.assert_close(feature_grid(small, normalize="none", upsample_to=(4, 4), columns=1, padding=0),
                               small[0].repeat_interleave(2, dim=0).repeat_interleave(2, dim=1))


def test_feature_grid_rejects_bad_arguments_with_a_message():
    with pytest.raises(ValueError, match=r"^maps must be \(C, H, W\) feature maps of one sample, got shape "
                                         r"\(1, 2, 3, 4\)$"):
        feature_grid(torch.zeros(1, 2, 3, 4))
    with pytest.raises(ValueError, match=r"^normalize must be 'per_channel', 'global' or 'none', got 'all'$"):
        feature_grid(torch.zeros(2, 3, 4), normalize="all")


# --- deconvnet -------------------------------------------------------------------------------------------

def test_unpooling_puts_each_maximum_back_at_its_switch():
    a = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    pooled, switches = F.max_pool2d(a, 2, return_indices=True)
    u = unpool(pooled, switches, a.shape)
    assert torch.equal(u, F.max_unpool2d(pooled, switches, 2))
    nonzero = u != 0
    assert torch.equal(u[nonzero], a[nonzero])  # values equal a at the argmax positions
    windows = nonzero.reshape(2, 3, 4, 2, 4, 2).sum(dim=(3, 5))
    assert windows.max() <= 1  # at most one non-zero per window


def test_explicit_deconvnet_equals_the_modified_relu_gradient():
    model = small_cnn()
    deconv = DeconvNet(model)
    x = torch.randn(3, 1, 32, 32, dtype=torch.float64)
    for layer, ch in [("4", 1), ("3", 5), ("1", 2), ("7", 3)]:
        for position in ("max", "all"):
            if layer == "7" and position == "all":
                continue
            explicit = deconv.project(x, layer, ch, position)
            gradient = modified_backprop(model, x, layer, ch, position, rule="deconv")
            assert explicit.shape == x.shape and explicit.abs().max() > 0
            assert (explicit - gradient).abs().max() <= 1e-12 * explicit.abs().max()


def test_guided_backprop_differs_from_deconv_only_by_the_forward_mask():
    torch.manual_seed(3)
    model = nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(), nn.Conv2d(3, 2, 3)).double()
    x = torch.randn(1, 1, 10, 10, dtype=torch.float64)
    deconv = modified_backprop(model, x, "2", 0, "all", rule="deconv")
    guided = modified_backprop(model, x, "2", 0, "all", rule="guided")
    assert not torch.allclose(deconv, guided)
    with torch.no_grad():
        model[0].bias.fill_(100.0)  # every forward ReLU active: the mask is all ones, the rules coincide
    assert torch.allclose(modified_backprop(model, x, "2", 0, "all", rule="deconv"),
                          modified_backprop(model, x, "2", 0, "all", rule="guided"), atol=0, rtol=0)


def test_the_deconvnet_is_linear_in_its_start_signal():
    model = small_cnn()
    deconv = DeconvNet(model)
    x = torch.randn(1, 1, 32, 32, dtype=torch.float64)
    activation, records = deconv.forward(x, "4")
    start = torch.zeros_like(activation)
    start[0, 2, 1, 1] = 1.0
    one = deconv.backward(start, "4", records)
    assert torch.allclose(deconv.backward(3.5 * start, "4", records), 3.5 * one, atol=1e-14)
    with torch.no_grad():
        model[0].bias.add_(0.0)  # biases never enter the backward pass: change them after the switches are fixed
        model[3].bias.fill_(5.0)
    assert torch.equal(deconv.backward(start, "4", records), one)


def test_deconvnet_rejects_layers_it_cannot_mirror():
    with pytest.raises(ValueError, match="BatchNorm2d"):
        DeconvNet(nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.ReLU()))
    with pytest.raises(ValueError, match="position must be"):
        DeconvNet(small_cnn()).project(torch.randn(1, 1, 32, 32, dtype=torch.float64), "1", 0, position=(99, 0))


def test_unpooling_needs_only_the_spatial_size_of_a_non_square_input():
    a = torch.randn(2, 3, 6, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    pooled, switches = F.max_pool2d(a, 2, return_indices=True)
    expected = F.max_unpool2d(pooled, switches, 2, output_size=(6, 8))
    assert torch.equal(unpool(pooled, switches, a.shape), expected)
    assert torch.equal(unpool(pooled, switches, (6, 8)), expected)


def test_relu_backward_rules_by_hand():
    """A ReLU, then a 3×3 convolution read at its centre: the signal reaching the ReLU is A·K, and the three rules
    give g·[x > 0] (vanilla), relu(g) (deconv), relu(g)·[x > 0] (guided)."""
    model = nn.Sequential(nn.ReLU(), nn.Conv2d(1, 1, 3, padding=1)).double()
    K = torch.tensor([[1.0, -2.0, 0.5], [3.0, 1.0, -1.0], [2.0, 4.0, -3.0]], dtype=torch.float64)
    with torch.no_grad():
        model[1].weight.copy_(K[None, None])
        model[1].bias.fill_(10.0)
    x = torch.tensor([[0.0, 2.0, -1.0], [0.5, -2.0, 1.5], [-0.5, 3.0, 0.0]], dtype=torch.float64)[None, None]
    a = float((K * x.clamp_min(0)).sum() + 10.0)  # the start: the activation at (1, 1)
    g = a * K
    on = (x[0, 0] > 0).double()
    expected = {"vanilla": g * on, "deconv": g.clamp_min(0), "guided": g.clamp_min(0) * on}
    for rule, image in expected.items():
        assert torch.allclose(modified_backprop(model, x, "1", 0, (1, 1), rule=rule)[0, 0], image, rtol=0,
                              atol=1e-12), rule
    assert torch.allclose(DeconvNet(model).project(x, "1", 0, (1, 1))[0, 0], expected["deconv"], rtol=0, atol=1e-12)


def test_start_signal_seen_through_an_identity_network():
    """Through nn.Identity the deconvnet image is the start signal itself: zero except one channel, at each
    sample's own maximum ("max", the default), everywhere ("all") or at one (row, column)."""
    model = nn.Sequential(nn.Identity())
    x = torch.randn(2, 3, 4, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    x[0, 1, 3, 0] = 10.0
    x[1, 1, 0, 4] = 10.0
    at_max = torch.zeros_like(x)
    at_max[0, 1, 3, 0] = at_max[1, 1, 0, 4] = 10.0
    for rule in ("deconv", "guided", "vanilla"):
        assert torch.equal(modified_backprop(model, x, "0", 1, rule=rule), at_max)
    assert torch.equal(modified_backprop(model, x, "0", 1), at_max)
    assert torch.equal(DeconvNet(model).project(x, "0", 1), at_max)
    everywhere = torch.zeros_like(x)
    everywhere[:, 1] = x[:, 1]
    assert torch.equal(modified_backprop(model, x, "0", 1, "all"), everywhere)
    for row, col in [(0, 0), (1, 3), (3, 4)]:
        one = torch.zeros_like(x)
        one[:, 1, row, col] = x[:, 1, row, col]
        assert torch.equal(modified_backprop(model, x, "0", 1, (row, col)), one)
        assert torch.equal(DeconvNet(model).project(x, "0", 1, (row, col)), one)
    for position in [(4, 0), (0, 5), (-1, 0), (0, -1), (1, 2, 3), "min"]:
        message = f"position must be 'max', 'all' or (row, column) inside 4×5, got {position!r}"
        with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
            modified_backprop(model, x, "0", 1, position)
    for bad in (3, -1):
        with pytest.raises(ValueError, match=rf"^channel must be in \[0, 2\], got {bad}$"):
            DeconvNet(model).project(x, "0", bad)


def test_deconvnet_and_modified_backprop_error_messages():
    model = nn.Sequential(nn.Identity())
    assert DeconvNet(model).model is model
    x = torch.zeros(1, 1, 2, 2)
    with pytest.raises(ValueError, match=r"^layer must be one of \['0'\], got '1'$"):
        DeconvNet(model).project(x, "1", 0)
    with pytest.raises(ValueError, match=r"^layer must be one of \['0'\], got '1'$"):
        modified_backprop(model, x, "1", 0)
    with pytest.raises(ValueError, match=r"^rule must be 'deconv', 'guided' or 'vanilla', got 'gradient'$"):
        modified_backprop(model, x, "0", 0, rule="gradient")
    with pytest.raises(ValueError, match=r"^model: layer '1' is a BatchNorm2d; the deconvnet mirrors only Conv2d, "
                                         r"ReLU, MaxPool2d, Flatten, Linear, Dropout, Identity$"):
        DeconvNet(nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.ReLU()))


# --- activation maximization ---------------------------------------------------------------------------

def test_same_seed_same_image_and_plain_ascent_never_decreases():
    model = small_cnn(torch.float32)
    kwargs = dict(shape=(1, 1, 32, 32), steps=60, lr=0.05, jitter=Jitter(1), seed=7)
    a = maximize(model, channel("3", 1), **kwargs)
    b = maximize(model, channel("3", 1), **kwargs)
    assert torch.equal(a.image, b.image) and a.history == b.history
    assert a.history[-1] > a.history[0]  # with jitter: not monotone, but better at the end
    plain = maximize(model, channel("3", 1), shape=(1, 1, 32, 32), steps=100, lr=0.01, seed=0)
    decreases = sum(later < earlier for earlier, later in zip(plain.history, plain.history[1:]))
    assert decreases == 0 and plain.history[-1] > plain.history[0]


def test_l2_decay_bounds_the_image_norm():
    # x_t = (1 − θ)(x_{t−1} + s_t) with ‖s_t‖ ≤ S gives ‖x_t‖ ≤ S(1 − θ)/θ; ascent_step's s_t = η·g/mean|g|
    g = torch.Generator().manual_seed(0)
    lr, theta = 0.5, 0.1
    x, largest_step = torch.zeros(1, 1, 6, 6), 0.0
    for step in range(1, 400):
        grad = torch.randn(1, 1, 6, 6, generator=g) + 0.5  # a persistent direction, as in an ascent
        largest_step = max(largest_step, float((lr * grad / grad.abs().mean()).norm()))
        x = ascent_step(x, grad, lr, step, [L2Decay(theta)])
        assert x.norm() <= largest_step * (1 - theta) / theta + 1e-5
    model = small_cnn(torch.float32)
    free = maximize(model, neuron("3", 0), (1, 1, 32, 32), steps=150, lr=lr)
    decayed = maximize(model, neuron("3", 0), (1, 1, 32, 32), steps=150, lr=lr, regularizers=[L2Decay(0.05)])
    assert decayed.image.norm() < free.image.norm() / 3


def test_blur_removes_high_frequencies():
    x = torch.randn(1, 1, 32, 32, generator=torch.Generator().manual_seed(0))

    window = torch.hann_window(32, periodic=False)
    window = window[:, None] * window[None, :]  # no leakage from the image's borders into high frequencies

    def high_fraction(img):
        spectrum = torch.fft.fft2(img[0, 0] * window).abs() ** 2
        f = torch.fft.fftfreq(32).abs()
        high = (f[:, None] > 0.25) | (f[None, :] > 0.25)
        return float(spectrum[high].sum() / spectrum.sum())

    once = gaussian_blur(x, 1.0)
    four_times = gaussian_blur(gaussian_blur(gaussian_blur(once, 1.0), 1.0), 1.0)  # as with every=1 for 4 steps
    assert high_fraction(x) > 0.5 and high_fraction(once) < 0.1 and high_fraction(four_times) < 1e-3
    assert torch.allclose(gaussian_blur(torch.full((1, 2, 9, 9), 3.0), 1.5), torch.full((1, 2, 9, 9), 3.0))
    assert torch.equal(GaussianBlur(1.0, every=4).project(x, x, 3), x)  # only every 4th step


def test_blur_and_alpha_norm_take_only_batches_of_images():
    # One image without its batch dimension would be read as (C, H, W) = (N, C, H) and give a wrong answer.
    image = torch.rand(3, 8, 8)
    for fn in (lambda x: gaussian_blur(x, 1.0), alpha_norm):
        with pytest.raises(ValueError, match=exactly("x must be a batch of images (N, C, H, W), got shape (3, 8, 8)")):
            fn(image)
    for sigma in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match=exactly(f"sigma must be > 0, got {sigma!r}")):
            gaussian_blur(image[None], sigma)


def test_clipping_zeroes_the_smallest_pixels():
    g = torch.Generator().manual_seed(1)
    x, grad = torch.randn(2, 3, 10, 10, generator=g), torch.randn(2, 3, 10, 10, generator=g)
    clipped = ClipSmallNorm(20).project(x, grad, 1)
    zero = (clipped.norm(dim=1) == 0).float().mean(dim=(1, 2))
    assert torch.allclose(zero, torch.full((2,), 0.20))
    norms = x.norm(dim=1)
    for n in range(2):  # per image: every zeroed pixel had a smaller norm than every kept one
        zeroed = clipped[n].norm(dim=0) == 0
        assert norms[n][zeroed].max() <= norms[n][~zeroed].min()
    contribution = (x * grad).sum(dim=1).abs()
    clipped = ClipSmallContribution(30).project(x, grad, 1)
    removed = clipped.norm(dim=1) == 0
    assert torch.allclose(removed.float().mean(dim=(1, 2)), torch.full((2,), 0.30))
    for n in range(2):
        assert contribution[n][removed[n]].max() <= contribution[n][~removed[n]].min()


def test_bounded_range_hard_constraint_and_soft_penalty():
    model = small_cnn(torch.float32)
    B = 0.7
    r = maximize(model, channel("3", 2), (1, 1, 32, 32), steps=40, lr=0.5, regularizers=[BoundedRange(B, 6, 1.0)],
                 record_every=1)
    assert all(s.norm(dim=1).max() <= B + 1e-6 for s in r.snapshots)
    x = torch.randn(1, 3, 5, 4)
    expected = (x.norm(dim=1) ** 6).sum() / (5 * 4 * 2.0**6)
    assert torch.allclose(alpha_norm(x, B=2.0, alpha=6), expected)
    assert torch.allclose(BoundedRange(B=2.0, alpha=6, weight=3.0).penalty(x), 3 * expected)


def test_total_variation_is_zero_on_constants_and_positive_on_stripes():
    assert total_variation(torch.full((1, 3, 8, 8), 0.4)) == 0
    stripes = torch.zeros(1, 1, 8, 8)
    stripes[..., ::2] = 1.0  # vertical stripes
    assert total_variation(stripes) > 0 and total_variation(stripes.transpose(-1, -2)) > 0
    assert TotalVariation(weight=2.0).penalty(stripes) == 2 * total_variation(stripes)


def test_dead_start_is_reported():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU()).eval()
    with torch.no_grad():
        model[0].bias.fill_(-100.0)  # inactive everywhere at the start
    with pytest.raises(ValueError, match="dead start"):
        maximize(model, channel("1", 0), (1, 1, 8, 8), steps=5)
    r = maximize(model, channel("0", 0), (1, 1, 8, 8), steps=5)  # the pre-activation has a gradient
    assert r.history[-1] > r.history[0]


def test_inversion_matches_the_representation():
    model = small_cnn(torch.float32)
    image = torch.randn(1, 1, 32, 32, generator=torch.Generator().manual_seed(2))
    r = invert(model, "1", image, steps=150, lr=0.02)
    assert r.history[-1] > 0.7 * r.history[0] and r.history[-1] > -0.5


def linear_unit(shape, seed=0):
    """A network whose only unit is w·x: the gradient of its objective is w wherever x is."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(math.prod(shape), 1, bias=False)).eval()
    return model, model[1].weight.detach().reshape(shape)


def test_objective_reads_a_channel_mean_a_neuron_or_a_linear_unit():
    a = torch.arange(2 * 3 * 6 * 5, dtype=torch.float64).reshape(2, 3, 6, 5)  # N = 2, C = 3, H = 6, W = 5
    assert channel("c", 1)(a) == a[:, 1].mean(dim=(1, 2)).sum()  # each image's mean, summed over the batch
    assert neuron("c", 1)(a) == a[:, 1, 3, 2].sum()  # the centre (H // 2, W // 2)
    assert neuron("c", 1, (1, 4))(a) == a[:, 1, 1, 4].sum()
    scores = torch.tensor([[1.0, -2.0, 3.0], [4.0, 5.0, -6.0]])  # a Linear layer's output (N, units)
    assert logit("fc", 2)(scores) == -3.0 and Objective("fc", 0, "neuron")(scores) == 5.0
    assert channel("c", 1) == Objective("c", 1, "channel", None)
    assert neuron("c", 1) == Objective("c", 1, "neuron", None)
    assert neuron("c", 1, (1, 4)) == Objective("c", 1, "neuron", (1, 4))
    assert logit("fc", 2) == Objective("fc", 2, "channel", None)
    for bad in (3, -1):
        with pytest.raises(ValueError, match=rf"^channel must be in \[0, 2\] for 'c', got {bad}$"):
            channel("c", bad)(a)


def test_regularizers_accept_their_boundary_values_and_reject_the_rest_with_a_message():
    x = torch.randn(1, 2, 6, 6, generator=torch.Generator().manual_seed(0))
    assert torch.equal(L2Decay(0.0).project(x, x, 1), x)
    assert torch.equal(ClipSmallNorm(0.0).project(x, x, 1), x)
    assert (ClipSmallNorm(100.0).project(x, x, 1) == 0).all()
    for accepted in (lambda: GaussianBlur(0.1, every=1), lambda: BoundedRange(B=0.1, alpha=0.5, weight=0.0),
                     lambda: BoundedRange(weight=0.5), lambda: TotalVariation(weight=0.0, beta=1.0),
                     lambda: TotalVariation(weight=0.5, beta=0.5), lambda: Jitter(0)):
        accepted()
    assert Jitter(0).offsets(torch.Generator().manual_seed(0)) == (0, 0)
    blur = "sigma must be > 0 and every a positive integer, got sigma={}, every={}"
    bounded = "need B > 0, alpha > 0, weight ≥ 0; got B={}, alpha={}, weight={}"
    tv = "need weight ≥ 0 and beta > 0; got weight={}, beta={}"
    rejected = [
        (lambda: L2Decay(1.0), "decay must be in [0, 1), got 1.0"),
        (lambda: L2Decay(-0.1), "decay must be in [0, 1), got -0.1"),
        (lambda: GaussianBlur(0.0), blur.format(0.0, 4)),
        (lambda: GaussianBlur(1.0, every=0), blur.format(1.0, 0)),
        (lambda: GaussianBlur(1.0, every=2.0), blur.format(1.0, 2.0)),
        (lambda: ClipSmallNorm(100.5), "percent must be in [0, 100], got 100.5"),
        (lambda: ClipSmallContribution(-1.0), "percent must be in [0, 100], got -1.0"),
        (lambda: BoundedRange(B=0.0), bounded.format(0.0, 6.0, 1.0)),
        (lambda: BoundedRange(alpha=0.0), bounded.format(1.0, 0.0, 1.0)),
        (lambda: BoundedRange(weight=-1.0), bounded.format(1.0, 6.0, -1.0)),
        (lambda: TotalVariation(weight=-0.1), tv.format(-0.1, 2.0)),
        (lambda: TotalVariation(beta=0.0), tv.format(0.1, 0.0)),
        (lambda: Jitter(-1), "pixels must be a non-negative integer, got -1"),
        (lambda: Jitter(1.5), "pixels must be a non-negative integer, got 1.5"),
    ]
    for make, message in rejected:
        with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
            make()


def test_regularizer_defaults():
    x = torch.randn(1, 2, 10, 10, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    for step in range(1, 9):  # GaussianBlur(): σ = 1 every 4th step
        expected = gaussian_blur(x, 1.0) if step in (4, 8) else x
        assert torch.equal(GaussianBlur().project(x, x, step), expected)
    assert int((ClipSmallNorm().project(x, x, 1).norm(dim=1) == 0).sum()) == 20  # 20 % of 100 pixels
    sixth = (x.norm(dim=1) ** 6).sum() / 100  # B = 1, α = 6
    assert torch.allclose(alpha_norm(x), sixth) and torch.allclose(BoundedRange().penalty(x), sixth)
    assert torch.allclose(TotalVariation().penalty(x), 0.1 * total_variation(x, 2.0))
    g = torch.Generator().manual_seed(0)
    offsets = {value for _ in range(200) for value in Jitter().offsets(g)}
    assert offsets == {-2, -1, 0, 1, 2}


def total_variation_by_loops(x, beta):
    n, c, h, w = x.shape
    return sum(((x[k, l, i + 1, j] - x[k, l, i, j]) ** 2 + (x[k, l, i, j + 1] - x[k, l, i, j]) ** 2) ** (beta / 2)
               for k, l, i, j in itertools.product(range(n), range(c), range(h - 1), range(w - 1)))


def test_total_variation_and_the_penalties_against_their_formulas():
    x = torch.randn(2, 2, 4, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    for beta in (1.0, 2.0, 3.0):
        assert torch.allclose(total_variation(x, beta), total_variation_by_loops(x, beta))
    assert torch.allclose(total_variation(x), total_variation_by_loops(x, 2.0))
    assert torch.allclose(TotalVariation(weight=2.0, beta=1.0).penalty(x), 2 * total_variation_by_loops(x, 1.0))
    expected = (x.norm(dim=1) ** 2).sum() / (4 * 5 * 0.5**2)
    assert torch.allclose(BoundedRange(B=0.5, alpha=2.0, weight=3.0).penalty(x), 3 * expected)


def test_bounded_range_projects_each_pixel_onto_the_ball_of_radius_B():
    x = torch.zeros(2, 3, 2, 2, dtype=torch.float64)
    x[0, :, 0, 0] = torch.tensor([3.0, 4.0, 0.0])  # norm 5: scaled back to norm 2.5
    x[1, :, 1, 0] = torch.tensor([0.0, 1.0, 1.0])  # norm √2: kept
    x[1, :, 0, 1] = torch.tensor([0.0, 0.0, -6.0])
    expected = x.clone()
    expected[0, :, 0, 0] = torch.tensor([1.5, 2.0, 0.0])
    expected[1, :, 0, 1] = torch.tensor([0.0, 0.0, -2.5])
    assert torch.allclose(BoundedRange(B=2.5).project(x, x, 1), expected, rtol=0, atol=1e-12)
    assert torch.equal(BoundedRange(B=2.5, hard=False).project(x, x, 1), x)


def test_clipping_percentages_round_to_a_pixel_count():
    x = torch.randn(2, 3, 10, 10, generator=torch.Generator().manual_seed(0))  # 100 pixels per image
    for percent in (0, 1, 20, 100):
        clipped = ClipSmallNorm(percent).project(x, x, 1)
        zeroed = clipped.norm(dim=1) == 0
        assert zeroed.sum(dim=(1, 2)).tolist() == [percent, percent]
        assert torch.equal(clipped.permute(0, 2, 3, 1)[~zeroed], x.permute(0, 2, 3, 1)[~zeroed])


def test_ascent_step_gives_each_projection_the_gradient_and_the_step_number():
    g = torch.Generator().manual_seed(0)
    x, grad = torch.randn(1, 2, 6, 6, generator=g), torch.randn(1, 2, 6, 6, generator=g)
    regularizers = [ClipSmallContribution(25), GaussianBlur(1.0, every=3)]
    moved = x + 0.5 * grad / grad.abs().mean()
    clipped = ClipSmallContribution(25).project(moved, grad, 1)
    assert torch.allclose(ascent_step(x, grad, 0.5, 3, regularizers), gaussian_blur(clipped, 1.0))
    assert torch.allclose(ascent_step(x, grad, 0.5, 2, regularizers), clipped)


def test_gaussian_blur_equals_torchvision_with_a_kernel_of_radius_ceil_3_sigma():
    x = torch.randn(2, 3, 12, 11, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    for sigma in (0.3, 0.7, 1.0, 1.6):
        size = 2 * max(1, math.ceil(3 * sigma)) + 1
        expected = TF.gaussian_blur(x, [size, size], [sigma, sigma])  # reflected borders
        assert torch.allclose(gaussian_blur(x, sigma), expected, rtol=0, atol=1e-13), sigma


def test_gaussian_blur_replicates_the_border_of_an_image_no_larger_than_the_radius():
    x = torch.randn(1, 2, 3, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    t = torch.arange(-3, 4, dtype=torch.float64)  # σ = 1: radius 3 = the image's height
    kernel = torch.exp(-t**2 / 2)
    kernel = kernel / kernel.sum()
    weight = (kernel[:, None] * kernel[None, :]).expand(2, 1, 7, 7)
    expected = F.conv2d(F.pad(x, (3, 3, 3, 3), mode="replicate"), weight, groups=2)
    assert torch.allclose(gaussian_blur(x, 1.0), expected, rtol=0, atol=1e-13)


def test_maximize_on_a_linear_unit_steps_along_its_weights():
    """On a = w·x every step adds lr·w/mean|w|; defaults: 200 steps, lr 1, N(0, 0.1²) noise from seed 0."""
    shape = (1, 2, 5, 5)
    model, w = linear_unit(shape)
    x0 = torch.randn(shape, generator=torch.Generator().manual_seed(0)) * 0.1
    step = w / w.abs().mean()
    r = maximize(model, logit("1", 0), shape)
    assert len(r.history) == 201 and r.snapshots == []
    assert torch.allclose(r.image, x0 + 200 * step, rtol=1e-4, atol=1e-4)
    assert r.history[0] == pytest.approx(float((w * x0).sum()), rel=1e-5, abs=1e-6)
    assert r.history[-1] == pytest.approx(float((w * (x0 + 200 * step)).sum()), rel=1e-4)
    assert r.best_value == r.history[-1] == max(r.history) and torch.equal(r.best_image, r.image)
    short = maximize(model, logit("1", 0), shape, steps=6, lr=0.5, record_every=2)
    assert len(short.history) == 7 and len(short.snapshots) == 3
    for t, snapshot in zip((2, 4, 6), short.snapshots):
        assert torch.allclose(snapshot, x0 + 0.5 * t * step, atol=1e-5)
    assert short.best_value == short.history[-1] and torch.equal(short.best_image, short.image)
    one = maximize(model, logit("1", 0), shape, steps=1)
    assert len(one.history) == 2
    for steps in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match=f"^steps must be a positive integer, got {steps!r}$"):
            maximize(model, logit("1", 0), shape, steps=steps)
    with pytest.raises(ValueError, match=r"^objective.layer: no module named 'conv9'$"):
        maximize(model, channel("conv9", 0), shape, steps=1)


def test_maximize_accepts_flat_inputs_of_a_multilayer_perceptron():
    model = nn.Sequential(nn.Linear(6, 3))
    r = maximize(model, logit("0", 2), (1, 6), steps=2, lr=0.5)
    assert r.image.shape == (1, 6) and r.history[-1] > r.history[0]


def test_jitter_evaluates_a_shifted_image_and_shifts_the_gradient_back():
    shape, seed = (1, 2, 5, 5), 12
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(50, 4), nn.Tanh(), nn.Linear(4, 1)).eval()
    g = torch.Generator().manual_seed(seed)
    x0 = torch.randn(shape, generator=g) * 0.1
    dy, dx = Jitter(2).offsets(g)  # the same generator draws the offsets after the start
    assert (dy, dx) == (-1, 1)
    shifted = torch.roll(x0, shifts=(dy, dx), dims=(-2, -1)).requires_grad_(True)
    at_shifted, = torch.autograd.grad(model(shifted).sum(), shifted)  # the gradient at the shifted image ...
    grad = torch.roll(at_shifted, shifts=(-dy, -dx), dims=(-2, -1))  # ... moved back onto x's pixels
    r = maximize(model, logit("3", 0), shape, steps=1, lr=0.5, jitter=Jitter(2), seed=seed)
    assert torch.allclose(r.image, x0 + 0.5 * grad / grad.abs().mean(), atol=1e-6)
    with torch.no_grad():
        assert r.history[1] == pytest.approx(float(model(r.image)), rel=1e-5)  # without the jitter


def test_penalties_are_subtracted_before_the_gradient_and_projections_follow():
    shape = (1, 1, 5, 5)
    model, w = linear_unit(shape)
    init = torch.randn(shape, generator=torch.Generator().manual_seed(1))
    tv = TotalVariation(weight=0.5)
    r = maximize(model, logit("1", 0), shape, steps=1, lr=0.5, regularizers=[tv, GaussianBlur(0.8, every=1)],
                 init=init)
    x = init.clone().requires_grad_(True)
    grad, = torch.autograd.grad((w * x).sum() - tv.penalty(x), x)
    assert torch.allclose(r.image, gaussian_blur(init + 0.5 * grad / grad.abs().mean(), 0.8), atol=1e-6)
    assert r.history[0] == pytest.approx(float((w * init).sum()), rel=1e-5)


def test_best_image_is_the_first_to_reach_the_best_value():
    """A saturating unit keeps its value 1 while L2 decay still shrinks the image: the earliest image is kept."""
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 1, bias=False), nn.Hardtanh()).eval()
    with torch.no_grad():
        model[1].weight.fill_(1.0)
    x0 = torch.randn(1, 1, 2, 2, generator=torch.Generator().manual_seed(0)) * 0.1
    r = maximize(model, logit("2", 0), (1, 1, 2, 2), steps=4, lr=1.0, regularizers=[L2Decay(0.1)])
    assert r.history[1:] == [1.0] * 4 and r.best_value == 1.0
    assert torch.allclose(r.best_image, 0.9 * (x0 + 1.0)) and not torch.allclose(r.best_image, r.image)


def test_dead_start_stops_at_the_first_step_with_its_message():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU()).eval()
    with torch.no_grad():
        model[0].bias.fill_(-100.0)
    message = ("the gradient is exactly 0 at the start (a dead start: the unit is inactive behind a ReLU); maximize "
               "the pre-activation instead, or start from another image")
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        maximize(model, channel("1", 0), (1, 1, 8, 8), steps=1)


def test_reconstruction_objective_is_minus_the_relative_squared_error():
    target = torch.tensor([[0.3, -0.4]])  # ‖Φ(x₀)‖² = 0.25
    assert float(Reconstruction("l", target)(torch.tensor([[0.5, 0.0]]))) == pytest.approx(-0.2 / 0.25)
    assert float(Reconstruction("l", target)(target.clone())) == 0.0


def test_invert_maximizes_the_reconstruction_of_the_representation():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU()).eval()
    image = torch.randn(1, 1, 6, 6, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        target = Reconstruction("0", model[0](image))
    default = invert(model, "0", image)  # 200 steps, lr 0.05, no jitter, seed 0
    expected = maximize(model, target, (1, 1, 6, 6), steps=200, lr=0.05, seed=0)
    assert len(default.history) == 201 and torch.equal(default.image, expected.image)
    jittered = invert(model, "0", image, steps=5, lr=0.1, jitter=Jitter(1), seed=3)
    expected = maximize(model, target, (1, 1, 6, 6), steps=5, lr=0.1, jitter=Jitter(1), seed=3)
    assert torch.equal(jittered.image, expected.image)


# --- checkerboard -----------------------------------------------------------------------------------------

def test_overlap_maps_of_transposed_and_resize_convolutions():
    k3 = overlap_map(3, 2, padding=1, output_padding=1, size=8)
    interior = k3[2:-2, 2:-2]
    assert set(interior.unique().tolist()) == {1.0, 2.0, 4.0}
    assert k3.shape == (16, 16)
    assert set(overlap_map(4, 2, padding=1, size=8)[2:-2, 2:-2].unique().tolist()) == {4.0}
    assert set(overlap_map(3, 2, padding=1, size=8, resize=True)[2:-2, 2:-2].unique().tolist()) == {9.0}
    # a strided convolution's input gradient shows the same uneven overlap
    x = torch.ones(1, 1, 16, 16, requires_grad=True)
    F.conv2d(x, torch.ones(1, 1, 3, 3), stride=2, padding=1).sum().backward()
    assert set(x.grad[0, 0, 2:-2, 2:-2].unique().tolist()) == {1.0, 2.0, 4.0}


def test_parity_energies_of_random_upsamplings_show_1_2_2_4_only_for_k3_s2():
    g = torch.Generator().manual_seed(0)
    totals = {"k3s2": torch.zeros(2, 2, dtype=torch.float64), "k4s2": torch.zeros(2, 2, dtype=torch.float64),
              "resize": torch.zeros(2, 2, dtype=torch.float64)}
    for _ in range(20):
        x = torch.randn(4, 64, 16, 16, generator=g, dtype=torch.float64)
        w3 = torch.randn(64, 1, 3, 3, generator=g, dtype=torch.float64)
        w4 = torch.randn(64, 1, 4, 4, generator=g, dtype=torch.float64)
        wr = torch.randn(1, 64, 3, 3, generator=g, dtype=torch.float64)
        outs = {"k3s2": F.conv_transpose2d(x, w3, stride=2, padding=1, output_padding=1),
                "k4s2": F.conv_transpose2d(x, w4, stride=2, padding=1),
                "resize": F.conv2d(F.interpolate(x, scale_factor=2, mode="nearest"), wr, padding=1)}
        for name, out in outs.items():
            totals[name] += parity_energies(out[..., 2:-2, 2:-2]) / 20
    expected = torch.tensor([1.0, 2.0, 2.0, 4.0], dtype=torch.float64) / 2.25  # taps per parity class, over their mean
    assert torch.allclose(totals["k3s2"].flatten().sort().values, expected, rtol=0.1)
    assert torch.allclose(totals["k4s2"], torch.ones(2, 2, dtype=torch.float64), rtol=0.05)
    assert torch.allclose(totals["resize"], torch.ones(2, 2, dtype=torch.float64), rtol=0.05)
    assert checkerboard_score(torch.ones(6, 6)) == 0.0
    board = torch.ones(6, 6)
    board[::2, ::2] = 3.0
    assert checkerboard_score(board) > 1.0


def test_overlap_map_counts_the_taps_reaching_each_output_pixel():
    ones = torch.ones(1, 1, 8, 8, dtype=torch.float64)
    kernel = torch.ones(1, 1, 3, 3, dtype=torch.float64)
    default = overlap_map(3, 2)  # no padding, no output padding, an 8×8 input
    assert default.shape == (17, 17) and torch.equal(default, F.conv_transpose2d(ones, kernel, stride=2)[0, 0])
    per_axis = torch.tensor([1.0, 1.0, 2.0, 1.0, 1.0], dtype=torch.float64)  # 2 inputs, k = 3, s = 2
    assert torch.equal(overlap_map(3, 2, size=2), per_axis[:, None] * per_axis[None, :])
    assert torch.equal(overlap_map(3, 2, padding=1, output_padding=1, size=2), torch.tensor(
        [[1.0, 2.0, 1.0, 1.0], [2.0, 4.0, 2.0, 2.0], [1.0, 2.0, 1.0, 1.0], [1.0, 2.0, 1.0, 1.0]], dtype=torch.float64))
    resized = torch.tensor([[4.0, 6.0, 6.0, 4.0], [6.0, 9.0, 9.0, 6.0], [6.0, 9.0, 9.0, 6.0], [4.0, 6.0, 6.0, 4.0]],
                           dtype=torch.float64)
    assert torch.equal(overlap_map(3, 2, padding=1, size=2, resize=True), resized)
    assert torch.equal(overlap_map(1, 1, size=1), torch.ones(1, 1, dtype=torch.float64))
    for args, name, value in [((0, 2), "kernel_size", "0"), ((True, 2), "kernel_size", "True"),
                              ((3.0, 2), "kernel_size", "3.0"), ((3, 0), "stride", "0"), ((3, 2, 0, 0, 0), "size", "0")]:
        with pytest.raises(ValueError, match=rf"^{name} must be a positive integer, got {value}$"):
            overlap_map(*args)


def test_parity_energies_and_checkerboard_score_of_one_bright_parity_class():
    board = torch.ones(6, 6)
    board[::2, ::2] = 3.0  # energies 9 : 1 : 1 : 1, over their mean 3
    expected = torch.tensor([[3.0, 1 / 3], [1 / 3, 1 / 3]], dtype=torch.float64)
    assert torch.allclose(parity_energies(board), expected)
    assert torch.allclose(parity_energies(0.01 * board), expected)  # a ratio: small images alike
    assert checkerboard_score(board) == pytest.approx(math.sqrt(4 / 3))  # population standard deviation
    with pytest.raises(ValueError, match=r"^image must have at least 2 dimensions \(H, W\), got shape \(5,\)$"):
        parity_energies(torch.ones(5))


def test_blur_unpooling_and_reconstruction_work_on_the_device_of_their_input():
    """Tensors made inside these functions are made on the input's device, not on the default one: under another
    default device (the meta device, there on every machine, stands in for a GPU) CPU inputs give the same CPU
    results, and a target on the CPU is moved to the device of the activation it is compared with."""
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    pooled, switches = F.max_pool2d(x, 2, return_indices=True)
    expected = gaussian_blur(x, 1.0), unpool(pooled, switches, x.shape)
    with torch.device("meta"):
        found = gaussian_blur(x, 1.0), unpool(pooled, switches, x.shape)
    for value, reference in zip(found, expected):
        assert value.device.type == "cpu"
        assert torch.equal(value, reference)
    reconstruction = Reconstruction("layer", torch.ones(5))
    assert reconstruction(torch.zeros(5, device="meta")).device.type == "meta"
