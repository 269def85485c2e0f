"""Random rotations and shifts (`course_lib.augmentation`) against closed forms and torchvision's own rotation."""

from __future__ import annotations

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
