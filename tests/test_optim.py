"""course_lib.optim against torch.optim: same parameters and state after 100 steps, in float64, to 1e-12."""

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
], ids=["SGD", "Adam", "AdamW"])
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
], ids=["SGD", "Adam", "AdamW"])
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


@pytest.mark.parametrize("ours, theirs", [(optim.SGD, torch.optim.SGD), (optim.Adam, torch.optim.Adam)])
def test_a_torch_state_loads_into_course_lib_and_training_continues_identically(ours, theirs):
    kwargs = dict(lr=0.05, momentum=0.9) if ours is optim.SGD else dict(lr=1e-2)
    torch.manual_seed(3)
    model_torch = MLPWithSideHead().double()
    opt_torch = theirs(model_torch.parameters(), **kwargs)
    train(model_torch, opt_torch, 30, "cpu")
    model_ours = copy.deepcopy(model_torch)
    opt_ours = ours(model_ours.parameters(), **kwargs)
    # a copy, as a checkpoint file would give: load_state_dict keeps tensors that need no cast, so the two
    # optimizers would otherwise share (and both update) one momentum buffer
    opt_ours.load_state_dict(copy.deepcopy(opt_torch.state_dict()))
    train(model_torch, opt_torch, 30, "cpu", start=30)
    train(model_ours, opt_ours, 30, "cpu", start=30)
    assert_same(model_ours, opt_ours, model_torch, opt_torch)


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
    for ours, theirs in [(optim.SGD, torch.optim.SGD), (optim.Adam, torch.optim.Adam), (optim.AdamW, torch.optim.AdamW)]:
        mine, reference = ours(params).defaults, theirs(params).defaults
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


@pytest.mark.parametrize("block", [optim.CPU_BLOCK_ELEMENTS, 7], ids=["real-block", "block-of-7"])
@pytest.mark.parametrize("options", [dict(), dict(weight_decay=1e-2, amsgrad=True)], ids=["plain", "wd-amsgrad"])
@pytest.mark.parametrize("classes", [(optim.Adam, torch.optim.Adam), (optim.AdamW, torch.optim.AdamW)], ids=["adam", "adamw"])
def test_adams_cpu_blocks_match_torch_across_block_boundaries(block, options, classes, monkeypatch):
    """The multi-tensor CPU path cuts parameters into blocks of CPU_BLOCK_ELEMENTS: a parameter larger than a block
    (the real size) and sizes that straddle a small patched block must give torch's numbers exactly."""
    monkeypatch.setattr(optim, "CPU_BLOCK_ELEMENTS", block)
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


@pytest.mark.parametrize("make", [lambda p: optim.SGD(p, lr=0.1, momentum=0.9, weight_decay=1e-3, foreach=False),
                                  lambda p: optim.Adam(p, lr=0.1, betas=(0.5, 0.6), eps=1e-3, amsgrad=True),
                                  lambda p: optim.AdamW(p, lr=0.3, betas=(0.5, 0.6), eps=1e-3, weight_decay=0.2,
                                                        amsgrad=True, foreach=False)], ids=["SGD", "Adam", "AdamW"])
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


@pytest.mark.parametrize("foreach", [True, False], ids=["foreach", "readable"])
@pytest.mark.parametrize("classes, options", [
    ((optim.SGD, torch.optim.SGD), dict(weight_decay=1.0)),
    ((optim.SGD, torch.optim.SGD), dict(momentum=1.0, dampening=0.5)),
    ((optim.Adam, torch.optim.Adam), dict(weight_decay=1.0, lr=1e-2)),
    ((optim.AdamW, torch.optim.AdamW), dict(weight_decay=1.0, lr=1e-2)),
], ids=["SGD-decay-1", "SGD-momentum-1", "Adam-decay-1", "AdamW-decay-1"])
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
