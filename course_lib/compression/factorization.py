"""Low-rank factorization: replace one big layer by two thin ones, and know the error before you measure it.

**A Linear layer.** W has shape (out, in); y = W x + b costs in·out MACs per sample. Its SVD W = Σ_i σ_i u_i v_iᵀ
(σ_1 ≥ σ_2 ≥ …) truncated to rank k gives W_k = U_k S_k V_kᵀ, which two layers compute as
x → (S_k V_kᵀ) x → U_k (·) + b: Linear(in, k, bias=False) then Linear(k, out). By Eckart–Young no rank-k matrix
is closer to W, and the error is known from the discarded singular values alone:

    ‖W − W_k‖_F = sqrt(σ_{k+1}² + σ_{k+2}² + …)          ‖W − W_k‖_2 = σ_{k+1}

Cost: k·(in + out) MACs instead of in·out, a saving only while k < in·out / (in + out). (For a batch X of K rows
and W of size N×M, the cost drops from K·N·M to K·L·(N + M) at rank L. The thesis writes N·L·(K + M): wrong.)

**A convolution, 1×N then N×1** (the thesis' "1D convolutions"; Tai et al. 2016 give the closed form). A kernel
W of shape (L, K, N, N) — L outputs, K inputs, N×N — is reshaped to the (L·N) × (K·N) matrix
M[(l, i), (k, j)] = W[l, k, i, j] (i: kernel row, j: kernel column). A rank-P factorization M ≈ Σ_p a_p b_pᵀ is
exactly a horizontal 1×N convolution with P output channels (H[p, k, 0, j] = b_p[(k, j)]) followed by a vertical
N×1 convolution (V[l, p, i, 0] = a_p[(l, i)]), because then Σ_p V[l, p, i] H[p, k, j] = M_P[(l, i), (k, j)]. The
kernel error ‖W − W_P‖_F is again sqrt(Σ_{p>P} σ_p²) of M, and with the bias on the second factor only the two
convolutions compute the N×N convolution with the rebuilt kernel W_P exactly, borders included. Cost per output
pixel: N·P·(K + L) MACs instead of N²·K·L.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn


@dataclass
class FactorizationReport:
    """What a factorization kept, what it predicted and what it measured (errors on the weight, Frobenius norm)."""

    rank: int
    full_rank: int
    singular_values: Tensor  # all of them, largest first
    predicted_error: float  # sqrt(Σ of the discarded σ²)
    measured_error: float  # ‖W − W_k‖_F of the rebuilt weight
    relative_error: float  # measured_error / ‖W‖_F
    energy_kept: float  # Σ_{i≤k} σ² / Σ σ²
    params_before: int
    params_after: int
    macs_before: int  # per sample (Linear) or per output pixel (convolution)
    macs_after: int


def choose_rank(singular_values: Tensor, rank: int | None = None, energy: float | None = None) -> int:
    """``rank`` itself, or the smallest k whose σ_1² + … + σ_k² reach the fraction ``energy`` of Σ σ²."""
    full = singular_values.numel()
    if (rank is None) == (energy is None):
        raise ValueError("give exactly one of rank (an integer) or energy (a fraction of Σσ² to keep)")
    if rank is not None:
        if isinstance(rank, bool) or not isinstance(rank, int) or not 1 <= rank <= full:
            raise ValueError(f"rank must be an integer in [1, {full}], got {rank!r}")
        return rank
    if not 0.0 < energy <= 1.0:
        raise ValueError(f"energy must be in (0, 1], got {energy!r}")
    cumulative = (singular_values.double() ** 2).cumsum(0) / (singular_values.double() ** 2).sum()
    return min(int((cumulative < energy - 1e-12).sum()) + 1, full)


def _report(S: Tensor, k: int, W: Tensor, W_k: Tensor, params: tuple[int, int], macs: tuple[int, int]):
    sq = S.double() ** 2
    return FactorizationReport(
        rank=k, full_rank=S.numel(), singular_values=S.detach().clone(),
        predicted_error=float(sq[k:].sum().sqrt()), measured_error=float((W - W_k).double().norm()),
        relative_error=float((W - W_k).double().norm() / W.double().norm()), energy_kept=float(sq[:k].sum() / sq.sum()),
        params_before=params[0], params_after=params[1], macs_before=macs[0], macs_after=macs[1])


@torch.no_grad()
def svd_factorize_linear(linear: nn.Linear, rank: int | None = None, energy: float | None = None
                         ) -> tuple[nn.Sequential, FactorizationReport]:
    """Linear(in, out) → Sequential(Linear(in, k, bias=False), Linear(k, out)) with the best rank-k weight."""
    if not isinstance(linear, nn.Linear):
        raise ValueError(f"linear must be an nn.Linear, got {type(linear).__name__}")
    W = linear.weight
    out_f, in_f = W.shape
    U, S, Vh = torch.linalg.svd(W, full_matrices=False)
    k = choose_rank(S, rank, energy)
    first = nn.Linear(in_f, k, bias=False, device=W.device, dtype=W.dtype)
    second = nn.Linear(k, out_f, bias=linear.bias is not None, device=W.device, dtype=W.dtype)
    first.weight.copy_(S[:k, None] * Vh[:k])  # S_k V_kᵀ, (k, in)
    second.weight.copy_(U[:, :k])  # U_k, (out, k)
    if linear.bias is not None:
        second.bias.copy_(linear.bias)
    bias = out_f if linear.bias is not None else 0
    report = _report(S, k, W, second.weight @ first.weight,
                     params=(in_f * out_f + bias, k * (in_f + out_f) + bias), macs=(in_f * out_f, k * (in_f + out_f)))
    return nn.Sequential(first, second), report


def kernel_matrix(weight: Tensor) -> Tensor:
    """(L, K, N_h, N_w) kernel → the (L·N_h) × (K·N_w) matrix M[(l, i), (k, j)] = W[l, k, i, j]."""
    L, K, Nh, Nw = weight.shape
    return weight.permute(0, 2, 1, 3).reshape(L * Nh, K * Nw)


def rebuilt_kernel(factorized: nn.Sequential) -> Tensor:
    """The N×N kernel that a 1×N → N×1 pair from `separable_factorize_conv` computes."""
    horizontal, vertical = factorized
    return torch.einsum("lpi,pkj->lkij", vertical.weight[..., 0], horizontal.weight[:, :, 0])


@torch.no_grad()
def separable_factorize_conv(conv: nn.Conv2d, rank: int | None = None, energy: float | None = None
                             ) -> tuple[nn.Sequential, FactorizationReport]:
    """Conv2d(K, L, N_h×N_w) → Sequential(Conv2d(K, P, 1×N_w), Conv2d(P, L, N_h×1)), the best rank-P split.

    Stride and zero padding are split between the two factors (columns in the first, rows in the second); the bias
    goes on the second factor only, which keeps the result exact at the borders.
    """
    if not isinstance(conv, nn.Conv2d):
        raise ValueError(f"conv must be an nn.Conv2d, got {type(conv).__name__}")
    if conv.groups != 1 or conv.dilation != (1, 1) or conv.padding_mode != "zeros" or isinstance(conv.padding, str):
        raise ValueError("conv: only groups=1, dilation=1 and numeric zero padding can be split into 1×N and N×1")
    W = conv.weight
    L, K, Nh, Nw = W.shape
    U, S, Vh = torch.linalg.svd(kernel_matrix(W), full_matrices=False)
    P = choose_rank(S, rank, energy)
    root = S[:P].sqrt()
    horizontal = nn.Conv2d(K, P, (1, Nw), stride=(1, conv.stride[1]), padding=(0, conv.padding[1]), bias=False,
                           device=W.device, dtype=W.dtype)
    vertical = nn.Conv2d(P, L, (Nh, 1), stride=(conv.stride[0], 1), padding=(conv.padding[0], 0),
                         bias=conv.bias is not None, device=W.device, dtype=W.dtype)
    horizontal.weight.copy_((root[:, None] * Vh[:P]).reshape(P, K, 1, Nw))  # b_p[(k, j)]
    vertical.weight.copy_((U[:, :P] * root).reshape(L, Nh, P).permute(0, 2, 1).unsqueeze(3))  # a_p[(l, i)]
    if conv.bias is not None:
        vertical.bias.copy_(conv.bias)
    rebuilt = rebuilt_kernel(nn.Sequential(horizontal, vertical))
    bias = L if conv.bias is not None else 0
    report = _report(S, P, W, rebuilt, params=(W.numel() + bias, P * K * Nw + L * P * Nh + bias),
                     macs=(Nh * Nw * K * L, P * (K * Nw + L * Nh)))
    return nn.Sequential(horizontal, vertical), report
