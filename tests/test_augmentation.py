"""Random rotations and shifts (`course_lib.augmentation`) against closed forms and torchvision's own rotation."""

from __future__ import annotations

import warnings

import pytest
import torch
import torchvision.transforms.functional as TF

from course_lib.augmentation import AugmentedBatches, affine, random_affine
from course_lib.data import DeviceBatches


def test_no_rotation_and_no_shift_is_the_identity():
    x = torch.rand(3, 2, 7, 10)
    zeros = torch.zeros(3)
    assert torch.allclose(affine(x, zeros, zeros, zeros), x, atol=1e-6)
    assert torch.allclose(random_affine(x, 0.0, 0.0), x, atol=1e-6)


def test_quarter_and_half_turns_are_counter_clockwise_like_rot90():
    x = torch.rand(2, 3, 12, 12)
    assert torch.allclose(affine(x, torch.full((2,), 90.0), torch.zeros(2), torch.zeros(2)), torch.rot90(x, 1, (2, 3)),
                          atol=1e-5)
    wide = torch.rand(1, 1, 8, 16)  # not square: the aspect ratio enters the normalized coordinates
    assert torch.allclose(affine(wide, torch.tensor([180.0]), torch.zeros(1), torch.zeros(1)),
                          torch.rot90(wide, 2, (2, 3)), atol=1e-5)


def test_small_rotations_match_torchvision_away_from_the_border():
    torch.manual_seed(0)
    x = torch.rand(2, 1, 16, 16)
    angles = [30.0, -12.5]
    ours = affine(x, torch.tensor(angles), torch.zeros(2), torch.zeros(2))
    theirs = torch.stack([TF.rotate(x[b], a, interpolation=TF.InterpolationMode.BILINEAR) for b, a in enumerate(angles)])
    assert torch.allclose(ours[..., 5:11, 5:11], theirs[..., 5:11, 5:11], atol=1e-5)  # torchvision fills 0 outside


def test_whole_pixel_shifts_move_the_image_and_repeat_the_border():
    x = torch.rand(1, 1, 6, 9)
    moved = affine(x, torch.zeros(1), torch.tensor([2.0]), torch.tensor([-1.0]))  # 2 right, 1 up
    expected = torch.cat([x[..., :, :1].expand(-1, -1, -1, 2), x[..., :, :-2]], dim=3)
    expected = torch.cat([expected[..., 1:, :], expected[..., -1:, :]], dim=2)
    assert torch.allclose(moved, expected, atol=1e-6)


def test_random_draws_are_reproducible_and_within_the_limits():
    x = torch.zeros(500, 1, 9, 9)
    x[:, :, 4, 4] = 1.0  # a dot at the centre only moves with the shift
    a = random_affine(x, 20.0, 1.5, torch.Generator().manual_seed(3))
    b = random_affine(x, 20.0, 1.5, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    rows = torch.arange(9.0).view(1, 9, 1)
    centre_y = (a[:, 0] * rows).sum(dim=(1, 2)) / a[:, 0].sum(dim=(1, 2))
    assert (centre_y - 4).abs().max() <= 1.5 + 1e-4 and (centre_y - 4).abs().max() > 1.2, "shifts span ±max_shift"


def test_augmented_batches_change_the_images_only():
    x, y = torch.rand(10, 1, 8, 8), torch.arange(10)
    batches = AugmentedBatches(DeviceBatches(x, y, batch_size=4, shuffle=False), generator=torch.Generator().manual_seed(0))
    assert len(batches) == 3
    out = list(batches)
    assert [b[1].tolist() for b in out] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert not torch.allclose(torch.cat([b[0] for b in out]), x)


@pytest.mark.parametrize("arguments, message", [((-1.0, 1.0), "max_degrees"), ((10.0, float("nan")), "max_shift"),
                                                ((True, 1.0), "max_degrees")])
def test_bad_limits_are_refused_by_name(arguments, message):
    with pytest.raises(ValueError, match=message):
        random_affine(torch.zeros(1, 1, 4, 4), *arguments)
    with pytest.raises(ValueError, match=message):
        AugmentedBatches([], *arguments)


def test_bad_shapes_are_refused_by_name():
    with pytest.raises(ValueError, match="B, C, H, W"):
        affine(torch.zeros(4, 4), torch.zeros(4), torch.zeros(4), torch.zeros(4))
    with pytest.raises(ValueError, match="degrees must hold one value per image"):
        affine(torch.zeros(2, 1, 4, 4), torch.zeros(3), torch.zeros(2), torch.zeros(2))


def shift_with_border(x: torch.Tensor, right: int, down: int) -> torch.Tensor:
    """``x`` moved by whole pixels (right, down ≥ 0), the first column and row repeated into the gap."""
    x = torch.cat([x[..., :, :1].expand(*x.shape[:-1], right), x[..., :, : x.shape[-1] - right]], dim=3)
    x = torch.cat([x[..., :1, :].expand(*x.shape[:-2], down, x.shape[-1]), x[..., : x.shape[-2] - down, :]], dim=2)
    return x


def test_a_rotation_is_followed_by_the_shift():
    """Rotate by 90° about the centre, then move 2 right and 1 down: rot90, then the whole-pixel shift."""
    x = torch.rand(2, 1, 8, 8)
    moved = affine(x, torch.full((2,), 90.0), torch.full((2,), 2.0), torch.full((2,), 1.0))
    assert torch.allclose(moved, shift_with_border(torch.rot90(x, 1, (2, 3)), 2, 1), atol=1e-5)


def test_parameters_of_any_dtype_are_used_at_the_precision_of_the_images():
    x = torch.rand(2, 1, 6, 7, dtype=torch.float64)
    angles, shifts_x, shifts_y = torch.tensor([7.3, -21.9]), torch.tensor([0.3, -0.7]), torch.tensor([-0.45, 0.15])
    ours = affine(x, angles, shifts_x, shifts_y)
    assert ours.dtype == torch.float64
    assert torch.equal(ours, affine(x, angles.double(), shifts_x.double(), shifts_y.double()))


def test_affine_warns_about_nothing():
    """The corner convention is given explicitly: torch's warning about its changed default stays silent."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        affine(torch.rand(2, 1, 5, 5), torch.tensor([10.0, -5.0]), torch.tensor([0.5, 0.0]), torch.zeros(2))


def test_shapes_of_the_shifts_are_checked_by_name():
    for shift_x, shift_y, message in ((torch.zeros(3), torch.zeros(2), "shift_x"),
                                      (torch.zeros(2), torch.zeros(1, 2), "shift_y")):
        with pytest.raises(ValueError) as error:
            affine(torch.zeros(2, 1, 4, 4), torch.zeros(2), shift_x, shift_y)
        shape = tuple(shift_x.shape if message == "shift_x" else shift_y.shape)
        assert str(error.value) == f"{message} must hold one value per image, shape (2,), got {shape}"


def test_limits_must_be_finite_and_non_negative_and_the_message_names_them():
    for arguments, message in (((-1.0, 1.0), "max_degrees must be a non-negative number, got -1.0"),
                               ((10.0, float("inf")), "max_shift must be a non-negative number, got inf"),
                               ((float("inf"), 1.0), "max_degrees must be a non-negative number, got inf")):
        with pytest.raises(ValueError) as error:
            random_affine(torch.zeros(1, 1, 4, 4), *arguments)
        assert str(error.value) == message


def test_random_affine_draws_angle_then_shifts_from_three_uniform_rows_per_batch():
    """θ = (2·u₀ − 1)·max_degrees, t_x = (2·u₁ − 1)·max_shift, t_y = (2·u₂ − 1)·max_shift with (u₀, u₁, u₂) =
    torch.rand(3, B) from the generator, batch after batch."""
    x = torch.rand(4, 1, 9, 9)
    generator, twin = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    for _ in range(2):
        u = torch.rand(3, 4, generator=twin) * 2 - 1
        expected = affine(x, u[0] * 15.0, u[1] * 2.0, u[2] * 2.0)
        assert torch.equal(random_affine(x, 15.0, 2.0, generator), expected)


def test_augmented_batches_default_to_ten_degrees_and_one_pixel_drawn_from_their_generator():
    x, y = torch.rand(6, 1, 8, 8), torch.arange(6)
    batches = AugmentedBatches(DeviceBatches(x, y, batch_size=4, shuffle=False),
                               generator=torch.Generator().manual_seed(2))
    twin = torch.Generator().manual_seed(2)
    torch.manual_seed(0)  # the global generator plays no part
    for (xb, yb), start in zip(batches, (0, 4)):
        assert torch.equal(xb, random_affine(x[start: start + 4], 10.0, 1.0, twin))
        assert torch.equal(yb, y[start: start + 4])
