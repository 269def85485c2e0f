"""Oracles for course_lib.compression: exact removal, Eckart–Young errors, MAC formulas against PyTorch's counter."""

import math
import time

import pytest
import torch
from torch import nn
from torch.nn.utils import prune as torch_prune
from torch.utils.flop_counter import FlopCounterMode

from course_lib.compression import (DepthwiseSeparableConv, Separable1D, activation_stats, conv_macs,
                                    conv_transpose_macs, count_macs, count_params, depthwise_separable_macs,
                                    find_chains, flop_counter_macs, kernel_matrix, kmeans_1d, measure_latency,
                                    merge_always_active, prune_dead_units, prune_units, rebuilt_kernel,
                                    separable1d_macs, separable_factorize_conv, share_weights, state_dict_bytes,
                                    svd_factorize_linear)
from course_lib.compression_experiments import autoencoder, run_sum_toy
from course_lib.layers import BatchNorm2d as CourseBatchNorm2d


def dead_mlp(dtype=torch.float32, width=200, seed=0):
    """A 2 → width → width → 1 ReLU MLP where many hidden units are dead on U(0, 1) inputs (negative biases)."""
    g = torch.Generator().manual_seed(seed)
    model = nn.Sequential(nn.Linear(2, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, 1))
    with torch.no_grad():
        for layer in (model[0], model[2], model[4]):
            layer.weight.copy_(torch.randn(layer.weight.shape, generator=g) / layer.in_features**0.5)
            layer.bias.copy_(torch.randn(layer.bias.shape, generator=g) * 0.1)
        model[0].bias[: width // 2] = -10.0  # units 0..width/2−1 of layer 1 never fire on inputs in [0, 1]²
    x = torch.rand(512, 2, generator=g)
    return model.to(dtype), x.to(dtype)


def prune_dead(model, x):
    chains = find_chains(model, x[:2])
    prune_dead_units(chains, activation_stats(model, [x], layers=list(chains)).dead())
    return chains


# --- activation statistics -------------------------------------------------------------------------------

def test_apoz_is_the_fraction_of_zeros_per_channel_and_independent_of_the_batch_size():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU())
    x = torch.randn(23, 3, 6, 6)
    with torch.no_grad():
        out = model(x)
    manual = (out == 0).double().mean(dim=(0, 2, 3))
    counts = []
    for bs in (1, 7, 23):
        s = activation_stats(model, list(x.split(bs)))["1"]
        assert s.observations == 23 * 36
        assert torch.allclose(s.apoz, manual, atol=0, rtol=1e-15)
        assert torch.allclose(s.mean, out.double().mean(dim=(0, 2, 3)))
        assert torch.allclose(s.max, out.double().amax(dim=(0, 2, 3)), rtol=1e-6)  # conv rounding varies with batch
        counts.append(s.active)
    assert torch.equal(counts[0], counts[1]) and torch.equal(counts[1], counts[2])


def test_stats_are_taken_after_batchnorm_not_on_the_raw_convolution():
    torch.manual_seed(1)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(inplace=True))
    with torch.no_grad():
        model[1].running_mean.fill_(2.0)  # shifts every channel: the BN changes which values are positive
        model[1].bias.copy_(torch.tensor([0.0, 1.0, -1.0, 3.0]))
    x = torch.randn(16, 1, 8, 8)
    ours = activation_stats(model, [x])["2"].apoz
    model.eval()
    with torch.no_grad():
        naive = (torch.relu(model[0](x)) == 0).double().mean(dim=(0, 2, 3))  # what a hook on the conv + own ReLU sees
        true = (model(x) == 0).double().mean(dim=(0, 2, 3))
    assert torch.allclose(ours, true) and not torch.allclose(ours, naive)


def test_stats_restore_the_training_mode_and_remove_their_hooks():
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU())
    model.train()
    activation_stats(model, [torch.randn(5, 3)])
    assert model.training and not model[1]._forward_hooks
    with pytest.raises(ValueError, match="no module named"):
        activation_stats(model, [torch.randn(5, 3)], layers=["relu"])


# --- removing units ------------------------------------------------------------------------------------

def test_removing_dead_units_leaves_outputs_unchanged_float32_and_float64():
    for dtype, tol in [(torch.float32, 1e-5), (torch.float64, 1e-12)]:
        model, x = dead_mlp(dtype)
        with torch.no_grad():
            before = model(x)
        params = count_params(model)
        chains = prune_dead(model, x)
        assert chains["1"].width <= 100  # at least the 100 units with bias −10
        assert count_params(model) < params
        with torch.no_grad():
            after = model(x)
        assert (after - before).abs().max() <= tol
        # a second pass finds nothing more to remove, and then nothing changes at all
        prune_dead(model, x)
        with torch.no_grad():
            assert torch.equal(model(x), after)


def test_dead_means_dead_on_the_data_only():
    model, x = dead_mlp(torch.float64)
    outside = torch.full((1, 2), 50.0, dtype=torch.float64)  # far outside [0, 1]²: the −10 biases are overcome
    with torch.no_grad():
        before = model(outside)
    prune_dead(model, x)
    with torch.no_grad():
        assert (model(outside) - before).abs().max() > 1e-3


def conv_chain_model(norm=nn.BatchNorm2d):
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 6, 3, stride=2, padding=1), norm(6), nn.ReLU(inplace=True),
        nn.ConvTranspose2d(6, 5, 3, stride=2, padding=1, output_padding=1), norm(5), nn.ReLU(),
        nn.Conv2d(5, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(4 * 8 * 8, 3),
    ).double()
    with torch.no_grad():  # make some channels dead in eval mode: a very negative β
        model[1].bias[[1, 4]] = -100.0
        model[4].bias[[0, 3]] = -100.0
        model[6].bias[2] = -100.0
        for bn in (model[1], model[4]):
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.5, 2.0)
    return model.eval()


@pytest.mark.parametrize("norm", [nn.BatchNorm2d, CourseBatchNorm2d])
def test_conv_bn_relu_convtranspose_and_flatten_chains_lose_dead_channels_exactly(norm):
    model = conv_chain_model(norm)
    x = torch.randn(20, 1, 16, 16, dtype=torch.float64)
    with torch.no_grad():
        before = model(x)
    chains = prune_dead(model, x)
    assert [c.width for c in chains.values()] == [4, 3, 3]
    assert chains["7"].spatial == 64 and model[10].in_features == 3 * 64
    assert model[4].num_features == 3 and model[4].running_mean.shape == (3,)
    with torch.no_grad():
        assert (model(x) - before).abs().max() <= 1e-12


def test_removal_equals_zeroing_weight_bias_gamma_and_beta_but_not_torch_masking():
    for units in ([0, 3], [1, 2, 5]):
        removed, zeroed, masked = conv_chain_model(), conv_chain_model(), conv_chain_model()
        for m in (removed, zeroed, masked):
            with torch.no_grad():
                m[0].bias.fill_(3.0)  # a bias a weight mask does not remove
        x = torch.randn(8, 1, 16, 16, dtype=torch.float64)
        keep = torch.ones(6, dtype=torch.bool)
        keep[units] = False
        prune_units(find_chains(removed, x)["2"], keep)
        with torch.no_grad():
            for t in (zeroed[0].weight, zeroed[0].bias, zeroed[1].weight, zeroed[1].bias):
                t[units] = 0.0
            assert torch.allclose(removed(x), zeroed(x), atol=1e-12, rtol=0)
        # torch.nn.utils.prune masks the weight only: shapes stay, and bias and β still reach the next layer
        mask = keep[:, None, None, None].double().expand_as(masked[0].weight)
        torch_prune.custom_from_mask(masked[0], "weight", mask)
        torch_prune.remove(masked[0], "weight")
        assert masked[0].weight.shape == (6, 1, 3, 3) and count_params(masked) == count_params(conv_chain_model())
        with torch.no_grad():
            assert (removed(x) - masked(x)).abs().max() > 1e-3


def test_prune_units_rejects_bad_keep_masks():
    model, x = dead_mlp()
    chain = find_chains(model, x[:2])["1"]
    with pytest.raises(ValueError, match="keep must be a bool tensor of shape"):
        prune_units(chain, torch.ones(3, dtype=torch.bool))
    with pytest.raises(ValueError, match="at least one unit"):
        prune_units(chain, torch.zeros(200, dtype=torch.bool))


def test_find_chains_refuses_graphs_it_cannot_follow():
    class Residual(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 4)

        def forward(self, x):
            return x + self.fc(x)

    with pytest.raises(ValueError, match="only nn.Sequential containers"):
        find_chains(nn.Sequential(nn.Linear(4, 4), nn.ReLU(), Residual()), torch.randn(2, 4))


def test_merging_always_active_units_keeps_outputs_and_collapses_them_to_their_rank():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 40), nn.ReLU(), nn.Linear(40, 2)).double()
    with torch.no_grad():
        model[0].bias[:30] = 20.0  # 30 units always active on inputs in [0, 1]³: together linear, rank ≤ 2
    x = torch.rand(300, 3, dtype=torch.float64)
    with torch.no_grad():
        before = model(x)
    chain = find_chains(model, x[:2])["1"]
    always = activation_stats(model, [x])["1"].always_active()
    assert int(always.sum()) >= 30
    width = merge_always_active(model, chain, [x], always)
    assert width == 40 - int(always.sum()) + 2
    with torch.no_grad():
        assert (model(x) - before).abs().max() <= 1e-11


def test_train_prune_cycles_terminate_with_monotone_widths():
    r = run_sum_toy("normal", width=200, steps_per_cycle=100, max_cycles=6)
    widths = r["widths"]
    assert all(a >= b for a, b in zip(widths, widths[1:])) and len(r["history"]) <= 6
    assert r["history"][-1].removed["relu"] == 0 or len(r["history"]) == 6
    assert all(c.output_change <= 1e-5 for c in r["history"])
    assert r["model"].hidden.out_features == widths[-1] == r["model"].out.in_features


def test_normal_initialization_kills_most_units_of_the_sum_toy_and_default_does_not():
    normal = run_sum_toy("normal", steps_per_cycle=500, max_cycles=1)
    default = run_sum_toy("default", steps_per_cycle=500, max_cycles=1)
    assert normal["first_cycle"]["dead"] > 900  # the thesis' "about 950 of 1000"
    assert default["first_cycle"]["dead"] < 500
    assert normal["mse"] < 1e-3 and default["mse"] < 1e-3


# --- factorization -------------------------------------------------------------------------------------

def test_svd_linear_error_is_the_eckart_young_prediction():
    torch.manual_seed(0)
    linear = nn.Linear(64, 48).double()
    x = torch.randn(10, 64, dtype=torch.float64)
    S = torch.linalg.svdvals(linear.weight.detach())
    for k in (1, 5, 27, 48):
        factorized, rep = svd_factorize_linear(linear, rank=k)
        W_k = (factorized[1].weight @ factorized[0].weight).detach()
        assert math.isclose(rep.measured_error, float(S[k:].pow(2).sum().sqrt()), rel_tol=1e-12, abs_tol=1e-12)
        assert math.isclose(rep.predicted_error, rep.measured_error, rel_tol=1e-12, abs_tol=1e-12)
        if k < 48:
            assert math.isclose(float(torch.linalg.matrix_norm(linear.weight.detach() - W_k, ord=2)), float(S[k]), rel_tol=1e-12)
        assert torch.allclose(factorized(x), x @ W_k.T + linear.bias, atol=1e-13)
        assert rep.params_after == k * (64 + 48) + 48 and rep.macs_after == k * 112 and rep.macs_before == 64 * 48
    assert rep.measured_error < 1e-12  # full rank is exact
    assert 64 * 48 / (64 + 48) == pytest.approx(27.43, abs=0.01)  # break-even rank


def test_energy_picks_the_smallest_sufficient_rank_and_bad_arguments_are_named():
    linear = nn.Linear(30, 20)
    S = torch.linalg.svdvals(linear.weight.detach()).double()
    _, rep = svd_factorize_linear(linear, energy=0.9)
    cum = (S**2).cumsum(0) / (S**2).sum()
    assert cum[rep.rank - 1] >= 0.9 - 1e-9 and (rep.rank == 1 or cum[rep.rank - 2] < 0.9)
    with pytest.raises(ValueError, match="exactly one of rank"):
        svd_factorize_linear(linear)
    with pytest.raises(ValueError, match=r"rank must be an integer in \[1, 20\]"):
        svd_factorize_linear(linear, rank=21)
    with pytest.raises(ValueError, match="energy must be in"):
        svd_factorize_linear(linear, energy=1.5)


def test_separable_conv_error_and_output_match_the_rebuilt_kernel():
    torch.manual_seed(0)
    conv = nn.Conv2d(4, 6, 3, stride=2, padding=1).double()
    x = torch.randn(2, 4, 11, 9, dtype=torch.float64)
    S = torch.linalg.svdvals(kernel_matrix(conv.weight.detach()))
    for P in (1, 3, 7, 12):
        factorized, rep = separable_factorize_conv(conv, rank=P)
        W_P = rebuilt_kernel(factorized)
        assert math.isclose(rep.measured_error, float(S[P:].pow(2).sum().sqrt()), rel_tol=1e-10, abs_tol=1e-12)
        expected = nn.functional.conv2d(x, W_P, conv.bias, stride=2, padding=1)
        assert (factorized(x) - expected).abs().max() < 1e-13  # borders included
        assert rep.macs_after == 3 * P * (4 + 6) and rep.macs_before == 9 * 4 * 6
    assert (factorized(x) - conv(x)).abs().max() < 1e-12  # min(L·N, K·N) = 12: exact


def test_single_channel_separable_conv_is_an_outer_product_kernel():
    torch.manual_seed(0)
    v, h = torch.randn(5, dtype=torch.float64), torch.randn(5, dtype=torch.float64)
    conv = nn.Conv2d(1, 1, 5, padding=2, bias=False).double()
    with torch.no_grad():
        conv.weight.copy_(torch.outer(v, h)[None, None])
    factorized, rep = separable_factorize_conv(conv, rank=1)
    x = torch.randn(1, 1, 12, 12, dtype=torch.float64)
    assert rep.measured_error < 1e-13 and (factorized(x) - conv(x)).abs().max() < 1e-13


# --- counting ------------------------------------------------------------------------------------------

def flops_over_two(model, x):
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    return counter.get_total_flops() // 2


def test_mac_formulas_match_pytorch_flop_counter():
    K, L, N, P, H = 32, 64, 3, 16, 16
    x = torch.randn(1, K, H, H)
    full = nn.Conv2d(K, L, N, padding=1, bias=False)
    assert flops_over_two(full, x) == conv_macs(N, K, L, H, H) == H * H * N * N * K * L
    sep = Separable1D(K, L, N, P)
    assert flops_over_two(sep, x) == separable1d_macs(N, K, P, L, H, H) == H * H * N * P * (K + L)
    assert sep.macs_per_pixel() == N * P * (K + L) == 4608
    dw = DepthwiseSeparableConv(K, L, N, norm=None, activation=None)
    assert flops_over_two(dw, x) == depthwise_separable_macs(N, K, 1, L, H, H) == H * H * K * (N * N + L)
    assert dw.macs_per_pixel() == 2336 != 1 * (K * N * N + L)  # the thesis' I·(K·N² + L) = 352 is wrong
    dw2 = DepthwiseSeparableConv(K, L, N, depth_multiplier=2, norm=None, activation=None)
    assert flops_over_two(dw2, x) == depthwise_separable_macs(N, K, 2, L, H, H)
    assert count_params(dw2) == K * 2 * N * N + K * 2 * L + K * 2 + L  # weights + biases


def test_conv_transpose_is_counted_by_input_size():
    convt = nn.ConvTranspose2d(4, 1, 3, stride=2, padding=1, output_padding=1)
    x = torch.randn(1, 4, 14, 14)
    assert conv_transpose_macs(3, 4, 1, 14, 14) == 7056  # thop and Torch-Pruning report 28 224
    assert count_macs(convt, x).total_macs == flops_over_two(convt, x) == 7056


@pytest.mark.parametrize("groups", [1, 4, 16])
def test_count_macs_counts_grouped_and_depthwise_convolutions(groups):
    """Each output channel sees K/groups input channels: H·W·L·(K/groups)·N² MACs (16 groups: depthwise)."""
    conv = nn.Conv2d(16, 32, 3, padding=1, groups=groups, bias=False)
    x = torch.randn(2, 16, 9, 9)
    expected = 2 * 9 * 9 * 32 * (16 // groups) * 3 * 3
    assert count_macs(conv, x).total_macs == flop_counter_macs(conv, x) == expected


def test_count_macs_matches_the_flop_counter_on_whole_networks():
    x = torch.randn(3, 1, 28, 28)
    for model in (autoencoder(batchnorm=True), conv_chain_model().float(),
                  nn.Sequential(nn.Flatten(), nn.Linear(784, 100), nn.ReLU(), nn.Linear(100, 10))):
        inp = x[:, :, :16, :16] if model[0].__class__ is nn.Conv2d and model[0].stride == (2, 2) and \
            model[0].out_channels == 6 else x
        table = count_macs(model, inp)
        assert table.total_macs == flop_counter_macs(model, inp) == flops_over_two(model, inp)
        assert table.flops == 2 * table.total_macs and table.total_params == count_params(model)


class Sleeper(nn.Module):
    """A forward pass that takes a known time: at least ``ms`` milliseconds."""

    def __init__(self, ms):
        super().__init__()
        self.ms = ms

    def forward(self, x):
        time.sleep(self.ms / 1e3)
        return x


def test_measure_latency_measures_the_forward_time():
    short, long = (measure_latency(Sleeper(ms), torch.zeros(1), min_run_time=0.05) for ms in (2, 8))
    # a sleep lasts at least its time, and on a busy machine a few milliseconds more: bounds on both sides
    assert 2 <= short.median_ms < 2 + 10 and 8 <= long.median_ms < 8 + 10, (short, long)
    assert long.median_ms > short.median_ms + 3, "6 ms more work shows as more time"
    assert short.runs >= 1 and 0 <= short.iqr_ms < short.median_ms, "timed blocks, with a spread below the median"
    with pytest.raises(ValueError, match="threads must be a positive integer"):
        measure_latency(nn.Linear(2, 2), torch.randn(1, 2), threads=0)


# --- weight sharing ------------------------------------------------------------------------------------

def test_sharing_is_exact_when_there_are_few_distinct_weights_and_stores_uint8():
    linear = nn.Linear(100, 50)
    values = torch.tensor([-0.3, -0.1, 0.0, 0.2, 0.7])
    with torch.no_grad():
        linear.weight.copy_(values[torch.randint(0, 5, (50, 100))])
    shared, rep = share_weights(linear, n_clusters=16)
    assert shared.indices.dtype == torch.uint8 and rep.max_error == 0.0
    x = torch.randn(7, 100)
    assert torch.equal(shared(x), linear(x))
    assert rep.bytes_before == 4 * 5000 + 4 * 50 and rep.bytes_after == 5000 + 4 * 5 + 4 * 50
    assert state_dict_bytes(shared) == rep.bytes_after


def test_kmeans_sharing_of_a_conv_reduces_the_error_as_clusters_grow():
    torch.manual_seed(0)
    conv = nn.Conv2d(8, 16, 3)
    errors = [share_weights(conv, n)[1].max_error for n in (2, 4, 16, 256)]
    assert errors == sorted(errors, reverse=True) and errors[-1] < errors[0] / 10
    shared, _ = share_weights(conv, 256)
    x = torch.randn(2, 8, 10, 10)
    assert (shared(x) - conv(x)).abs().max() < 0.05
    codebook, index = kmeans_1d(torch.tensor([0.0, 0.1, 5.0, 5.1]), 2)
    assert torch.allclose(codebook, torch.tensor([0.05, 5.05])) and index.tolist() == [0, 0, 1, 1]
    with pytest.raises(ValueError, match=r"n_clusters must be an integer in \[2, 256\]"):
        share_weights(conv, 300)
