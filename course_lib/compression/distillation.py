"""Knowledge distillation (Hinton, Vinyals & Dean 2015): a small student learns from a large teacher's soft targets.

For logits z and a temperature T, the softened probabilities are p_c(z; T) = exp(z_c / T) / Σ_k exp(z_k / T); T = 1 is
the ordinary softmax, a larger T spreads the mass over the wrong classes, whose relative sizes ("a 7 looks more like
a 1 than like a 6") carry what the teacher knows beyond the label. With teacher logits t, student logits s and labels
y, averaged over the batch,

    L = α · T² · KL(p(t; T) ‖ p(s; T)) + (1 − α) · CE(s, y),

    KL(p ‖ q) = Σ_c p_c (log p_c − log q_c),        CE(s, y) = −log p_y(s; 1).

**Why T².** ∂KL/∂s_c = (p_c(s; T) − p_c(t; T)) / T: the soft term's gradients shrink as 1/T, and for large T, where
p_c(z; T) ≈ (1 + (z_c − z̄)/T)/C, as 1/T². Multiplying by T² keeps its weight against the hard term roughly
independent of T, so α alone sets the mix. In that large-T limit the gradient T²·∂KL/∂s_c → ((s_c − s̄) − (t_c − t̄))/C:
distillation becomes matching the (mean-centred) logits by squared error (Caruana's "logit matching").

α = 0 is training on labels alone; α = 1 on the teacher alone (no labels needed).
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F


def soft_targets(logits: Tensor, temperature: float) -> Tensor:
    """p(z; T) = softmax(z / T) over the last dimension; shape as ``logits``."""
    _check_temperature(temperature)
    return torch.softmax(logits / temperature, dim=-1)


def _check_temperature(temperature: float) -> None:
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not temperature > 0:
        raise ValueError(f"temperature must be a positive number, got {temperature!r}")


def distillation_loss(student_logits: Tensor, teacher_logits: Tensor, labels: Tensor, temperature: float = 4.0,
                      alpha: float = 0.9) -> Tensor:
    """α · T² · KL(softmax(t/T) ‖ softmax(s/T)) + (1 − α) · CE(s, y), each averaged over the batch.

    Shapes: logits (B, C), labels (B,) of class indices. The teacher's logits are treated as constants (detached).
    """
    _check_temperature(temperature)
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be a number in [0, 1], got {alpha!r}")
    if student_logits.dim() != 2 or teacher_logits.shape != student_logits.shape:
        raise ValueError(f"student_logits and teacher_logits must both have shape (B, C), got "
                         f"{tuple(student_logits.shape)} and {tuple(teacher_logits.shape)}")
    if labels.shape != student_logits.shape[:1]:
        raise ValueError(f"labels must have shape ({student_logits.shape[0]},), got {tuple(labels.shape)}")
    log_p_student = torch.log_softmax(student_logits / temperature, dim=-1)
    log_p_teacher = torch.log_softmax(teacher_logits.detach() / temperature, dim=-1)
    kl = (log_p_teacher.exp() * (log_p_teacher - log_p_student)).sum(-1).mean()
    return alpha * temperature**2 * kl + (1 - alpha) * F.cross_entropy(student_logits, labels)
