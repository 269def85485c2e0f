"""course_lib.optim against torch.optim: same parameters and state after 100 steps, in float64, to 1e-12 (and bit for bit in
float32); the adaptive rules' closed forms; arguments, state_dicts both ways, parameter groups."""

import copy
import itertools

import pytest
import torch

from course_lib import optim
from messages import exactly

STEPS = 100
TOLERANCE = dict(rtol=0.0, atol=1e-12)
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


class MLPWithSideHead(torch.nn.Module):
    """A small MLP; its side head joins the loss only on every third step, so its gradient is None on the others."""

    def __init__(self):
        super().__init__()
        self.body = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.Linear(16, 16), torch.nn.ReLU())
        self.head = torch.nn.Linear(16, 3)
        self.side = torch.nn.Linear(16, 3)

    def forward(self, x, step):
        h = self.body(x)
        out = self.head(h)
        return out + self.side(h) if step % 3 == 0 else out


class ConvNetWithBatchNorm(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.features = torch.nn.Sequential(
            # no bias before a batch norm: it would cancel, and Adam would turn its ~1e-17 rounding-noise
            # gradient into full-size steps that amplify the last bit of any difference
            torch.nn.Conv2d(1, 4, 3, padding=1, bias=False), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
            torch.nn.Conv2d(4, 4, 3, padding=1, bias=False), torch.nn.BatchNorm2d(4), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(2),
        )
        self.head = torch.nn.Linear(16, 3)
        self.side = torch.nn.Linear(16, 3)

    def forward(self, x, step):
        h = self.features(x).flatten(1)
        out = self.head(h)
        return out + self.side(h) if step % 3 == 0 else out


MODELS = {"mlp": (MLPWithSideHead, (8, 6)), "convnet-bn": (ConvNetWithBatchNorm, (8, 1, 6, 6))}


def param_groups(model, lr, **second_group):
    """Two groups: the first layer(s) at half the learning rate (plus any overrides), the rest at lr."""
    first = list(model.body[0].parameters()) if hasattr(model, "body") else list(model.features[0].parameters())
    ids = {id(p) for p in first}
    rest = [p for p in model.parameters() if id(p) not in ids]
    return [dict(params=first, lr=lr / 2, **second_group), dict(params=rest)]


def train(model, optimizer, steps, device, seed=0, start=0):
    generator = torch.Generator().manual_seed(seed)
    shape = MODELS["mlp"][1] if isinstance(model, MLPWithSideHead) else MODELS["convnet-bn"][1]
    for step in range(start + steps):
        x = torch.randn(shape, generator=generator, dtype=torch.float64)
        y = torch.randint(0, 3, (shape[0],), generator=generator)
        if step < start:
            continue
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x.to(device), step), y.to(device))
        loss.backward()
        optimizer.step()


def assert_same(model_a, opt_a, model_b, opt_b):
    for (name, a), b in zip(model_a.named_parameters(), model_b.parameters()):
        torch.testing.assert_close(a, b, **TOLERANCE, msg=lambda m: f"parameter {name}: {m}")
        state_a, state_b = opt_a.state.get(a, {}), opt_b.state.get(b, {})
        assert set(state_a) == set(state_b), f"state keys of {name}: {set(state_a)} vs {set(state_b)}"
        for key in state_a:
            va, vb = state_a[key], state_b[key]
            if key == "step":
                assert int(va) == int(vb), f"step of {name}"
            else:
                torch.testing.assert_close(va, vb, **TOLERANCE, msg=lambda m: f"{key} of {name}: {m}")


def run_pair(ours_class, torch_class, model_name, device, foreach, kwargs, second_group=None, steps=STEPS):
    torch.manual_seed(0)
    model_a = MODELS[model_name][0]().double().to(device)
    model_b = copy.deepcopy(model_a)
    lr = kwargs.pop("lr", 0.05)
    opt_a = ours_class(param_groups(model_a, lr, **(second_group or {})), lr=lr, foreach=foreach, **kwargs)
    opt_b = torch_class(param_groups(model_b, lr, **(second_group or {})), lr=lr, **kwargs)
    train(model_a, opt_a, steps, device)
    train(model_b, opt_b, steps, device)
    return model_a, opt_a, model_b, opt_b


def sgd_options():
    for momentum, dampening, weight_decay, nesterov in itertools.product((0.0, 0.9), (0.0, 0.1), (0.0, 1e-2), (False, True)):
        if nesterov and (momentum == 0 or dampening != 0):
            continue
        yield dict(momentum=momentum, dampening=dampening, weight_decay=weight_decay, nesterov=nesterov)


def adam_options():
    for weight_decay, amsgrad, betas in itertools.product((0.0, 1e-2), (False, True), ((0.9, 0.999), (0.5, 0.9))):
        yield dict(weight_decay=weight_decay, amsgrad=amsgrad, betas=betas)


def label(options):
    return ",".join(f"{k}={v}" for k, v in options.items())


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("foreach", [True, False], ids=["foreach", "readable"])
@pytest.mark.parametrize("model_name", MODELS)
@pytest.mark.parametrize("options", list(sgd_options()), ids=label)
def test_sgd_matches_torch(options, model_name, foreach, device):
    second = {"momentum": 0.5} if options["momentum"] else {}
    assert_same(*run_pair(optim.SGD, torch.optim.SGD, model_name, device, foreach, dict(options), second))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("foreach", [True, False], ids=["foreach", "readable"])
@pytest.mark.parametrize("model_name", MODELS)
@pytest.mark.parametrize("classes", [(optim.Adam, torch.optim.Adam), (optim.AdamW, torch.optim.AdamW)], ids=["Adam", "AdamW"])
@pytest.mark.parametrize("options", list(adam_options()), ids=label)
def test_adam_and_adamw_match_torch(options, classes, model_name, foreach, device):
    options = dict(options, lr=1e-2)
    assert_same(*run_pair(*classes, model_name, device, foreach, options, {"betas": (0.8, 0.99)}))


def adaptive_options():
    """(course_lib class, torch class, options, second group's overrides) for Adagrad, RMSprop and Adadelta."""
    for lr_decay, weight_decay, initial in itertools.product((0.0, 0.05), (0.0, 1e-2), (0.0, 0.1)):
        yield optim.Adagrad, torch.optim.Adagrad, dict(lr=0.05, lr_decay=lr_decay, weight_decay=weight_decay,
                                                       initial_accumulator_value=initial), {"eps": 1e-3}
    for centered, momentum, weight_decay in itertools.product((False, True), (0.0, 0.9), (0.0, 1e-2)):
        yield optim.RMSprop, torch.optim.RMSprop, dict(lr=1e-2, alpha=0.9, centered=centered, momentum=momentum,
                                                       weight_decay=weight_decay), {"alpha": 0.99}
    for weight_decay, rho in itertools.product((0.0, 1e-2), (0.9, 0.5)):
        yield optim.Adadelta, torch.optim.Adadelta, dict(lr=1.0, rho=rho, weight_decay=weight_decay), {"eps": 1e-4}


def adaptive_label(case):
    return f"{case[0].__name__}:{label(case[2])}"


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("foreach", [True, False], ids=["foreach", "readable"])
@pytest.mark.parametrize("model_name", MODELS)
@pytest.mark.parametrize("case", list(adaptive_options()), ids=adaptive_label)
def test_adagrad_rmsprop_and_adadelta_match_torch(case, model_name, foreach, device):
    ours, theirs, options, second = case
    assert_same(*run_pair(ours, theirs, model_name, device, foreach, dict(options), second))


FLOAT32_CASES = [
    (optim.SGD, torch.optim.SGD, dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3)),
    (optim.Adam, torch.optim.Adam, dict(lr=1e-2, amsgrad=True, weight_decay=1e-3)),
    (optim.AdamW, torch.optim.AdamW, dict(lr=1e-2)),
    (optim.Adagrad, torch.optim.Adagrad, dict(lr=0.05, lr_decay=0.01, weight_decay=1e-3, initial_accumulator_value=0.1)),
    (optim.RMSprop, torch.optim.RMSprop, dict(lr=1e-2, momentum=0.9, weight_decay=1e-3)),
    (optim.RMSprop, torch.optim.RMSprop, dict(lr=1e-2, centered=True)),
    (optim.Adadelta, torch.optim.Adadelta, dict(weight_decay=1e-3)),
]


@pytest.mark.parametrize("foreach", [True, False], ids=["foreach", "readable"])
@pytest.mark.parametrize("ours, theirs, options", FLOAT32_CASES, ids=[f"{c[0].__name__}:{label(c[2])}" for c in FLOAT32_CASES])
def test_every_rule_gives_torchs_float32_numbers_bit_for_bit(ours, theirs, options, foreach):
    """The same operations in the same order as torch.optim's path of the same kind (the readable rule as its
    per-parameter loop, the multi-tensor one as its foreach kernels): not one bit differs after 60 steps, on
    parameters of four shapes, one of them strided, with gradients of very different sizes."""
    generator = torch.Generator().manual_seed(4)
    shapes = [(5, 3), (7,), (2, 3, 4), (1,)]
    start = [torch.randn(shape, generator=generator) for shape in shapes] + [torch.randn(6, 4, generator=generator).t()]
    ours_params = [torch.nn.Parameter(w.clone()) for w in start]  # (clone keeps the transposed one's strides)
    torch_params = [torch.nn.Parameter(w.clone()) for w in start]
    assert not ours_params[-1].is_contiguous()
    ours_optimizer = ours(ours_params, foreach=foreach, **options)
    torch_optimizer = theirs(torch_params, foreach=foreach, **options)
    for step in range(60):
        for i, (a, b) in enumerate(zip(ours_params, torch_params)):
            g = torch.randn(a.shape, generator=generator) * 10.0 ** (i - 2)
            a.grad, b.grad = g.clone(), g.clone()
        ours_optimizer.step()
        torch_optimizer.step()
    for i, (a, b) in enumerate(zip(ours_params, torch_params)):
        assert a.dtype == torch.float32
        assert torch.equal(a, b), f"parameter {i}: largest difference {(a - b).abs().max().item()}"


def test_the_side_head_really_misses_gradients_on_some_steps():
    model = MLPWithSideHead().double()
    opt = optim.Adam(model.parameters(), lr=1e-2)
    train(model, opt, 10, "cpu")
    assert opt.state[model.side.weight]["step"] == 4  # steps 0, 3, 6, 9
    assert opt.state[model.head.weight]["step"] == 10


@pytest.mark.parametrize("make", [
    lambda params: optim.SGD(params, lr=0.05, momentum=0.9, nesterov=True),
    lambda params: optim.Adam(params, lr=1e-2, amsgrad=True),
    lambda params: optim.AdamW(params, lr=1e-2),
    lambda params: optim.Adagrad(params, lr=0.05, lr_decay=0.01),
    lambda params: optim.RMSprop(params, lr=1e-2, centered=True, momentum=0.9),
    lambda params: optim.Adadelta(params, weight_decay=1e-3),
], ids=["SGD", "Adam", "AdamW", "Adagrad", "RMSprop", "Adadelta"])
def test_readable_and_foreach_paths_agree(make):
    torch.manual_seed(1)
    model_a = ConvNetWithBatchNorm().double()
    model_b = copy.deepcopy(model_a)
    opt_a, opt_b = make(model_a.parameters()), make(model_b.parameters())
    for group in opt_b.param_groups:
        group["foreach"] = False
    train(model_a, opt_a, STEPS, "cpu")
    train(model_b, opt_b, STEPS, "cpu")
    assert_same(model_a, opt_a, model_b, opt_b)


@pytest.mark.parametrize("make", [
    lambda params: optim.SGD(params, lr=0.05, momentum=0.9, dampening=0.1, weight_decay=1e-3),
    lambda params: optim.Adam(params, lr=1e-2, amsgrad=True, weight_decay=1e-3),
    lambda params: optim.AdamW(params, lr=1e-2),
    lambda params: optim.Adagrad(params, lr=0.05, initial_accumulator_value=0.1),
    lambda params: optim.RMSprop(params, lr=1e-2, centered=True, momentum=0.5),
    lambda params: optim.Adadelta(params, rho=0.8),
], ids=["SGD", "Adam", "AdamW", "Adagrad", "RMSprop", "Adadelta"])
def test_state_dict_round_trip_continues_identically(make, tmp_path):
    torch.manual_seed(2)
    model = MLPWithSideHead().double()
    resumed_model = copy.deepcopy(model)
    optimizer = make(model.parameters())
    train(model, optimizer, 100, "cpu")  # the uninterrupted run

    first_half = make(resumed_model.parameters())
    train(resumed_model, first_half, 50, "cpu")
    torch.save({"model": resumed_model.state_dict(), "optimizer": first_half.state_dict()}, tmp_path / "checkpoint.pt")
    checkpoint = torch.load(tmp_path / "checkpoint.pt")
    fresh_model = MLPWithSideHead().double()
    fresh_model.load_state_dict(checkpoint["model"])
    fresh_optimizer = make(fresh_model.parameters())
    fresh_optimizer.load_state_dict(checkpoint["optimizer"])
    train(fresh_model, fresh_optimizer, 50, "cpu", start=50)
    for a, b in zip(model.parameters(), fresh_model.parameters()):
        assert torch.equal(a, b)


STATE_CASES = [
    (optim.SGD, torch.optim.SGD, dict(lr=0.05, momentum=0.9)),
    (optim.Adam, torch.optim.Adam, dict(lr=1e-2)),
    (optim.Adagrad, torch.optim.Adagrad, dict(lr=0.05, lr_decay=0.01, initial_accumulator_value=0.1)),
    (optim.RMSprop, torch.optim.RMSprop, dict(lr=1e-2, centered=True, momentum=0.5)),
    (optim.Adadelta, torch.optim.Adadelta, dict(rho=0.8, weight_decay=1e-3)),
]


@pytest.mark.parametrize("direction", ["torch-to-course_lib", "course_lib-to-torch"])
@pytest.mark.parametrize("ours, theirs, kwargs", STATE_CASES, ids=[case[0].__name__ for case in STATE_CASES])
def test_a_state_dict_loads_either_way_and_training_continues_identically(ours, theirs, kwargs, direction):
    torch.manual_seed(3)
    first_model = MLPWithSideHead().double()
    first, second = (theirs, ours) if direction == "torch-to-course_lib" else (ours, theirs)
    first_optimizer = first(first_model.parameters(), **kwargs)
    train(first_model, first_optimizer, 30, "cpu")
    second_model = copy.deepcopy(first_model)
    second_optimizer = second(second_model.parameters(), **kwargs)
    # a copy, as a checkpoint file would give: load_state_dict keeps tensors that need no cast, so the two
    # optimizers would otherwise share (and both update) one momentum buffer
    second_optimizer.load_state_dict(copy.deepcopy(first_optimizer.state_dict()))
    train(first_model, first_optimizer, 30, "cpu", start=30)
    train(second_model, second_optimizer, 30, "cpu", start=30)
    assert_same(second_model, second_optimizer, first_model, first_optimizer)


def test_closure_and_zero_grad_behave_like_torch():
    model = torch.nn.Linear(3, 1)
    opt = optim.SGD(model.parameters(), lr=0.1)
    x = torch.randn(4, 3)

    def closure():
        opt.zero_grad()
        loss = model(x).pow(2).mean()
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert loss.ndim == 0 and loss.item() > 0
    opt.zero_grad()
    assert all(p.grad is None for p in model.parameters())


def test_defaults_are_torchs():
    params = [torch.nn.Parameter(torch.zeros(1))]
    for ours, theirs in [(optim.SGD, torch.optim.SGD), (optim.Adam, torch.optim.Adam), (optim.AdamW, torch.optim.AdamW),
                         (optim.Adagrad, torch.optim.Adagrad), (optim.RMSprop, torch.optim.RMSprop),
                         (optim.Adadelta, torch.optim.Adadelta)]:
        mine, reference = ours(params).defaults, theirs(params).defaults
        assert set(mine) - {"foreach"} <= set(reference), ours.__name__
        for key, value in mine.items():
            if key != "foreach":
                assert reference[key] == value, f"{ours.__name__} default {key}"


@pytest.mark.parametrize("make, argument", [
    (lambda p: optim.SGD(p, lr=-0.1), "lr"),
    (lambda p: optim.SGD(p, lr=0.1, momentum=-0.5), "momentum"),
    (lambda p: optim.SGD(p, lr=0.1, weight_decay=-1e-4), "weight_decay"),
    (lambda p: optim.SGD(p, lr=0.1, nesterov=True), "nesterov"),
    (lambda p: optim.SGD(p, lr=0.1, momentum=0.9, dampening=0.1, nesterov=True), "nesterov"),
    (lambda p: optim.SGD([{"params": p, "lr": -1.0}], lr=0.1), "lr"),
    (lambda p: optim.Adam(p, lr=-1e-3), "lr"),
    (lambda p: optim.Adam(p, betas=(1.0, 0.999)), r"betas\[0\]"),
    (lambda p: optim.Adam(p, betas=(0.9, -0.1)), r"betas\[1\]"),
    (lambda p: optim.Adam(p, betas=(0.9,)), "betas"),
    (lambda p: optim.Adam(p, eps=-1e-8), "eps"),
    (lambda p: optim.AdamW(p, weight_decay=-0.01), "weight_decay"),
    (lambda p: optim.Adam(p, lr=float("nan")), "lr"),
    (lambda p: optim.Adagrad(p, lr_decay=-0.1), "lr_decay"),
    (lambda p: optim.Adagrad(p, initial_accumulator_value=-1.0), "initial_accumulator_value"),
    (lambda p: optim.RMSprop(p, alpha=1.5), "alpha"),
    (lambda p: optim.RMSprop(p, momentum=-0.9), "momentum"),
    (lambda p: optim.Adadelta(p, rho=-0.1), "rho"),
])
def test_bad_hyper_parameters_name_the_argument(make, argument):
    with pytest.raises(ValueError, match=argument):
        make([torch.nn.Parameter(torch.zeros(2))])


def test_terminal_velocity_of_momentum():
    """With a constant gradient g, SGD with momentum γ moves by η g / (1 − γ) per step in the limit."""
    w = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))
    opt = optim.SGD([w], lr=0.1, momentum=0.9)
    for _ in range(400):
        w.grad = torch.ones(1, dtype=torch.float64)
        before = w.detach().clone()
        opt.step()
    assert (before - w.detach()).item() == pytest.approx(0.1 / (1 - 0.9), rel=1e-12)


def block_path_parameters(sizes, seed=0):
    """float64 parameters of the given sizes, the last one non-contiguous (a transposed matrix)."""
    generator = torch.Generator().manual_seed(seed)
    params = [torch.nn.Parameter(torch.randn(n, generator=generator, dtype=torch.float64)) for n in sizes]
    params.append(torch.nn.Parameter(torch.randn(7, 5, generator=generator, dtype=torch.float64).t()))
    return params


def train_block_path(optimizer, params, steps=6, seed=1):
    """A different quadratic-plus-quartic loss at every step, so that every element gets its own gradient."""
    generator = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        targets = [torch.randn(p.shape, generator=generator, dtype=torch.float64) for p in params]
        optimizer.zero_grad()
        sum(((p - t) ** 2).sum() + 0.1 * (p ** 4).sum() for p, t in zip(params, targets)).backward()
        optimizer.step()


@pytest.mark.parametrize("block", [optim.base.CPU_BLOCK_ELEMENTS, 7], ids=["real-block", "block-of-7"])
@pytest.mark.parametrize("options", [dict(), dict(weight_decay=1e-2, amsgrad=True)], ids=["plain", "wd-amsgrad"])
@pytest.mark.parametrize("classes", [(optim.Adam, torch.optim.Adam), (optim.AdamW, torch.optim.AdamW)], ids=["adam", "adamw"])
def test_adams_cpu_blocks_match_torch_across_block_boundaries(block, options, classes, monkeypatch):
    """The multi-tensor CPU path cuts parameters into blocks of CPU_BLOCK_ELEMENTS: a parameter larger than a block
    (the real size) and sizes that straddle a small patched block must give torch's numbers exactly."""
    monkeypatch.setattr(optim.base, "CPU_BLOCK_ELEMENTS", block)
    sizes = [2 * block + 3, 5] if block > 100 else [5, 13, 30, 7, 1]
    ours_params, torch_params = block_path_parameters(sizes), block_path_parameters(sizes)
    ours = classes[0](ours_params, lr=0.01, foreach=True, **options)
    reference = classes[1](torch_params, lr=0.01, foreach=False, **options)
    train_block_path(ours, ours_params)
    train_block_path(reference, torch_params)
    for i, (a, b) in enumerate(zip(ours_params, torch_params)):
        torch.testing.assert_close(a, b, **TOLERANCE, msg=lambda m: f"parameter {i} of size {a.numel()}: {m}")
        for key in ("exp_avg", "exp_avg_sq"):
            torch.testing.assert_close(ours.state[a][key], reference.state[b][key], **TOLERANCE)


@pytest.mark.parametrize("make, message", [
    (lambda p: optim.SGD(p, lr=-0.1), "lr must be ≥ 0.0, got -0.1"),
    (lambda p: optim.SGD(p, lr=0.1, momentum=-0.5), "momentum must be ≥ 0.0, got -0.5"),
    (lambda p: optim.SGD(p, lr=0.1, weight_decay=-1e-4), "weight_decay must be ≥ 0.0, got -0.0001"),
    (lambda p: optim.SGD(p, lr=0.1, dampening=-0.1), "dampening must be ≥ 0.0, got -0.1"),
    (lambda p: optim.SGD(p, lr=0.1, nesterov=True),
     "nesterov=True needs momentum > 0 and dampening = 0, got momentum=0.0, dampening=0.0"),
    (lambda p: optim.SGD(p, lr=0.1, momentum=0.9, dampening=0.1, nesterov=True),
     "nesterov=True needs momentum > 0 and dampening = 0, got momentum=0.9, dampening=0.1"),
    (lambda p: optim.SGD(p, lr="fast"), "lr must be a number, got 'fast'"),
    (lambda p: optim.SGD(p, lr=True), "lr must be a number, got True"),
    (lambda p: optim.SGD(p, lr=None), "lr must be a number, got None"),
    (lambda p: optim.SGD(p, lr=torch.tensor([0.1, 0.2])), "lr must be a number, got tensor([0.1000, 0.2000])"),
    (lambda p: optim.SGD(p, lr=torch.tensor(-0.5)), "lr must be ≥ 0.0, got -0.5"),
    (lambda p: optim.Adam(p, lr=-1e-3), "lr must be ≥ 0.0, got -0.001"),
    (lambda p: optim.Adam(p, lr=float("nan")), "lr must be a number, got nan"),
    (lambda p: optim.Adam(p, eps=-1e-8), "eps must be ≥ 0.0, got -1e-08"),
    (lambda p: optim.Adam(p, weight_decay=-0.5), "weight_decay must be ≥ 0.0, got -0.5"),
    (lambda p: optim.AdamW(p, weight_decay=-0.01), "weight_decay must be ≥ 0.0, got -0.01"),
    (lambda p: optim.Adam(p, betas=(1.0, 0.999)), "betas[0] must be ≥ 0.0 and < 1.0, got 1.0"),
    (lambda p: optim.Adam(p, betas=(-0.1, 0.999)), "betas[0] must be ≥ 0.0 and < 1.0, got -0.1"),
    (lambda p: optim.Adam(p, betas=(0.9, 1.0)), "betas[1] must be ≥ 0.0 and < 1.0, got 1.0"),
    (lambda p: optim.Adam(p, betas=(0.9, -0.1)), "betas[1] must be ≥ 0.0 and < 1.0, got -0.1"),
    (lambda p: optim.Adam(p, betas=(0.9,)), "betas must be a pair (beta1, beta2), got (0.9,)"),
    (lambda p: optim.Adam(p, betas=(0.9, 0.99, 0.999)), "betas must be a pair (beta1, beta2), got (0.9, 0.99, 0.999)"),
    (lambda p: optim.Adam(p, betas=0.9), "betas must be a pair (beta1, beta2), got 0.9"),
    (lambda p: optim.Adagrad(p, lr=-0.01), "lr must be ≥ 0.0, got -0.01"),
    (lambda p: optim.Adagrad(p, lr_decay=-0.5), "lr_decay must be ≥ 0.0, got -0.5"),
    (lambda p: optim.Adagrad(p, weight_decay=-0.5), "weight_decay must be ≥ 0.0, got -0.5"),
    (lambda p: optim.Adagrad(p, initial_accumulator_value=-0.5), "initial_accumulator_value must be ≥ 0.0, got -0.5"),
    (lambda p: optim.Adagrad(p, eps=-1e-10), "eps must be ≥ 0.0, got -1e-10"),
    (lambda p: optim.RMSprop(p, lr=-0.01), "lr must be ≥ 0.0, got -0.01"),
    (lambda p: optim.RMSprop(p, alpha=1.01), "alpha must be ≥ 0.0 and ≤ 1.0, got 1.01"),
    (lambda p: optim.RMSprop(p, alpha=-0.5), "alpha must be ≥ 0.0 and ≤ 1.0, got -0.5"),
    (lambda p: optim.RMSprop(p, eps=-1e-8), "eps must be ≥ 0.0, got -1e-08"),
    (lambda p: optim.RMSprop(p, weight_decay=-0.5), "weight_decay must be ≥ 0.0, got -0.5"),
    (lambda p: optim.RMSprop(p, momentum=-0.5), "momentum must be ≥ 0.0, got -0.5"),
    (lambda p: optim.RMSprop(p, momentum="high"), "momentum must be a number, got 'high'"),
    (lambda p: optim.Adadelta(p, lr=-1.0), "lr must be ≥ 0.0, got -1.0"),
    (lambda p: optim.Adadelta(p, rho=1.5), "rho must be ≥ 0.0 and ≤ 1.0, got 1.5"),
    (lambda p: optim.Adadelta(p, rho=-0.5), "rho must be ≥ 0.0 and ≤ 1.0, got -0.5"),
    (lambda p: optim.Adadelta(p, eps=-1e-6), "eps must be ≥ 0.0, got -1e-06"),
    (lambda p: optim.Adadelta(p, weight_decay=-0.5), "weight_decay must be ≥ 0.0, got -0.5"),
])
def test_error_messages_give_the_argument_its_bounds_and_the_value(make, message):
    with pytest.raises(ValueError, match=exactly(message)):
        make([torch.nn.Parameter(torch.zeros(2))])


def test_the_ends_of_every_range_are_accepted():
    params = [torch.nn.Parameter(torch.zeros(2))]
    optim.SGD(params, lr=0, momentum=0, dampening=0, weight_decay=0)
    optim.SGD(params, lr=torch.tensor(0.1), momentum=1e-9, nesterov=True)  # a one-element tensor is a number
    optim.Adam(params, lr=0.0, betas=(0.0, 0.0), eps=0.0, weight_decay=0.0)
    optim.AdamW(params, betas=[0.5, 0.5])
    optim.Adagrad(params, lr=0, lr_decay=0, weight_decay=0, initial_accumulator_value=0, eps=0)
    optim.RMSprop(params, lr=0, alpha=0, eps=0, weight_decay=0, momentum=0)
    optim.RMSprop(params, alpha=1.0)
    optim.Adadelta(params, lr=0, rho=0, eps=0, weight_decay=0)
    optim.Adadelta(params, rho=1.0)


@pytest.mark.parametrize("make", [lambda p: optim.SGD(p, lr=0.1, momentum=0.9, weight_decay=1e-3, foreach=False),
                                  lambda p: optim.Adam(p, lr=0.1, betas=(0.5, 0.6), eps=1e-3, amsgrad=True),
                                  lambda p: optim.AdamW(p, lr=0.3, betas=(0.5, 0.6), eps=1e-3, weight_decay=0.2,
                                                        amsgrad=True, foreach=False),
                                  lambda p: optim.Adagrad(p, lr=0.3, lr_decay=0.1, initial_accumulator_value=0.2),
                                  lambda p: optim.RMSprop(p, lr=0.3, alpha=0.5, centered=True, momentum=0.2),
                                  lambda p: optim.Adadelta(p, lr=0.3, rho=0.5, eps=1e-3, foreach=False)],
                         ids=["SGD", "Adam", "AdamW", "Adagrad", "RMSprop", "Adadelta"])
def test_an_added_group_gets_the_defaults_and_a_rejected_one_is_not_added(make):
    first, second, third = (torch.nn.Parameter(torch.zeros(2)) for _ in range(3))
    optimizer = make([first])
    optimizer.add_param_group({"params": [second]})
    assert len(optimizer.param_groups) == 2
    for group in optimizer.param_groups:
        assert {k: v for k, v in group.items() if k != "params"} == optimizer.defaults
    with pytest.raises(ValueError, match=exactly("lr must be ≥ 0.0, got -1.0")):
        optimizer.add_param_group({"params": [third], "lr": -1.0})
    assert len(optimizer.param_groups) == 2, "the rejected group is not kept"


def test_every_constructor_argument_reaches_the_defaults():
    params = [torch.nn.Parameter(torch.zeros(1))]
    assert all(cls(params).defaults["foreach"] is True for cls in (optim.SGD, optim.Adam, optim.AdamW)), \
        "the multi-tensor path is the default"
    assert optim.SGD(params, lr=0.3, momentum=0.5, dampening=0.1, weight_decay=0.2, foreach=False).defaults == dict(
        lr=0.3, momentum=0.5, dampening=0.1, weight_decay=0.2, nesterov=False, foreach=False)
    for cls in (optim.Adam, optim.AdamW):
        assert cls(params, lr=0.3, betas=(0.5, 0.6), eps=1e-3, weight_decay=0.2, amsgrad=True, foreach=False).defaults == dict(
            lr=0.3, betas=(0.5, 0.6), eps=1e-3, weight_decay=0.2, amsgrad=True, foreach=False), cls.__name__
    assert optim.Adagrad(params, lr=0.3, lr_decay=0.1, weight_decay=0.2, initial_accumulator_value=0.4, eps=1e-3,
                         foreach=False).defaults == dict(lr=0.3, lr_decay=0.1, eps=1e-3, weight_decay=0.2,
                                                         initial_accumulator_value=0.4, foreach=False)
    assert optim.RMSprop(params, lr=0.3, alpha=0.5, eps=1e-3, weight_decay=0.2, momentum=0.1, centered=True,
                         foreach=False).defaults == dict(lr=0.3, alpha=0.5, eps=1e-3, weight_decay=0.2, momentum=0.1,
                                                         centered=True, foreach=False)
    assert optim.Adadelta(params, lr=0.3, rho=0.5, eps=1e-3, weight_decay=0.2, foreach=False).defaults == dict(
        lr=0.3, rho=0.5, eps=1e-3, weight_decay=0.2, foreach=False)
    assert all(cls(params).defaults["foreach"] is True for cls in (optim.Adagrad, optim.RMSprop, optim.Adadelta))


@pytest.mark.parametrize("foreach", [True, False], ids=["foreach", "readable"])
@pytest.mark.parametrize("classes, options", [
    ((optim.SGD, torch.optim.SGD), dict(weight_decay=1.0)),
    ((optim.SGD, torch.optim.SGD), dict(momentum=1.0, dampening=0.5)),
    ((optim.Adam, torch.optim.Adam), dict(weight_decay=1.0, lr=1e-2)),
    ((optim.AdamW, torch.optim.AdamW), dict(weight_decay=1.0, lr=1e-2)),
    ((optim.Adagrad, torch.optim.Adagrad), dict(weight_decay=1.0)),
    ((optim.RMSprop, torch.optim.RMSprop), dict(weight_decay=1.0, lr=1e-2)),
    ((optim.RMSprop, torch.optim.RMSprop), dict(momentum=1.0, lr=1e-3)),
    ((optim.Adadelta, torch.optim.Adadelta), dict(weight_decay=1.0)),
], ids=["SGD-decay-1", "SGD-momentum-1", "Adam-decay-1", "AdamW-decay-1", "Adagrad-decay-1", "RMSprop-decay-1",
        "RMSprop-momentum-1", "Adadelta-decay-1"])
def test_a_weight_decay_or_momentum_of_exactly_one_matches_torch(classes, options, foreach):
    assert_same(*run_pair(*classes, "mlp", "cpu", foreach, dict(options), steps=10))


@pytest.mark.parametrize("cls", [optim.Adam, optim.AdamW])
@pytest.mark.parametrize("amsgrad", [False, True])
def test_adams_multi_tensor_path_takes_parameters_off_the_cpu_whole(cls, amsgrad):
    """Off the CPU the multi-tensor path updates each device's parameters in one go, without cache blocks. The meta
    device (shapes without data, there on every machine) stands in for a GPU: the step runs and the state is made
    on the parameters' device."""
    params = [torch.nn.Parameter(torch.empty(shape, device="meta")) for shape in [(3, 4), (5,)]]
    for p in params:
        p.grad = torch.empty_like(p)
    optimizer = cls(params, lr=0.1, amsgrad=amsgrad, foreach=True)
    optimizer.step()
    for p in params:
        state = optimizer.state[p]
        assert state["step"] == 1
        assert state["exp_avg"].device.type == state["exp_avg_sq"].device.type == "meta"
        assert state["exp_avg"].shape == p.shape


def constant_gradient_steps(optimizer, w, steps, g=1.0):
    """The distance w moves at each of ``steps`` steps under the constant gradient ``g``."""
    sizes = []
    for _ in range(steps):
        w.grad = torch.full_like(w, g)
        before = w.detach().clone()
        optimizer.step()
        sizes.append((before - w.detach()).item())
    return sizes


def test_adagrads_steps_shrink_like_one_over_the_root_of_t():
    """Under a constant gradient g, s_t = t g², so the t-th step is η g / (√t |g| + ε) = η / √t (ε = 0)."""
    w = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))
    sizes = constant_gradient_steps(optim.Adagrad([w], lr=0.1, eps=0.0), w, 50, g=3.0)
    assert sizes == pytest.approx([0.1 / (t ** 0.5) for t in range(1, 51)], rel=1e-12, abs=0)
    decayed = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))  # with lr_decay δ: η / (1 + (t − 1) δ) / √t
    sizes = constant_gradient_steps(optim.Adagrad([decayed], lr=0.1, lr_decay=0.5, eps=0.0), decayed, 5, g=2.0)
    assert sizes == pytest.approx([0.1 / (1 + (t - 1) * 0.5) / t ** 0.5 for t in range(1, 6)], rel=1e-12, abs=0)


def test_adagrads_accumulator_starts_at_its_initial_value_for_every_parameter_from_the_start():
    first, second = torch.nn.Parameter(torch.zeros(2, 3)), torch.nn.Parameter(torch.zeros(4))
    optimizer = optim.Adagrad([first], initial_accumulator_value=0.25)
    optimizer.add_param_group({"params": [second], "initial_accumulator_value": 0.5})
    assert torch.equal(optimizer.state[first]["sum"], torch.full((2, 3), 0.25)) and optimizer.state[first]["step"] == 0
    assert torch.equal(optimizer.state[second]["sum"], torch.full((4,), 0.5)), "a group's own initial value"
    reference = torch.optim.Adagrad([torch.nn.Parameter(torch.zeros(2, 3))], initial_accumulator_value=0.25)
    assert set(optimizer.state_dict()["state"][0]) == set(reference.state_dict()["state"][0])


def test_rmsprops_step_tends_to_the_learning_rate_and_starts_larger():
    """v_t = (1 − αᵗ) g² under a constant g, so the t-th step is η / √(1 − αᵗ) (ε = 0): 1/√(1 − α) times η at the
    first step, and η in the limit (it does not die like Adagrad's). With momentum μ the limit is η / (1 − μ)."""
    w = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))
    sizes = constant_gradient_steps(optim.RMSprop([w], lr=0.01, alpha=0.9, eps=0.0), w, 200, g=-5.0)
    assert [-size for size in sizes] == pytest.approx([0.01 / (1 - 0.9 ** t) ** 0.5 for t in range(1, 201)], rel=1e-12)
    fast = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))
    sizes = constant_gradient_steps(optim.RMSprop([fast], lr=0.01, alpha=0.5, eps=0.0, momentum=0.5), fast, 200)
    assert sizes[-1] == pytest.approx(0.01 / (1 - 0.5), rel=1e-12)


def test_centered_rmsprop_divides_by_the_spread_of_the_gradient():
    """Two steps with the same gradient g = 2 (α = ½, η = 1, ε = 0), each worked out by hand."""
    alpha, g = 0.5, 2.0
    w = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))
    optimizer = optim.RMSprop([w], lr=1.0, alpha=alpha, eps=0.0, centered=True)
    w.grad = torch.tensor([g], dtype=torch.float64)
    optimizer.step()
    # v₁ = (1 − α) g² = 2, ḡ₁ = (1 − α) g = 1, so r₁ = √(2 − 1) = 1 and the step is g / 1 = 2
    assert w.item() == pytest.approx(-2.0, abs=1e-15)
    w.grad = torch.tensor([g], dtype=torch.float64)
    optimizer.step()
    # v₂ = α v₁ + (1 − α) g² = 3, ḡ₂ = α ḡ₁ + (1 − α) g = 1.5, r₂ = √(3 − 2.25) = √0.75
    assert w.item() == pytest.approx(-2.0 - 2.0 / 0.75 ** 0.5, abs=1e-14)


def test_adadeltas_first_update_is_of_the_size_of_root_epsilon_and_the_updates_grow():
    """Δ₁ = √(0 + ε) / √((1 − ρ) g² + ε) · g: about √ε / √(1 − ρ) for |g| ≫ √ε. Under a constant gradient, once
    v ≈ g², Δ_t ≈ √(u_{t−1} + ε) and u_t = ρ u_{t−1} + (1 − ρ) Δ_t² ≈ u_{t−1} + (1 − ρ) ε: the squared update grows
    by (1 − ρ) ε a step, so the updates grow like √((1 − ρ) ε t) without bound (ρ = 0.9, ε = 1e-6)."""
    rho, eps, g = 0.9, 1e-6, 4.0
    w = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))
    sizes = constant_gradient_steps(optim.Adadelta([w], rho=rho, eps=eps), w, 400, g=g)
    assert sizes[0] == pytest.approx(eps ** 0.5 / ((1 - rho) * g * g + eps) ** 0.5 * g, rel=1e-12)
    # the second by hand: u₁ = (1 − ρ) Δ₁² and v₂ = ρ (1 − ρ) g² + (1 − ρ) g²
    u1 = (1 - rho) * sizes[0] ** 2
    v2 = rho * (1 - rho) * g * g + (1 - rho) * g * g
    assert sizes[1] == pytest.approx((u1 + eps) ** 0.5 / (v2 + eps) ** 0.5 * g, rel=1e-12)
    assert all(b > a for a, b in zip(sizes, sizes[1:]))
    assert (sizes[399] ** 2 - sizes[299] ** 2) / 100 == pytest.approx((1 - rho) * eps, rel=1e-4)


def test_adadeltas_update_has_the_units_of_w():
    """Measure w in other units (w → c w, so g → g / c, and ε, a squared update, → c² ε): Adadelta's updates
    come out c times larger, as a length should (up to ε's share of the denominator √(v + ε), here ~1e-6), while
    RMSprop's, η g / √v, stay the same: its η carries the units and must be retuned."""
    def updates(c, cls, **kwargs):
        w = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))
        return constant_gradient_steps(cls([w], **kwargs), w, 30, g=200.0 / c)

    base, scaled = updates(1.0, optim.Adadelta, eps=1e-6), updates(10.0, optim.Adadelta, eps=1e-4)
    assert scaled == pytest.approx([10.0 * size for size in base], rel=1e-5)
    base, scaled = updates(1.0, optim.RMSprop, lr=1e-2, eps=0.0), updates(10.0, optim.RMSprop, lr=1e-2, eps=0.0)
    assert scaled == pytest.approx(base, rel=1e-12)


@pytest.mark.parametrize("make", [lambda p: optim.Adagrad(p, lr=0.1), lambda p: optim.RMSprop(p, lr=0.1),
                                  lambda p: optim.Adadelta(p, lr=0.1)], ids=["Adagrad", "RMSprop", "Adadelta"])
def test_torchs_learning_rate_schedulers_drive_these_optimizers(make):
    w = torch.nn.Parameter(torch.zeros(1))
    optimizer = make([w])
    warmup = torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=0.25, total_iters=3)
    seen = []
    for _ in range(4):
        seen.append(optimizer.param_groups[0]["lr"])
        w.grad = torch.ones(1)
        optimizer.step()
        warmup.step()
    assert seen == pytest.approx([0.025, 0.05, 0.075, 0.1])


@pytest.mark.parametrize("block", [7, 100_000], ids=["block-of-7", "block-of-100000"])
@pytest.mark.parametrize("ours, theirs, options", [
    (optim.Adagrad, torch.optim.Adagrad, dict(lr=0.1, lr_decay=0.1, weight_decay=1e-2)),
    (optim.RMSprop, torch.optim.RMSprop, dict(lr=0.01, centered=True, momentum=0.9, weight_decay=1e-2)),
    (optim.Adadelta, torch.optim.Adadelta, dict(weight_decay=1e-2)),
], ids=["Adagrad", "RMSprop", "Adadelta"])
def test_the_adaptive_rules_cpu_blocks_match_torch_across_block_boundaries(block, ours, theirs, options, monkeypatch):
    monkeypatch.setattr(optim.base, "CPU_BLOCK_ELEMENTS", block)
    sizes = [5, 13, 30, 7, 1] if block < 100 else [2 * block + 3, 5]
    ours_params, torch_params = block_path_parameters(sizes), block_path_parameters(sizes)
    ours_optimizer = ours(ours_params, foreach=True, **options)
    torch_optimizer = theirs(torch_params, foreach=False, **options)
    train_block_path(ours_optimizer, ours_params)
    train_block_path(torch_optimizer, torch_params)
    for i, (a, b) in enumerate(zip(ours_params, torch_params)):
        torch.testing.assert_close(a, b, **TOLERANCE, msg=lambda m: f"parameter {i} of size {a.numel()}: {m}")


@pytest.mark.parametrize("make, keys", [
    (lambda p: optim.Adagrad(p, lr=0.1), {"step", "sum"}),
    (lambda p: optim.RMSprop(p, lr=0.1, centered=True, momentum=0.9), {"step", "square_avg", "grad_avg", "momentum_buffer"}),
    (lambda p: optim.RMSprop(p, lr=0.1), {"step", "square_avg"}),
    (lambda p: optim.Adadelta(p), {"step", "square_avg", "acc_delta"}),
], ids=["Adagrad", "RMSprop-centered-momentum", "RMSprop", "Adadelta"])
def test_the_adaptive_rules_multi_tensor_path_takes_parameters_off_the_cpu_whole(make, keys):
    params = [torch.nn.Parameter(torch.empty(shape, device="meta")) for shape in [(3, 4), (5,)]]
    for p in params:
        p.grad = torch.empty_like(p)
    optimizer = make(params)
    optimizer.step()
    for p in params:
        state = optimizer.state[p]
        assert set(state) == keys and state["step"] == 1
        assert all(state[key].device.type == "meta" and state[key].shape == p.shape for key in keys - {"step"})
