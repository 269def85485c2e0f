"""Checkpoints: named files, atomic writes, optimizer groups restored by name, generators restored."""

import pytest
import torch
from torch import nn

from course_lib import checkpoints


def test_checkpoint_paths_live_in_the_configured_folder_and_reject_odd_names(tmp_path, monkeypatch):
    monkeypatch.setenv(checkpoints.CHECKPOINT_ENV, str(tmp_path))
    assert checkpoints.checkpoint_path("paper_xor_n3") == tmp_path / "paper_xor_n3.pt"
    for name in ("", "../escape", "a b"):
        with pytest.raises(ValueError, match="name must be letters, digits"):
            checkpoints.checkpoint_path(name)


def test_a_checkpoint_round_trip_restores_groups_moments_and_generators(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    optimizer = torch.optim.Adam([{"params": model[1].parameters()}, {"params": model[0].parameters(), "lr": 0.5}])
    model(torch.randn(5, 3)).sum().backward()
    optimizer.step()
    generator = torch.Generator().manual_seed(7)
    path = tmp_path / "run.pt"
    checkpoints.save_checkpoint(path, model, optimizer, {"data": generator}, {"done": 1})
    assert path.exists() and not list(tmp_path.glob("*.partial"))
    expected_draw, expected_global = torch.rand(3, generator=generator), torch.rand(2)

    torch.manual_seed(1)
    fresh = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    other = torch.Generator().manual_seed(99)
    restored, progress = checkpoints.load_checkpoint(path, fresh, lambda groups: torch.optim.Adam(groups), {"data": other})
    assert progress == {"done": 1}
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), fresh.state_dict().values()))
    assert [g["lr"] for g in restored.param_groups] == [1e-3, 0.5]
    assert restored.param_groups[1]["params"][0] is fresh[0].weight
    assert torch.equal(restored.state[fresh[0].weight]["exp_avg"], optimizer.state[model[0].weight]["exp_avg"])
    assert torch.equal(torch.rand(3, generator=other), expected_draw) and torch.equal(torch.rand(2), expected_global)


def test_an_optimizer_holding_foreign_parameters_cannot_be_saved(tmp_path):
    model = nn.Linear(2, 2)
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1)
    with pytest.raises(ValueError, match="not in the model"):
        checkpoints.save_checkpoint(tmp_path / "x.pt", model, optimizer, {}, {})


def test_a_grown_ginfinity_layer_comes_back_with_its_sublayers_and_optimizer_groups(tmp_path):
    from course_lib.ginfty import GInfinity, grow_all
    from course_lib.layers import BatchNorm1d

    def make(i):
        return nn.Sequential(nn.Linear(4, 4), BatchNorm1d(4))

    torch.manual_seed(0)
    layer = GInfinity(make, w_init=4.9)
    optimizer = torch.optim.Adam(layer.parameters(), lr=1e-3)
    x = torch.randn(8, 4)
    layer(x).sum().backward()
    optimizer.step()
    with torch.no_grad():
        layer.w.fill_(5.3)
    grow_all(layer, optimizer)  # capacity 5 → 10, and a second parameter group
    optimizer.zero_grad()
    layer(x).sum().backward()
    optimizer.step()
    checkpoints.save_checkpoint(tmp_path / "g.pt", layer, optimizer, {}, {})

    fresh = GInfinity(make, w_init=1.0)
    restored, _ = checkpoints.load_checkpoint(tmp_path / "g.pt", fresh, lambda groups: torch.optim.Adam(groups, lr=1e-3), {})
    assert layer.capacity == fresh.capacity == 10
    assert [len(g["params"]) for g in restored.param_groups] == [len(g["params"]) for g in optimizer.param_groups]
    assert len(restored.param_groups) == 2
    grown = fresh.sublayers[5][0].weight  # added by the growth, active at w = 5.3
    assert torch.equal(restored.state[grown]["exp_avg"], optimizer.state[layer.sublayers[5][0].weight]["exp_avg"])
    assert torch.equal(fresh.eval()(x), layer.eval()(x))
