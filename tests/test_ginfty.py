"""The oracles of the g_infty reference sheet (§7), numbered as there."""

import copy
import math

import pytest
import torch

from course_lib.ginfty import (EPSILON, GInfinity, active_count, capacity_for, delta_w, grow_all, last_batchnorm,
                               last_kernel, regularization)
from course_lib.layers import BatchNorm1d


def fc_sublayer(width=6, batchnorm=True):
    def make(i):
        layers = [torch.nn.Linear(width, width)]
        if batchnorm:
            layers.append(BatchNorm1d(width))
        return torch.nn.Sequential(*layers)
    return make


def layer(w=1.0, width=6, **options):
    torch.manual_seed(0)
    module = GInfinity(fc_sublayer(width), w_init=w, **options).double()
    with torch.no_grad():
        module.w.fill_(w)  # exactly w in float64, not float32(w)
    return module


# 1. δ identity ---------------------------------------------------------------------------------------

def test_1_delta_identity_range_and_monotonicity():
    x = torch.linspace(-5, 5, 401, dtype=torch.float64)
    for w in (-1.0, 0.0, 0.3, 2.5):
        w_t = torch.tensor(w, dtype=torch.float64)
        d = delta_w(x, w_t)
        torch.testing.assert_close(d, torch.relu(1 - torch.exp(x - w_t)), rtol=0, atol=1e-12)
        assert ((d >= 0) & (d < 1)).all()
        assert (d[1:] <= d[:-1]).all(), "non-increasing in x"
    assert (delta_w(0.5, torch.tensor(2.0)) >= delta_w(0.5, torch.tensor(1.0))).all(), "non-decreasing in w"
    w = torch.tensor([0.3, 1.7, 4.0], dtype=torch.float64, requires_grad=True)
    xs = torch.tensor([1.0, 0.5, 2.0], dtype=torch.float64)
    delta_w(xs, w).sum().backward()
    expected = torch.exp(xs - w.detach()) * (xs < w.detach())
    torch.testing.assert_close(w.grad, expected, rtol=0, atol=1e-12)


def test_1_delta_never_overflows_and_keeps_small_differences():
    w = torch.tensor(0.0, requires_grad=True)
    d = delta_w(torch.tensor(200.0), w)  # e^{200} overflows float32
    d.backward()
    assert d.item() == 0.0 and w.grad.item() == 0.0 and not torch.isnan(w.grad)
    eta = torch.tensor(3e-8)  # float32, w − x = η for x = 0
    tiny = delta_w(torch.tensor(0.0), eta)
    assert tiny.item() == pytest.approx(eta.item(), rel=1e-6), "1 − e^{−η} ≈ η without cancellation"
    naive = torch.relu(1 - torch.exp(torch.tensor(0.0) - eta)).item()
    assert abs(naive - eta.item()) / eta.item() > 0.5, "the textbook form is off by ~100 % in float32 (1 − e^{−η} rounds)"
    with pytest.raises(ValueError, match="alpha"):
        delta_w(0.0, torch.tensor(1.0), alpha=0.0)


def test_delta_stretch_alpha():
    w = torch.tensor(2.0, dtype=torch.float64)
    x = torch.tensor(1.0, dtype=torch.float64)
    assert delta_w(x, w, alpha=3.0).item() == pytest.approx(1 - math.exp(3 * (1 - 2)))


# 2. integer w ----------------------------------------------------------------------------------------

def test_2_integer_w():
    for k in (1, 2, 3):
        w = torch.tensor(float(k), dtype=torch.float64, requires_grad=True)
        at_k = delta_w(k, w)
        at_k.backward()
        assert at_k.item() == 0.0 and w.grad.item() == 0.0, "δ_k(k) = 0 with a zero gradient"
        w.grad = None
        below = delta_w(k - 1, w)
        below.backward()
        assert below.item() == pytest.approx(1 - 1 / math.e) and w.grad.item() == pytest.approx(1 / math.e)
        assert active_count(k) == k and active_count(k + 1e-4) == k + 1
    assert active_count(0.0) == active_count(-0.7) == 0
    assert capacity_for(0.3, 5) == capacity_for(5.0, 5) == 5 and capacity_for(5.01, 5) == 10


# 3. w ≤ 0 --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("w", [0.0, -0.7])
def test_3_nonpositive_w_gives_h_of_x(w):
    module = layer(w)
    x = torch.randn(4, 6, dtype=torch.float64)
    y = module(x)
    assert torch.equal(y, torch.relu(x))
    assert not y.requires_grad or module.w.grad is None
    module.lambda_w = 0.0
    if y.requires_grad:
        y.sum().backward()
    assert module.w.grad is None or module.w.grad.item() == 0.0


# 4. closed form --------------------------------------------------------------------------------------

@pytest.mark.parametrize("w", [0.4, 1.0, 2.6, 4.2])
def test_4_closed_form(w):
    module = layer(w).eval()
    x = torch.randn(5, 6, dtype=torch.float64)
    g = x
    for i in range(active_count(w)):
        g = torch.relu(g + (1 - math.exp(i - w)) * module.sublayers[i](g))
    torch.testing.assert_close(module(x), torch.relu(g), rtol=0, atol=1e-12)


# 5. capacity independence -----------------------------------------------------------------------------

@pytest.mark.parametrize("run_inactive", [False, True])
def test_5_capacity_independence(run_inactive):
    small = layer(2.3, run_inactive=run_inactive).eval()
    large = copy.deepcopy(small)
    large._add_sublayers(10)
    assert (small.capacity, large.capacity) == (5, 10)
    x = torch.randn(3, 6, dtype=torch.float64)
    torch.testing.assert_close(small(x), large(x), rtol=0, atol=0)
    skipping = copy.deepcopy(small)
    skipping.run_inactive = not run_inactive
    torch.testing.assert_close(small(x), skipping(x), rtol=0, atol=1e-15)


# 6. gradients of inactive sub-layers ------------------------------------------------------------------

@pytest.mark.parametrize("run_inactive", [True, False])
def test_6_inactive_sublayers_get_zero_or_no_gradient(run_inactive):
    module = layer(2.5, run_inactive=run_inactive)
    module(torch.randn(8, 6, dtype=torch.float64)).square().sum().backward()
    for i, sublayer in enumerate(module.sublayers):
        for p in sublayer.parameters():
            if i < 3:
                assert p.grad is not None and p.grad.abs().sum() > 0, f"active sub-layer {i} learns"
            elif run_inactive:
                assert p.grad is not None and torch.equal(p.grad, torch.zeros_like(p)), f"inactive {i}: exact zeros"
            else:
                assert p.grad is None, f"skipped sub-layer {i}: no gradient at all"


# 7. conditional regularizer ---------------------------------------------------------------------------

@pytest.mark.parametrize("w", [2.4, 3.0])
def test_7_conditional_regularizer_value_and_gradient(w):
    lambda_w, lambda_f, n = 1e-4, 1e-2, 6
    module = layer(w, lambda_w=lambda_w, lambda_f=lambda_f)
    with torch.no_grad():
        for sublayer in module.sublayers:
            sublayer[1].weight.fill_(3.0)
    r = module.regularization()
    active = active_count(w)
    expected = lambda_w * w ** 2 + lambda_f * sum((1 - math.exp(i + EPSILON - w)) * 9 * n for i in range(active) if i + EPSILON < w)
    assert r.item() == pytest.approx(expected, rel=1e-9)
    r.backward()
    expected_grad = 2 * lambda_w * w + lambda_f * sum(math.exp(i + EPSILON - w) * 9 * n for i in range(active) if i + EPSILON < w)
    assert module.w.grad.item() == pytest.approx(expected_grad, rel=1e-6)
    for i, sublayer in enumerate(module.sublayers):
        gamma_grad = sublayer[1].weight.grad
        if i + EPSILON < w:
            assert gamma_grad is not None and (gamma_grad != 0).all()
        else:
            assert gamma_grad is None, f"inactive sub-layer {i}: no gradient at all, not even zeros"


def test_7_epsilon_survives_float32():
    w = torch.tensor(2.0, requires_grad=True)  # float32, integer w: sub-layer 1 active, sub-layer 2 not
    d = delta_w(2, w, shift=EPSILON)
    d.backward()
    assert d.item() == 0.0 and w.grad.item() == 0.0
    assert float(torch.tensor(2.0) + EPSILON) == 2.0, "the naive form δ_w(i + ε) would lose ε in float32"


def test_7_epsilon_is_subtracted_from_the_difference_w_minus_i():
    """δ_w(i + ε) = 1 − e^{−((w − i) − ε)} for w > i + ε, 0 below, at every precision: the shift moves the gate."""
    epsilon = 1e-7
    above = torch.tensor(2.0).nextafter(torch.tensor(3.0))  # float32's next value after 2: 2 + 2⁻²²
    d = delta_w(2, above, shift=epsilon)
    assert d.item() == pytest.approx(2.0 ** -22 - epsilon, rel=1e-3), "ε taken off the difference, not lost in 2 + ε"
    w = torch.tensor(2.0 + epsilon / 2, dtype=torch.float64, requires_grad=True)  # 2 < w < 2 + ε
    shifted, plain = delta_w(2, w, shift=epsilon), delta_w(2, w)
    shifted.backward()
    assert shifted.item() == 0.0 and w.grad.item() == 0.0, "below i + ε the shifted gate is 0, with no gradient"
    assert plain.item() == pytest.approx(epsilon / 2, rel=1e-6), "the unshifted gate is already open there"
    far = torch.tensor(5.0, dtype=torch.float64)
    assert delta_w(2, far, shift=0.25).item() == pytest.approx(1 - math.exp(-(3.0 - 0.25)), rel=1e-12)


def test_optional_penalties_on_beta_and_kernel():
    plain = layer(1.5, lambda_f=1.0)
    with_beta = layer(1.5, lambda_f=1.0, penalize_beta=True)
    with_kernel = layer(1.5, lambda_f=1.0, penalize_kernel=True)
    with torch.no_grad():
        for m in (plain, with_beta, with_kernel):
            for s in m.sublayers:
                s[1].bias.fill_(2.0)
    assert with_beta.regularization() > plain.regularization()
    assert with_kernel.regularization() > plain.regularization()


# 8. gradcheck ---------------------------------------------------------------------------------------

def test_8_gradcheck_with_respect_to_w_and_x():
    module = layer(2.4).eval()
    x = torch.randn(3, 6, dtype=torch.float64, requires_grad=True)

    def run(w, x):
        with torch.no_grad():
            module.w.copy_(w)
        g = x
        for i in range(active_count(w.item())):
            g = torch.relu(g + delta_w(i, w) * module.sublayers[i](g))
        return g

    assert torch.autograd.gradcheck(run, (torch.tensor(2.4, dtype=torch.float64, requires_grad=True), x))
    w_grad = torch.autograd.grad(module(x).sum(), module.w)[0]
    w_t = torch.tensor(2.4, dtype=torch.float64, requires_grad=True)
    torch.testing.assert_close(w_grad, torch.autograd.grad(run(w_t, x).sum(), w_t)[0])


# 9. continuity across integers ----------------------------------------------------------------------

def test_9_continuity_across_an_integer():
    module = layer(2.0).eval()
    x = torch.randn(4, 6, dtype=torch.float64)
    at_k = module(x)
    with torch.no_grad():
        module.w.fill_(2.0 + 1e-5)
    assert (module(x) - at_k).abs().max().item() < 1e-3
    assert (module(x) - at_k).abs().max().item() > 0, "a third sub-layer has just become active"


# 10–11. growth ---------------------------------------------------------------------------------------

def train_steps(model, optimizer, steps, x):
    for _ in range(steps):
        optimizer.zero_grad()
        (model(x).square().mean() + regularization(model)).backward()
        optimizer.step()
        grow_all(model, optimizer)


def test_10_growth_keeps_the_optimizer_state_bit_identical():
    torch.manual_seed(0)
    model = GInfinity(fc_sublayer(), w_init=4.9, lambda_w=1e-4, lambda_f=1e-8)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.randn(16, 6)
    train_steps(model, optimizer, 3, x)
    saved = {id(p): {k: (v.clone() if torch.is_tensor(v) else v) for k, v in optimizer.state[p].items()}
             for p in model.parameters()}
    old_parameters = list(model.parameters())
    with torch.no_grad():
        model.w.fill_(5.3)
    new = grow_all(model, optimizer)
    assert model.capacity == 10 and new
    assert all(any(p is q for g in optimizer.param_groups for q in g["params"]) for p in new), "new parameters are optimized"
    for p in old_parameters:
        for key, value in saved[id(p)].items():
            assert torch.equal(optimizer.state[p][key], value), "existing state is untouched"
    assert new[0].device == model.w.device and new[0].dtype == model.w.dtype
    train_steps(model, optimizer, 1, x)
    assert optimizer.state[model.w]["step"].item() == 4, "w's step counter continues"
    assert "exp_avg" in optimizer.state[model.sublayers[5][0].weight], "the newly active sub-layer 5 is trained"


def test_10_contrast_recreating_the_optimizer_loses_its_state():
    torch.manual_seed(0)
    model = GInfinity(fc_sublayer(), w_init=4.9)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    train_steps(model, optimizer, 3, torch.randn(16, 6))
    rebuilt = torch.optim.Adam(model.parameters(), lr=1e-3)  # what the reference did on growth
    assert optimizer.state[model.w]["step"].item() == 3 and len(rebuilt.state) == 0


def test_11_forward_refuses_a_depth_beyond_the_capacity():
    module = layer(4.5)
    with torch.no_grad():
        module.w.fill_(5.5)
    with pytest.raises(RuntimeError, match="grow"):
        module(torch.randn(2, 6, dtype=torch.float64))
    assert module.grow() and module.capacity == 10
    module(torch.randn(2, 6, dtype=torch.float64))


def test_growth_keeps_the_learning_rate_of_ws_group():
    module = layer(4.9)
    optimizer = torch.optim.SGD([{"params": list(module.parameters()), "lr": 0.123}], lr=1.0)
    with torch.no_grad():
        module.w.fill_(5.5)
    module.grow(optimizer)
    assert optimizer.param_groups[-1]["lr"] == 0.123


def test_growth_copies_every_hyper_parameter_of_ws_own_group():
    module = layer(4.9)
    others = [p for p in module.parameters() if p is not module.w]
    optimizer = torch.optim.SGD([{"params": others, "lr": 0.5},
                                 {"params": [module.w], "lr": 0.123, "momentum": 0.9, "weight_decay": 1e-3}], lr=1.0)
    with torch.no_grad():
        module.w.fill_(5.5)
    new_parameters = module.grow(optimizer)
    group = optimizer.param_groups[-1]
    assert len(optimizer.param_groups) == 3 and {id(p) for p in group["params"]} == {id(p) for p in new_parameters}
    assert (group["lr"], group["momentum"], group["weight_decay"]) == (0.123, 0.9, 1e-3), "w's group, not group 0"
    assert [g["lr"] for g in optimizer.param_groups[:2]] == [0.5, 0.123], "the existing groups are untouched"


# 13. module hygiene ---------------------------------------------------------------------------------

def test_13_eval_to_and_state_dict_reach_the_sublayers(tmp_path):
    module = layer(5.5 - 0.4)
    with torch.no_grad():
        module.w.fill_(7.2)
    module.grow()
    module(torch.randn(8, 6, dtype=torch.float64))  # update some running statistics
    module.eval()
    assert all(not m.training for m in module.modules())
    torch.save(module.state_dict(), tmp_path / "checkpoint.pt")
    fresh = layer(1.0)
    assert fresh.capacity == 5
    fresh.load_state_dict(torch.load(tmp_path / "checkpoint.pt"))
    assert fresh.capacity == 10
    fresh.eval()
    x = torch.randn(4, 6, dtype=torch.float64)
    torch.testing.assert_close(fresh(x), module(x), rtol=0, atol=0)
    moved = layer(1.0).float()
    with torch.no_grad():
        moved.w.fill_(6.0)
    moved.grow()
    assert all(p.dtype == torch.float32 for p in moved.parameters()), "future sub-layers follow w's dtype"


def test_a_sublayer_that_changes_the_shape_is_rejected():
    module = GInfinity(lambda i: torch.nn.Linear(4, 3), w_init=1.0)
    with pytest.raises(ValueError, match="changed the shape"):
        module(torch.randn(2, 4))


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="w_step"):
        GInfinity(fc_sublayer(), w_step=0)
    with pytest.raises(ValueError, match="alpha"):
        GInfinity(fc_sublayer(), alpha=-1.0)
    with pytest.raises(ValueError, match="lambda"):
        GInfinity(fc_sublayer(), lambda_w=-1.0)


# 14. parameter accounting ---------------------------------------------------------------------------

def test_14_parameter_accounting_and_telemetry():
    width = 6
    module = GInfinity(fc_sublayer(width, batchnorm=False), w_init=2.5)
    assert module.parameters_in_use() == 3 * width * (width + 1) + 1, "A(w)·N(N+1) + 1, as in the paper"
    with_bn = GInfinity(fc_sublayer(width), w_init=2.5)
    assert with_bn.parameters_in_use() == 3 * (width * (width + 1) + 2 * width) + 1, "BN's γ and β count, its buffers do not"
    assert with_bn.telemetry() == {"w": 2.5, "ceil_w": 3, "capacity": 5, "parameters_in_use": with_bn.parameters_in_use()}


def test_convex_variant():
    module = layer(1.5, residual=False).eval()
    x = torch.randn(2, 6, dtype=torch.float64)
    g = x
    for i in range(2):
        d = 1 - math.exp(i - 1.5)
        g = torch.relu((1 - d) * g + d * module.sublayers[i](g))
    torch.testing.assert_close(module(x), torch.relu(g))


# defaults, arguments and messages -------------------------------------------------------------------

def test_documented_defaults():
    """w_init 1, w_step 5, α 1, ReLU as h, no regularization, and only the active sub-layers evaluated."""
    torch.manual_seed(0)
    module = GInfinity(fc_sublayer())
    assert module.w.item() == 1.0 and module.capacity == 5 and module.active() == 1
    assert (module.w_step, module.alpha, module.lambda_w, module.lambda_f) == (5, 1.0, 0.0, 0.0)
    assert module.regularization().item() == 0.0, "λ_w = λ_f = 0: no penalty even though γ = 1"
    module(torch.randn(8, 6)).square().sum().backward()
    assert all(p.grad is None for sublayer in module.sublayers[1:] for p in sublayer.parameters()), \
        "inactive sub-layers are not run at all"


def test_a_custom_h_replaces_relu():
    """h = identity gives the plain residual stack g_{i+1} = g_i + δ_w(i) f_i(g_i)."""
    torch.manual_seed(0)
    module = GInfinity(fc_sublayer(), h=torch.nn.Identity(), w_init=2.5).double().eval()
    x = torch.randn(4, 6, dtype=torch.float64)
    g = x
    for i in range(3):
        g = g + (1 - math.exp(i - 2.5)) * module.sublayers[i](g)
    torch.testing.assert_close(module(x), g, rtol=0, atol=1e-12)
    assert (module(x) < 0).any(), "negative values survive: no ReLU anywhere"


def test_the_stretch_alpha_reaches_the_forward_pass_and_the_regularizer():
    alpha, w, lambda_f = 2.5, 1.6, 0.1
    module = layer(w, alpha=alpha, lambda_f=lambda_f).eval()
    x = torch.randn(3, 6, dtype=torch.float64)
    g = x
    for i in range(2):
        g = torch.relu(g + (1 - math.exp(alpha * (i - w))) * module.sublayers[i](g))
    torch.testing.assert_close(module(x), torch.relu(g), rtol=0, atol=1e-12)
    expected = lambda_f * sum((1 - math.exp(alpha * (i + EPSILON - w))) * 6 for i in range(2))  # γ = 1: Σγ² = 6
    assert module.regularization().item() == pytest.approx(expected, rel=1e-9)


def test_each_sublayer_is_built_with_its_index():
    indices = []

    def make(i):
        indices.append(i)
        return torch.nn.Linear(3, 3)

    module = GInfinity(make, w_init=1.0, w_step=2)
    assert indices == [0, 1]
    with torch.no_grad():
        module.w.fill_(3.5)
    module.grow()
    assert indices == [0, 1, 2, 3]


def test_the_smallest_allowed_step_and_stretch():
    """w_step = 1 is allowed (capacity exactly A(w)); α = 0 is not (δ would be 0 everywhere)."""
    assert GInfinity(fc_sublayer(), w_init=2.5, w_step=1).capacity == 3
    with pytest.raises(ValueError, match=r"^w_step must be a positive int, got 0$"):
        GInfinity(fc_sublayer(), w_step=0)
    with pytest.raises(ValueError, match=r"^alpha must be > 0, got 0\.0$"):
        GInfinity(fc_sublayer(), alpha=0.0)
    with pytest.raises(ValueError, match=r"^lambda_w and lambda_f must be ≥ 0, got 0\.0 and -1\.0$"):
        GInfinity(fc_sublayer(), lambda_f=-1.0)
    with pytest.raises(ValueError, match=r"^w_init must be a finite number, got inf$"):
        GInfinity(fc_sublayer(), w_init=math.inf)


def test_forward_errors_say_what_went_wrong_and_what_to_do():
    module = layer(4.5)
    with torch.no_grad():
        module.w.fill_(5.5)
    with pytest.raises(RuntimeError, match=r"^w = 5\.5000 needs 6 sub-layers but only 5 exist: call grow\(optimizer\) "
                                           r"after each optimizer step \(course_lib\.ginfty\.grow_all\)$"):
        module(torch.randn(2, 6, dtype=torch.float64))
    shrinking = GInfinity(lambda i: torch.nn.Linear(4, 3), w_init=1.0)
    with pytest.raises(ValueError, match=r"^sub-layer 0 changed the shape from \(2, 4\) to \(2, 3\); "
                                         r"g_infty needs sub-layers that keep the shape of their input$"):
        shrinking(torch.randn(2, 4))


# growth ---------------------------------------------------------------------------------------------

def test_growth_without_w_in_the_optimizer_takes_the_first_groups_hyper_parameters():
    module = layer(4.9)
    others = [p for p in module.parameters() if p is not module.w]
    optimizer = torch.optim.SGD([{"params": others, "lr": 0.25, "momentum": 0.5}], lr=1.0)  # w fixed, not trained
    with torch.no_grad():
        module.w.fill_(5.5)
    new_parameters = module.grow(optimizer)
    group = optimizer.param_groups[-1]
    assert len(optimizer.param_groups) == 2 and {id(p) for p in group["params"]} == {id(p) for p in new_parameters}
    assert (group["lr"], group["momentum"]) == (0.25, 0.5)


def test_growth_is_needed_only_when_the_depth_exceeds_the_capacity():
    """A capacity that is no multiple of w_step (here 7 sub-layers from a checkpoint saved with w_step = 7) and holds
    exactly A(w) is enough: grow adds nothing."""
    torch.manual_seed(0)
    saved = GInfinity(fc_sublayer(), w_init=6.5, w_step=7)
    module = GInfinity(fc_sublayer(), w_init=1.0, w_step=5)
    module.load_state_dict(saved.state_dict())
    assert (module.capacity, module.active()) == (7, 7)
    assert module.grow() == [] and module.capacity == 7
    with torch.no_grad():
        module.w.fill_(7.5)
    assert len(module.grow()) > 0 and module.capacity == 10


def test_sublayers_created_for_a_checkpoint_live_on_ws_device():
    """Loading a checkpoint of a larger capacity into a module on another device (meta stands in for a GPU) creates the
    missing sub-layers on that device."""
    torch.manual_seed(0)
    saved = GInfinity(fc_sublayer(), w_init=7.2).to("meta")
    module = GInfinity(fc_sublayer(), w_init=1.0).to("meta")
    module.load_state_dict(saved.state_dict())
    assert module.capacity == 10
    assert {p.device.type for p in module.parameters()} == {"meta"}


# regularization -------------------------------------------------------------------------------------

def test_regularizer_values_of_gamma_beta_and_kernel():
    """λ_f Σ_i δ_w(i + ε) (Σγ_i² [+ Σβ_i²] [+ Σ W_i²]) with W_i the last kernel, for negative and fractional values."""
    w, lambda_f = 1.5, 0.5
    gates = [1 - math.exp(i + EPSILON - w) for i in range(2)]
    modules = {options: layer(w, lambda_f=lambda_f, penalize_beta=options[0], penalize_kernel=options[1])
               for options in [(False, False), (True, False), (False, True)]}
    for module in modules.values():
        with torch.no_grad():
            for s in module.sublayers:
                s[1].weight.fill_(-0.5)
                s[1].bias.fill_(-3.0)
                s[0].weight.fill_(0.25)
    gamma, beta, kernel = 6 * 0.25, 6 * 9.0, 36 * 0.0625
    assert modules[False, False].regularization().item() == pytest.approx(lambda_f * sum(gates) * gamma, rel=1e-12)
    assert modules[True, False].regularization().item() == pytest.approx(lambda_f * sum(gates) * (gamma + beta), rel=1e-12)
    assert modules[False, True].regularization().item() == pytest.approx(lambda_f * sum(gates) * (gamma + kernel), rel=1e-12)


def test_regularizer_of_sublayers_without_batchnorm_scale_or_kernel():
    """No batch normalization, or one without γ (affine=False): no γ term; no Linear or convolution: no kernel term."""
    w = 2.0
    no_batchnorm = GInfinity(fc_sublayer(batchnorm=False), w_init=w, lambda_w=0.1, lambda_f=1.0)
    assert no_batchnorm.regularization().item() == pytest.approx(0.1 * w ** 2)
    no_scale = GInfinity(lambda i: torch.nn.Sequential(torch.nn.Linear(6, 6), torch.nn.BatchNorm1d(6, affine=False)),
                         w_init=w, lambda_w=0.1, lambda_f=1.0)
    assert no_scale.regularization().item() == pytest.approx(0.1 * w ** 2)
    no_kernel = GInfinity(lambda i: torch.nn.Tanh(), w_init=w, lambda_w=0.1, lambda_f=1.0, penalize_kernel=True)
    assert no_kernel.regularization().item() == pytest.approx(0.1 * w ** 2)
    assert last_batchnorm(torch.nn.Linear(2, 2)) is None and last_kernel(torch.nn.Tanh()) is None


def test_model_regularization_sums_the_layers_and_is_zero_without_any():
    torch.manual_seed(0)
    model = torch.nn.Sequential(GInfinity(fc_sublayer(), w_init=1.5, lambda_w=0.1, lambda_f=0.01), torch.nn.Linear(6, 6),
                                GInfinity(fc_sublayer(), w_init=2.5, lambda_w=0.2, lambda_f=0.02))
    expected = model[0].regularization() + model[2].regularization()
    assert regularization(model).item() == pytest.approx(expected.item(), rel=1e-12) and expected.item() > 0
    plain = regularization(torch.nn.Linear(6, 6))
    assert plain == 0.0 and isinstance(plain, float)
