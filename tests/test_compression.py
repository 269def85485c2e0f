"""Oracles for course_lib.compression: exact removal, Eckart–Young errors, MAC formulas against PyTorch's counter."""

import copy
import math
import re
import statistics
import time
import timeit
from types import SimpleNamespace

import pytest
import torch
from torch import nn
from torch.nn.utils import prune as torch_prune
from torch.utils.flop_counter import FlopCounterMode

from course_lib.compression import (Chain, DepthwiseSeparableConv, Separable1D, SharedWeights, UnitStats,
                                    activation_stats, batchnorm_scales, choose_rank, conv_macs, conv_transpose_macs,
                                    count_macs, count_params, depthwise_separable_macs, distort_weights, find_chains,
                                    flop_counter_macs, kernel_matrix, kmeans_1d, l1_penalty, measure_latency,
                                    merge_always_active, prune_dead_units, prune_units, rebuilt_kernel,
                                    separable1d_macs, separable_factorize_conv, share_weights, state_dict_bytes,
                                    svd_factorize_linear, train_prune_cycles)
from course_lib.compression.experiments import autoencoder, run_sum_toy
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


def test_a_unit_is_dead_when_active_at_most_threshold_times_by_default_never():
    x = torch.tensor([[-1.0, 1.0, 2.0], [-1.0, -1.0, 3.0]])  # unit 0 never active, unit 1 once, unit 2 twice
    stats = activation_stats(nn.Sequential(nn.ReLU()), [x])
    assert stats["0"].dead().tolist() == [True, False, False] == stats.dead()["0"].tolist()
    assert stats["0"].dead(1).tolist() == [True, True, False]


def test_layers_select_modules_by_name_or_by_class_and_bad_entries_are_named():
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2), nn.Tanh())
    x = torch.randn(5, 3)
    assert list(activation_stats(model, [x], layers=[nn.ReLU])) == ["1"]
    assert list(activation_stats(model, [x], layers=[nn.Linear, "3"])) == ["0", "2", "3"]
    for bad in (3, int):
        with pytest.raises(ValueError, match=rf"^layers: each entry must be a module name or an nn\.Module class, "
                                             rf"got {re.escape(repr(bad))}$"):
            activation_stats(model, [x], layers=[bad])
    with pytest.raises(ValueError, match=r"^layers: no module of the model matched; name the modules to observe$"):
        activation_stats(model, [x], layers=[nn.Conv2d])


def test_outliers_are_units_whose_frequency_lies_more_than_k_std_below_the_layer_mean():
    active = torch.tensor([10] * 8 + [5, 2])  # frequencies 1 (8 units), 0.5, 0.2: mean 0.87, std 0.27
    zeros = torch.zeros(10, dtype=torch.float64)
    stats = UnitStats(10, active, zeros, zeros, zeros, zeros)
    assert stats.outliers().tolist() == [False] * 9 + [True]  # k = 2: below 0.33
    assert stats.outliers(1.0).tolist() == [False] * 8 + [True, True] and not stats.outliers(3.0).any()
    # the spread is the population std 0.2685 (0.87 − 2.45·0.2685 = 0.212 > 0.2; the sample std would give 0.177)
    assert stats.outliers(2.45).tolist() == [False] * 9 + [True]
    # strictly below: frequencies 0 and 1 have mean 0.5 and std 0.5, and 0 is not below 0.5 − 1·0.5
    two = UnitStats(4, torch.tensor([0, 4]), zeros[:2], zeros[:2], zeros[:2], zeros[:2])
    assert not two.outliers(1.0).any() and two.outliers(0.5).tolist() == [True, False]


def test_activation_summary_prints_units_dead_always_on_and_mean_apoz_per_layer():
    model, x = cycle_model()  # hidden units: never, once, twice and always active on 3 inputs
    model[3] = nn.ReLU()
    with torch.no_grad():
        model[2].weight.zero_()
    stats = activation_stats(model, [x])  # layer 3: relu(0) = 0 on every input, so dead
    assert stats.summary() == ("layer           units   dead  always on  mean APoZ\n"
                               "1                   4      1          1      0.500\n"
                               "3                   1      1          0      1.000")
    assert stats.summary(1).splitlines()[1] == "1                   4      2          1      0.500"


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


def test_pruning_grouped_convolutions_is_refused_with_the_reason():
    keep = torch.tensor([True, False, True, True])
    with pytest.raises(ValueError, match=r"^chain\.producer: grouped convolutions \(groups=2\) are not supported; "
                                         r"only groups=1$"):
        prune_units(Chain(nn.Conv2d(4, 4, 3, groups=2), [nn.Conv2d(4, 2, 1)]), keep)
    with pytest.raises(ValueError, match=r"^chain\.consumers: grouped convolutions \(groups=2\) are not supported; "
                                         r"only groups=1$"):
        prune_units(Chain(nn.Conv2d(2, 4, 3), [nn.Conv2d(4, 4, 1, groups=2)]), keep)


def test_prune_units_keeps_frozen_parameters_frozen_and_counts_the_norm_in_its_report():
    model = nn.Sequential(nn.Linear(3, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 2))
    model[0].weight.requires_grad_(False)
    chain = find_chains(model, torch.randn(4, 3))["2"]
    report = prune_units(chain, torch.tensor([True, False, True, True, False, True]))
    assert (report.removed, report.kept) == (2, 4)
    # producer 3·6 + 6, norm γ and β 6 + 6, consumer 6·2 + 2; then 4 units instead of 6
    assert report.params_before == 24 + 12 + 14 and report.params_after == 16 + 8 + 10
    assert not model[0].weight.requires_grad and model[0].bias.requires_grad and model[1].weight.requires_grad
    assert model[3].weight.requires_grad


def test_prune_dead_units_keeps_the_first_unit_of_an_all_dead_layer_and_leaves_live_layers_alone():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 1))
    chains = find_chains(model, torch.randn(2, 2))
    first_rows, last_weight = model[0].weight.detach().clone(), model[4].weight
    removed = prune_dead_units(chains, {"1": torch.ones(4, dtype=torch.bool), "3": torch.zeros(3, dtype=torch.bool)})
    assert removed == {"1": 3, "3": 0}
    assert model[0].out_features == 1 and torch.equal(model[0].weight, first_rows[:1]), "unit 0 stays"
    assert model[4].weight is last_weight, "a layer without dead units keeps its parameters (an optimizer still works)"


def cycle_model():
    """1 → 4 → 1 ReLU net, then a Sigmoid outside every chain. On the inputs 0, 2, 1 its hidden unit 0 is never
    active, unit 1 once (on the second input), unit 2 twice, unit 3 always."""
    model = nn.Sequential(nn.Linear(1, 4), nn.ReLU(), nn.Linear(4, 1), nn.Sigmoid())
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[0.0], [1.0], [1.0], [0.0]]))
        model[0].bias.copy_(torch.tensor([-1.0, -1.5, -0.5, 1.0]))
        model[2].weight.fill_(0.5)
        model[2].bias.zero_()
    return model, torch.tensor([[0.0], [2.0], [1.0]])


def test_train_prune_cycles_records_each_cycle_and_by_default_removes_only_never_active_units():
    model, x = cycle_model()
    rows = model[0].weight.detach().clone()
    chains = find_chains(model, x)
    history = train_prune_cycles(model, chains, lambda m: 0.25, [(x, x.sum(1))])
    assert [c.cycle for c in history] == [1, 2] and [c.loss for c in history] == [0.25, 0.25]
    assert [c.removed for c in history] == [{"1": 1}, {"1": 0}] and [c.widths for c in history] == [{"1": 3}] * 2
    assert history[0].always_active == {"1": 1}, "statistics of the chains' activations only"
    assert history[0].output_change <= 1e-6
    assert torch.equal(model[0].weight, rows[1:]), "no distortion unless asked for"


def test_train_prune_cycles_threshold_removes_rarely_active_units_and_reports_the_output_change():
    model, x = cycle_model()
    history = train_prune_cycles(model, find_chains(model, x), lambda m: 0.0, [x], threshold=1, max_cycles=1)
    assert len(history) == 1 and history[0].removed == {"1": 2}
    # unit 1 fed 0.5 · relu(2 − 1.5) = 0.25 into the sigmoid on the second input of the (whole) first batch
    assert history[0].output_change == pytest.approx(torch.sigmoid(torch.tensor(0.5 + 0.25 + 0.75)).item()
                                                     - torch.sigmoid(torch.tensor(0.5 + 0.75)).item(), rel=1e-5)
    with pytest.raises(ValueError, match=r"^max_cycles must be at least 1, got 0$"):
        train_prune_cycles(model, find_chains(model, x), lambda m: 0.0, [x], max_cycles=0)


def test_train_prune_cycles_stop_after_ten_cycles_by_default():
    model = nn.Sequential(nn.Linear(1, 12), nn.ReLU(), nn.Linear(12, 1))
    with torch.no_grad():
        model[0].weight.zero_()
        model[0].bias.fill_(1.0)  # every unit always active

    def kill_last_unit(m):
        with torch.no_grad():
            m[0].bias[-1] = -1.0
        return 0.0

    x = torch.rand(5, 1)
    history = train_prune_cycles(model, find_chains(model, x), kill_last_unit, [x])
    assert [c.cycle for c in history] == list(range(1, 11))
    assert [c.widths["1"] for c in history] == list(range(11, 1, -1))


def test_train_prune_cycles_distort_with_the_given_generator_before_training():
    model, x = cycle_model()
    reference = copy.deepcopy(model)
    distort_weights(reference, torch.Generator().manual_seed(3))
    seen = []
    train_prune_cycles(model, find_chains(model, x), lambda m: seen.append(copy.deepcopy(m.state_dict())) or 0.0, [x],
                       max_cycles=1, distort=True, generator=torch.Generator().manual_seed(3))
    assert seen[0].keys() == reference.state_dict().keys()
    assert all(torch.equal(seen[0][k], v) for k, v in reference.state_dict().items())


def test_l1_penalty_and_batchnorm_scales():
    assert float(l1_penalty([torch.tensor([1.0, -2.0]), torch.tensor([[-3.0]])])) == 6.0
    model = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3), nn.Conv2d(3, 3, 1), nn.BatchNorm2d(3, affine=False),
                          CourseBatchNorm2d(3))
    scales = batchnorm_scales(model)
    assert len(scales) == 2 and scales[0] is model[1].weight and scales[1] is model[4].weight, "γ of affine norms"


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


def test_choose_rank_reaches_the_energy_up_to_rounding_and_names_bad_arguments():
    S = torch.ones(4, dtype=torch.float64)  # each σ² holds a quarter of the energy
    assert [choose_rank(S, energy=e) for e in (0.01, 0.25, 0.5, 0.5 + 1e-12, 0.5 + 1e-9, 1.0)] == [1, 1, 2, 2, 3, 4]
    assert choose_rank(S, rank=3) == 3
    for kwargs in ({}, {"rank": 1, "energy": 0.5}):
        with pytest.raises(ValueError, match=r"^give exactly one of rank \(an integer\) or energy "
                                             r"\(a fraction of Σσ² to keep\)$"):
            choose_rank(S, **kwargs)
    for rank in (0, 5, 2.0, True):
        with pytest.raises(ValueError, match=rf"^rank must be an integer in \[1, 4\], got {re.escape(repr(rank))}$"):
            choose_rank(S, rank=rank)
    for energy in (0.0, -0.5, 1.5):
        with pytest.raises(ValueError, match=rf"^energy must be in \(0, 1\], got {re.escape(repr(energy))}$"):
            choose_rank(S, energy=energy)


def test_factorization_reports_the_rank_energy_relative_error_and_sizes():
    torch.manual_seed(0)
    linear = nn.Linear(12, 8).double()
    W = linear.weight.detach()
    S = torch.linalg.svdvals(W)
    factorized, rep = svd_factorize_linear(linear, rank=3)
    W_k = (factorized[1].weight @ factorized[0].weight).detach()
    assert (rep.rank, rep.full_rank) == (3, 8) and torch.allclose(rep.singular_values, S, rtol=1e-12, atol=0)
    assert rep.relative_error == pytest.approx(float((W - W_k).norm() / W.norm()), rel=1e-12)
    assert rep.energy_kept == pytest.approx(float(S[:3].square().sum() / S.square().sum()), rel=1e-12)
    assert (rep.params_before, rep.params_after) == (12 * 8 + 8, 3 * (12 + 8) + 8)
    conv = nn.Conv2d(2, 5, 3, bias=False).double()
    _, rep = separable_factorize_conv(conv, rank=2)
    assert (rep.rank, rep.full_rank) == (2, 6)  # min(L·N, K·N) = min(15, 6)
    assert (rep.params_before, rep.params_after) == (5 * 2 * 9, 2 * 2 * 3 + 5 * 2 * 3)
    assert 0 < rep.relative_error < 1 and 0 < rep.energy_kept < 1


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


def test_separable1d_is_a_1xN_conv_then_an_Nx1_conv_with_stride_and_same_padding():
    torch.manual_seed(0)
    sep = Separable1D(3, 5, 5, 4, stride=2).double()
    assert sep.horizontal.weight.shape == (4, 3, 1, 5) and sep.vertical.weight.shape == (5, 4, 5, 1)
    assert sep.horizontal.bias is None and sep.vertical.bias is not None, "without a norm the bias is on the N×1 conv"
    assert isinstance(sep.norm, nn.Identity) and isinstance(sep.activation, nn.Identity)
    x = torch.randn(2, 3, 11, 13, dtype=torch.float64)
    h = nn.functional.conv2d(x, sep.horizontal.weight, stride=(1, 2), padding=(0, 2))
    expected = nn.functional.conv2d(h, sep.vertical.weight, sep.vertical.bias, stride=(2, 1), padding=(2, 0))
    assert expected.shape == (2, 5, 6, 7) and torch.allclose(sep(x), expected, atol=1e-13, rtol=0)
    assert type(sep.macs_per_pixel()) is int and sep.macs_per_pixel() == 5 * 4 * (3 + 5)


def test_separable1d_with_a_norm_has_no_bias_and_applies_norm_then_activation():
    sep = Separable1D(3, 5, 3, 4, norm=nn.BatchNorm2d, activation=nn.ReLU).eval()
    assert sep.horizontal.bias is None and sep.vertical.bias is None, "the norm's β replaces the bias"
    assert isinstance(sep.norm, nn.BatchNorm2d) and sep.norm.num_features == 5 and isinstance(sep.activation, nn.ReLU)
    with torch.no_grad():
        sep.norm.running_mean.uniform_(-1, 1)
        x = torch.randn(2, 3, 6, 6)
        assert torch.equal(sep(x), torch.relu(sep.norm(sep.vertical(sep.horizontal(x)))))


def test_depthwise_separable_conv_is_a_grouped_conv_then_a_pointwise_conv():
    torch.manual_seed(0)
    K, L, N, I = 3, 4, 5, 2
    block = DepthwiseSeparableConv(K, L, N, stride=2, depth_multiplier=I, norm=None, activation=None).double()
    depthwise = nn.Conv2d(K, K * I, N, stride=2, padding=N // 2, groups=K).double()
    pointwise = nn.Conv2d(K * I, L, 1).double()
    depthwise.load_state_dict(block.depthwise.state_dict())
    pointwise.load_state_dict(block.pointwise.state_dict())
    x = torch.randn(2, K, 9, 10, dtype=torch.float64)
    assert block(x).shape == (2, L, 5, 5) and torch.allclose(block(x), pointwise(depthwise(x)), atol=1e-13, rtol=0)
    assert all(isinstance(m, nn.Identity) for m in (block.norm1, block.act1, block.norm2, block.act2))
    assert type(block.macs_per_pixel()) is int and block.macs_per_pixel() == K * I * (N * N + L)


def test_depthwise_separable_conv_defaults_to_3x3_with_batchnorm_and_relu_after_each_conv():
    block = DepthwiseSeparableConv(4, 6).eval()
    assert block.depthwise.kernel_size == (3, 3) and block.depthwise.stride == (1, 1) and block.depthwise.groups == 4
    assert block.depthwise.bias is None and block.pointwise.bias is None, "a norm follows each convolution"
    assert isinstance(block.norm1, nn.BatchNorm2d) and block.norm1.num_features == 4
    assert isinstance(block.norm2, nn.BatchNorm2d) and block.norm2.num_features == 6
    assert isinstance(block.act1, nn.ReLU) and isinstance(block.act2, nn.ReLU)
    with torch.no_grad():
        for bn in (block.norm1, block.norm2):
            bn.running_mean.uniform_(-1, 1)
        x = torch.randn(2, 4, 7, 7)
        inner = torch.relu(block.norm1(block.depthwise(x)))
        assert torch.equal(block(x), torch.relu(block.norm2(block.pointwise(inner))))


def test_blocks_reject_sizes_that_are_not_positive_integers():
    separable = dict(in_channels=3, out_channels=4, kernel_size=3, mid_channels=2, stride=1)
    depthwise = dict(in_channels=3, out_channels=4, kernel_size=3, stride=1, depth_multiplier=1)
    for block, sizes in ((Separable1D, separable), (DepthwiseSeparableConv, depthwise)):
        for name in sizes:
            for bad in (0, True, 2.0):
                message = rf"^{name} must be a positive integer, got {re.escape(repr(bad))}$"
                with pytest.raises(ValueError, match=message):
                    block(**{**sizes, name: bad})


def test_count_params_counts_frozen_parameters_unless_trainable_only():
    model = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    model[0].requires_grad_(False)
    assert count_params(model) == 16 + 10 and count_params(model, trainable_only=True) == 10


def test_mac_formulas_default_to_one_output_pixel_and_give_exact_integers():
    counts = {conv_macs(3, 32, 64): 9 * 32 * 64, separable1d_macs(3, 32, 16, 64): 3 * 16 * 96,
              depthwise_separable_macs(3, 32, 2, 64): 32 * 2 * (9 + 64),
              conv_macs(3, 32, 64, 5, 7, groups=4): 5 * 7 * 9 * 8 * 64,
              conv_transpose_macs(3, 4, 6, 14, 14, groups=2): 14 * 14 * 9 * 4 * 3}
    assert list(counts) == list(counts.values()) and all(type(c) is int for c in counts)


def test_count_macs_lists_each_leaf_with_shape_params_macs_and_elementwise_operations():
    """Non-square kernels, a transposed convolution (counted by its input), and modules that cost nothing."""
    model = nn.Sequential(nn.Conv2d(1, 2, (1, 3)), nn.ConvTranspose2d(2, 3, (3, 1), stride=2), nn.BatchNorm2d(3),
                          nn.ReLU(), nn.Dropout(), nn.Flatten(), nn.Linear(3 * 11 * 7, 4), nn.Identity())
    x = torch.randn(2, 1, 5, 6)
    table = count_macs(model, x)
    rows = [(r.name, r.kind, r.output_shape, r.params, r.macs, r.elementwise) for r in table.rows]
    assert rows == [
        ("0", "Conv2d", (2, 2, 5, 4), 2 * 3 + 2, 2 * 2 * 5 * 4 * 3, 0),  # output pixels · 1·3 · 1 input channel
        ("1", "ConvTranspose2d", (2, 3, 11, 7), 2 * 3 * 3 + 3, 2 * 2 * 5 * 4 * 3 * 3, 0),  # input pixels · 3·1 · 3
        ("2", "BatchNorm2d", (2, 3, 11, 7), 6, 0, 2 * 231),
        ("3", "ReLU", (2, 3, 11, 7), 0, 0, 2 * 231),
        ("4", "Dropout", (2, 3, 11, 7), 0, 0, 0),
        ("5", "Flatten", (2, 231), 0, 0, 0),
        ("6", "Linear", (2, 4), 231 * 4 + 4, 2 * 231 * 4, 0),
        ("7", "Identity", (2, 4), 0, 0, 0),
    ]
    assert all(type(r.macs) is int for r in table.rows) and table.elementwise == 4 * 231
    assert table.total_macs == flop_counter_macs(model, x) and type(flop_counter_macs(model, x)) is int
    bare = count_macs(nn.Linear(3, 2), torch.randn(4, 3)).rows
    assert [(r.name, r.kind, r.output_shape, r.macs) for r in bare] == [("Linear", "Linear", (4, 2), 24)]


def test_mac_table_prints_one_row_per_module_and_the_totals_with_flops():
    table = count_macs(nn.Sequential(nn.Linear(100, 50), nn.ReLU()), torch.randn(2, 100))
    assert str(table) == (
        "module          type              output                params         MACs\n"
        "0               Linear            [2, 50]                5,050       10,000\n"
        "1               ReLU              [2, 50]                    0            0\n"
        "total                                                    5,050       10,000   (= 20,000 FLOPs)")


class ClockedForward(nn.Module):
    """A forward pass that advances a fake clock by the next of its ``durations`` (cyclically) and records what it
    saw: its input, the thread count and whether autograd was on."""

    def __init__(self, clock, durations):
        super().__init__()
        self.clock, self.durations = clock, durations
        self.spent, self.inputs, self.threads, self.grad = [], [], set(), set()

    def forward(self, x):
        if len(self.spent) >= 2000:
            raise RuntimeError("the timer does not stop")
        duration = self.durations[len(self.spent) % len(self.durations)]
        self.spent.append(duration)
        self.inputs.append(x)
        self.threads.add(torch.get_num_threads())
        self.grad.add(torch.is_grad_enabled())
        self.clock.now += duration
        self.clock.idle_reads = 0
        return x


@pytest.fixture
def fake_clock(monkeypatch):
    """`torch.utils.benchmark` reads `timeit.default_timer`: here a clock that only a ClockedForward moves, and that
    fails when read 20 times in a row without a forward pass (then nothing is being timed but the timer itself)."""
    clock = SimpleNamespace(now=0.0, idle_reads=0)

    def read():
        clock.idle_reads += 1
        if clock.idle_reads > 20:
            raise RuntimeError("the clock is read but the model is never called")
        return clock.now

    monkeypatch.setattr(timeit, "default_timer", read)
    return clock


def test_measure_latency_runs_until_min_run_time_when_the_runs_agree(fake_clock):
    x = torch.zeros(3)
    for kwargs, min_run_time in (({"min_run_time": 0.1}, 0.1), ({}, 0.2)):  # 0.2 s by default
        model = ClockedForward(fake_clock, [1 / 64])
        latency = measure_latency(model, x, **kwargs)
        assert latency.median_ms == pytest.approx(15.625, rel=1e-12) and latency.iqr_ms == 0.0
        timed = model.spent[-latency.runs:]
        assert latency.runs >= 4 and sum(timed) >= min_run_time > sum(timed[:-1]), "stops once min_run_time is timed"
        assert all(seen is x for seen in model.inputs) and model.threads == {1} and model.grad == {False}
    model = ClockedForward(fake_clock, [1 / 64])
    measure_latency(model, x, threads=2, min_run_time=0.1)
    assert model.threads == {2}


def test_measure_latency_stops_after_ten_min_run_times_when_the_spread_stays_large(fake_clock):
    model = ClockedForward(fake_clock, [2 / 128, 3 / 128])  # interquartile range 20 % to 50 % of the median
    latency = measure_latency(model, torch.zeros(1), min_run_time=0.1)
    timed = model.spent[-latency.runs:]
    assert sum(timed) > 10 * 0.1 >= sum(timed[:-1])
    q1, median, q3 = statistics.quantiles(timed, n=4, method="inclusive")
    assert latency.median_ms == pytest.approx(1e3 * median, rel=1e-12)
    assert latency.iqr_ms == pytest.approx(1e3 * (q3 - q1), rel=1e-12) and latency.iqr_ms > 0


def test_measure_latency_rejects_bad_threads_and_run_times(fake_clock):
    model = ClockedForward(fake_clock, [1 / 64])
    for threads in (0, True, 1.5):
        with pytest.raises(ValueError, match=rf"^threads must be a positive integer, got {threads!r}$"):
            measure_latency(model, torch.zeros(1), threads=threads)
    for min_run_time in (0, -0.5):
        with pytest.raises(ValueError, match=rf"^min_run_time must be positive \(seconds\), got {min_run_time!r}$"):
            measure_latency(model, torch.zeros(1), min_run_time=min_run_time)
    assert model.spent == [], "nothing was timed"


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


def test_kmeans_1d_hand_worked_examples():
    # exactly C distinct values: they are the codebook
    codebook, index = kmeans_1d(torch.tensor([10.0, 0.0, 1.0, 10.0]), 3)
    assert codebook.tolist() == [0.0, 1.0, 10.0] and index.tolist() == [2, 0, 1, 2]
    # centres start at 0, 5, 10; 5 attracts nothing (midpoints 2.5, 7.5) and keeps its place
    codebook, index = kmeans_1d(torch.tensor([0.0, 1.0, 2.0, 10.0], dtype=torch.float64), 3)
    assert codebook.dtype == torch.float64 and codebook.tolist() == [1.0, 5.0, 10.0] and index.tolist() == [0, 0, 0, 2]
    # 5 attracts the single value 6 and moves onto it
    codebook, index = kmeans_1d(torch.tensor([0.0, 1.0, 6.0, 10.0, 10.0], dtype=torch.float64), 3)
    assert codebook.tolist() == [0.5, 6.0, 10.0] and index.tolist() == [0, 0, 1, 2, 2]


def test_weight_sharing_runs_30_lloyd_iterations_with_16_clusters_by_default():
    values = torch.arange(500, dtype=torch.float64) ** 0.3  # Lloyd's algorithm needs more than 31 rounds here
    thirty = kmeans_1d(values, 16, iterations=30)[0]
    assert not torch.equal(thirty, kmeans_1d(values, 16, iterations=31)[0])
    assert torch.equal(kmeans_1d(values, 16)[0], thirty)
    layer = nn.Linear(20, 25, dtype=torch.float64)
    with torch.no_grad():
        layer.weight.copy_(values.reshape(25, 20))
    shared, report = share_weights(layer)
    assert report.clusters == 16 and torch.equal(shared.codebook.detach(), thirty)
    assert torch.equal(SharedWeights(layer).codebook.detach(), thirty)
    one = kmeans_1d(values, 16, iterations=1)[0]
    assert torch.equal(share_weights(layer, 16, iterations=1)[0].codebook.detach(), one)
    assert torch.equal(SharedWeights(layer, 16, iterations=1).codebook.detach(), one)


def test_shared_conv_keeps_stride_padding_dilation_groups_and_a_missing_bias():
    torch.manual_seed(0)
    conv = nn.Conv2d(4, 6, 3, stride=2, padding=2, dilation=2, groups=2, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([-0.5, 0.25, 1.0])[torch.randint(0, 3, conv.weight.shape)])
    shared, report = share_weights(conv)
    assert shared.bias is None and report.max_error == 0.0
    x = torch.randn(2, 4, 11, 11)
    assert shared(x).shape == conv(x).shape == (2, 6, 6, 6) and torch.allclose(shared(x), conv(x), atol=1e-6, rtol=0)


def test_shared_weights_name_what_they_refuse():
    with pytest.raises(ValueError, match=r"^layer must be an nn\.Linear or nn\.Conv2d, got ConvTranspose2d$"):
        SharedWeights(nn.ConvTranspose2d(2, 2, 3))
    with pytest.raises(ValueError, match=r"^layer: padding_mode 'reflect' is not supported, only 'zeros'$"):
        SharedWeights(nn.Conv2d(2, 2, 3, padding=1, padding_mode="reflect"))
    for n in (1, 257, 16.0, True):
        with pytest.raises(ValueError, match=rf"^n_clusters must be an integer in \[2, 256\] \(uint8 indices\), "
                                             rf"got {re.escape(repr(n))}$"):
            SharedWeights(nn.Linear(30, 20), n)
    assert [SharedWeights(nn.Linear(30, 20), n).codebook.numel() for n in (2, 256)] == [2, 256]


def test_kmeans_works_on_the_device_of_its_values():
    """The codebook is made on the values' device, not on the default one: under another default device (the meta
    device, there on every machine, stands in for a GPU) CPU values give the same CPU codebook and indices."""
    values = torch.randn(200, generator=torch.Generator().manual_seed(0))
    expected = kmeans_1d(values, 4)
    with torch.device("meta"):
        codebook, index = kmeans_1d(values, 4)
    assert codebook.device.type == index.device.type == "cpu"
    assert torch.equal(codebook, expected[0]) and torch.equal(index, expected[1])
