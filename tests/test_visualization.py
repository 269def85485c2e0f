"""Oracles for course_lib.visualization: switches, the deconvnet against the modified gradient, the regularizers'
invariants, reproducibility, and the overlap maps of transposed convolutions."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from course_lib.visualization import (ascent_step, BoundedRange, ClipSmallContribution, ClipSmallNorm, DeconvNet, GaussianBlur,
                                      Jitter, L2Decay, TotalVariation, alpha_norm, capture, channel,
                                      checkerboard_score, feature_grid, gaussian_blur, invert, maximize,
                                      modified_backprop, neuron, overlap_map, parity_energies, top_activating,
                                      total_variation, unpool)


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
