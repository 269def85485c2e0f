"""Oracles for course_lib.compression.distillation: a closed form, PyTorch's kl_div / cross_entropy, the T² scaling."""

import math

import pytest
import torch
from torch.nn import functional as F

from course_lib.compression import distillation_loss, soft_targets


def logits(seed=0, batch=8, classes=5):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(batch, classes, generator=g, dtype=torch.float64) * 3,
            torch.randn(batch, classes, generator=g, dtype=torch.float64) * 3,
            torch.randint(0, classes, (batch,), generator=g))


def test_closed_form_on_two_classes():
    s, t, y = torch.tensor([[0.0, 1.0]]), torch.tensor([[2.0, 0.0]]), torch.tensor([1])
    T, a = 2.0, 0.3
    p = [math.exp(1.0) / (1 + math.exp(1.0)), 1 / (1 + math.exp(1.0))]  # softmax(t / 2) = softmax([1, 0])
    q = [1 / (1 + math.exp(0.5)), math.exp(0.5) / (1 + math.exp(0.5))]  # softmax(s / 2) = softmax([0, 0.5])
    kl = p[0] * math.log(p[0] / q[0]) + p[1] * math.log(p[1] / q[1])
    ce = -math.log(math.exp(1.0) / (1 + math.exp(1.0)))
    assert distillation_loss(s, t, y, T, a).item() == pytest.approx(a * T**2 * kl + (1 - a) * ce, rel=1e-6)
    assert soft_targets(t, T)[0].tolist() == pytest.approx(p)


@pytest.mark.parametrize("T,a", [(1.0, 0.5), (4.0, 0.9), (10.0, 0.0), (0.5, 1.0), (3, 1)])
def test_equals_pytorch_kl_div_and_cross_entropy(T, a):
    s, t, y = logits()
    reference = (a * T**2 * F.kl_div(F.log_softmax(s / T, -1), F.log_softmax(t / T, -1), reduction="batchmean",
                                     log_target=True) + (1 - a) * F.cross_entropy(s, y))
    assert torch.allclose(distillation_loss(s, t, y, T, a), reference, rtol=1e-12, atol=1e-12)


def test_gradient_is_T_times_the_difference_of_soft_targets_and_the_teacher_is_constant():
    s, t, y = logits(1)
    s.requires_grad_(True)
    t.requires_grad_(True)
    T = 3.0
    distillation_loss(s, t, y, T, alpha=1.0).backward()
    expected = T * (soft_targets(s.detach(), T) - soft_targets(t.detach(), T)) / s.shape[0]
    assert torch.allclose(s.grad, expected, atol=1e-12)
    assert t.grad is None


def test_large_temperature_is_logit_matching():
    s, t, y = logits(2)
    s.requires_grad_(True)
    distillation_loss(s, t, y, 1e4, alpha=1.0).backward()
    C, B = s.shape[1], s.shape[0]
    centred = (s - s.mean(1, keepdim=True)) - (t - t.mean(1, keepdim=True))
    assert torch.allclose(s.grad, centred.detach() / (C * B), rtol=2e-3, atol=1e-6)


def test_zero_loss_on_matching_logits_with_alpha_one_and_labels_only_with_alpha_zero():
    s, t, y = logits(3)
    assert distillation_loss(s, s.clone(), y, 2.0, 1.0).abs().item() < 1e-12
    assert distillation_loss(s, t, y, 2.0, 0.0).item() == pytest.approx(F.cross_entropy(s, y).item(), rel=1e-12)
    assert distillation_loss(s, t, y, 2.0, 1.0).item() > 0


def test_bad_arguments_are_named():
    s, t, y = logits()
    for T in (0.0, -1.0, True, "2"):
        with pytest.raises(ValueError, match="temperature"):
            distillation_loss(s, t, y, T)
    with pytest.raises(ValueError, match="temperature"):
        soft_targets(s, 0)
    for a in (-0.1, 1.5, True, None):
        with pytest.raises(ValueError, match="alpha"):
            distillation_loss(s, t, y, 2.0, a)
    with pytest.raises(ValueError, match="student_logits and teacher_logits"):
        distillation_loss(s, t[:, :3], y)
    with pytest.raises(ValueError, match="student_logits and teacher_logits"):
        distillation_loss(s[0], t[0], y)
    with pytest.raises(ValueError, match="labels"):
        distillation_loss(s, t, y[:3])
    with pytest.raises(ValueError, match=rf"labels must have shape \({s.shape[0]},\)"):
        distillation_loss(s, t, y[:3])


def test_the_default_temperature_is_4_and_soft_targets_normalize_the_last_dimension():
    s, t, y = logits()
    assert torch.equal(distillation_loss(s, t, y), distillation_loss(s, t, y, 4.0, 0.9))
    p = soft_targets(torch.randn(2, 3, 5, dtype=torch.float64), 2.0)
    assert torch.allclose(p.sum(-1), torch.ones(2, 3, dtype=torch.float64))
