"""The lectures' loss surfaces and the descent loop: values, minima, paths, the early stop."""

import pytest
import torch

from course_lib import optim
from course_lib.surfaces import SURFACES, descend, narrow_valley, rosenbrock


def test_the_surfaces_values_and_minima():
    assert narrow_valley(torch.tensor([2.0, 1.0])).item() == 0.5 * (4 + 50)
    assert rosenbrock(torch.tensor([0.0, 1.0])).item() == 1 + 100
    for spec in SURFACES.values():
        assert spec["loss"](torch.tensor(spec["minimum"])).item() == 0.0
    batch = torch.tensor([[1.0, 1.0], [0.0, 0.0]])  # (..., 2) → (...)
    assert narrow_valley(batch).tolist() == [25.5, 0.0] and rosenbrock(batch).tolist() == [0.0, 1.0]


def test_descend_records_every_point_of_gradient_descent():
    """On the valley, gradient descent multiplies each coordinate by 1 − ηλ per step."""
    path = descend(narrow_valley, [-4.0, 1.0], lambda p: optim.SGD(p, lr=0.01), 5)
    assert path.shape == (6, 2) and path.dtype == torch.float64
    expected = torch.tensor([[-4.0 * 0.99 ** k, 0.5 ** k] for k in range(6)], dtype=torch.float64)
    torch.testing.assert_close(path, expected, rtol=0, atol=1e-15)


def test_descend_stops_once_the_loss_explodes():
    path = descend(narrow_valley, [-4.0, 1.0], lambda p: optim.SGD(p, lr=0.1), 100)  # ηλ = 5 across: diverges
    assert 2 < len(path) < 101
    assert narrow_valley(path[-1]).item() > 1e8 and narrow_valley(path[-2]).item() <= 1e8


def test_descend_accepts_a_one_dimensional_loss_with_negative_values():
    path = descend(lambda w: w ** 4 / 4 - 1.5 * w ** 2, [2.5], lambda p: optim.SGD(p, lr=0.05), 200)
    assert path.shape == (201, 1) and path[-1].item() == pytest.approx(3 ** 0.5, abs=1e-6)
