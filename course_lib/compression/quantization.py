"""Affine (asymmetric) 8-bit quantization from first principles, and thin wrappers around PyTorch's own tooling.

A real number x is stored as an integer q of b bits, q ∈ [q_min, q_max] (uint8: [0, 255]; int8: [−128, 127]):

    quantize     q = clamp(round(x / s) + z, q_min, q_max)
    dequantize   x̂ = s · (q − z)

with the **scale** s > 0 (the step between neighbouring levels) and the **zero point** z, the integer that stands
for the real 0. Given a range [a, b] of the values to store (from min/max of a weight, or of activations seen on
calibration data), the range is first widened to contain 0, a' = min(a, 0), b' = max(b, 0), so that the real 0
(zero padding, ReLU outputs) is exactly a level; then

    s = (b' − a') / (q_max − q_min),        z = clamp(q_min − round(a' / s), q_min, q_max).

Levels are s apart, so inside the **clipping range** [s (q_min − z), s (q_max − z)] rounding moves x by at most half
a step,

    |x − x̂| ≤ s / 2,

and outside it the error is the distance to the range's end (clipping). Rounding z moves the clipping range
by at most s/2 against [a', b'], so every x in [a', b'] is also within s/2 of its level. A wider range means a larger s and a larger
rounding error everywhere; a narrower one clips more values: choosing the range is the whole art (Nagel et al. 2021).

Exactly as PyTorch computes it (`torch.ao.quantization.MinMaxObserver.calculate_qparams` and
`torch.quantize_per_tensor`): s is a float32, s ≥ float32 eps (a range of a single value would give s = 0);
rounding is round-half-to-even; x / s is computed as x · (1/s) in float32, as the CPU kernels do (that can differ
from x / s in the last bit, and then the rounded level by one). Per channel, the same formulas hold with one (s, z)
per slice along ``axis``.

k-means weight sharing (`course_lib.compression.sharing`) is also quantization: its 256 levels are a learned codebook
rather than an evenly spaced grid, which fits the weights better but cannot be computed with integer arithmetic.

PyTorch's quantized models: `quantize_dynamic` stores Linear weights as int8 and quantizes each activation on the fly
(its range from the batch at hand); `quantize_static` also fixes the activations' (s, z) from calibration data, so a
whole chain of layers runs in integers (Jacob et al. 2018). `torch.ao.quantization` warns that it is deprecated in
favour of the separate torchao package; the wrappers silence exactly those warnings (`quiet_quantization_warnings`).
"""

from __future__ import annotations

import copy
import io
import warnings
from collections.abc import Iterable, Sequence
from contextlib import contextmanager

import torch
from torch import Tensor, nn

RANGES = {"uint8": (0, 255), "int8": (-128, 127)}
_STORAGE = {"uint8": torch.uint8, "int8": torch.int8}
_TORCH_DTYPES = {"uint8": torch.quint8, "int8": torch.qint8}


def _check_dtype(dtype: str) -> tuple[int, int]:
    if dtype not in RANGES:
        raise ValueError(f"dtype must be 'uint8' or 'int8', got {dtype!r}")
    return RANGES[dtype]


def torch_dtype(dtype: str) -> torch.dtype:
    """The quantized torch dtype of ``dtype``: 'uint8' → torch.quint8, 'int8' → torch.qint8."""
    _check_dtype(dtype)
    return _TORCH_DTYPES[dtype]


def choose_qparams(min_val, max_val, dtype: str = "uint8") -> tuple[Tensor, Tensor]:
    """Scale s (float32) and zero point z (int64) that map the range [min_val, max_val] ∪ {0} onto ``dtype``'s levels.

    ``min_val`` and ``max_val`` are numbers or tensors of the same shape (one range per channel).
    """
    q_min, q_max = _check_dtype(dtype)
    lo = torch.as_tensor(min_val, dtype=torch.float32)
    hi = torch.as_tensor(max_val, dtype=torch.float32)
    if lo.shape != hi.shape:
        raise ValueError(f"min_val and max_val must have the same shape, got {tuple(lo.shape)} and {tuple(hi.shape)}")
    if not (torch.isfinite(lo).all() and torch.isfinite(hi).all()):
        raise ValueError("min_val and max_val must be finite")
    if (lo > hi).any():
        raise ValueError(f"min_val must not exceed max_val, got {min_val} > {max_val}")
    lo, hi = torch.clamp(lo, max=0.0), torch.clamp(hi, min=0.0)
    scale = torch.clamp((hi - lo) / float(q_max - q_min), min=torch.finfo(torch.float32).eps)
    zero_point = torch.clamp(q_min - torch.round(lo / scale).to(torch.int64), q_min, q_max)
    return scale, zero_point


def _per_axis(t, x: Tensor, axis: int | None) -> Tensor:
    """(s or z) shaped to broadcast against x: a scalar per tensor, or one value per slice along ``axis``."""
    t = torch.as_tensor(t)
    if axis is None:
        if t.numel() != 1:
            raise ValueError(f"per-tensor quantization needs one scale and zero point, got {t.numel()}; pass axis")
        return t.reshape(())
    if not -x.dim() <= axis < x.dim():
        raise ValueError(f"axis must index a dimension of x (dim {x.dim()}), got {axis}")
    if t.dim() != 1 or t.numel() != x.shape[axis]:
        raise ValueError(f"per-channel scale and zero point need {x.shape[axis]} values (x.shape[{axis}]), "
                         f"got shape {tuple(t.shape)}")
    shape = [1] * x.dim()
    shape[axis] = -1
    return t.reshape(shape)


def _check_scale(scale) -> None:
    if not (torch.as_tensor(scale) > 0).all():
        raise ValueError(f"scale must be positive, got {scale}")


def quantize(x: Tensor, scale, zero_point, dtype: str = "uint8", axis: int | None = None) -> Tensor:
    """q = clamp(round(x · (1/s)) + z, q_min, q_max), stored as torch.uint8 or torch.int8; same shape as x."""
    q_min, q_max = _check_dtype(dtype)
    _check_scale(scale)
    s = _per_axis(scale, x, axis).to(torch.float32)
    z = _per_axis(zero_point, x, axis).to(torch.int64)
    levels = torch.round(x.to(torch.float32) * (1.0 / s)).to(torch.int64) + z
    return torch.clamp(levels, q_min, q_max).to(_STORAGE[dtype])


def dequantize(q: Tensor, scale, zero_point, axis: int | None = None) -> Tensor:
    """x̂ = s · (q − z) in float32; same shape as q."""
    _check_scale(scale)
    s = _per_axis(scale, q, axis).to(torch.float32)
    z = _per_axis(zero_point, q, axis).to(torch.int64)
    return (q.to(torch.int64) - z).to(torch.float32) * s


def clipping_range(scale, zero_point, dtype: str = "uint8") -> tuple[Tensor, Tensor]:
    """The real interval [s (q_min − z), s (q_max − z)] that ``quantize`` represents without clipping."""
    q_min, q_max = _check_dtype(dtype)
    _check_scale(scale)
    s, z = torch.as_tensor(scale, dtype=torch.float32), torch.as_tensor(zero_point, dtype=torch.int64)
    return (q_min - z).to(torch.float32) * s, (q_max - z).to(torch.float32) * s


def rounding_error_bound(scale) -> Tensor:
    """s / 2: the largest |x − dequantize(quantize(x))| inside the clipping range."""
    _check_scale(scale)
    return torch.as_tensor(scale, dtype=torch.float32) / 2


# --- PyTorch's quantized models ------------------------------------------------------------------------

@contextmanager
def quiet_quantization_warnings():
    """Silence the deprecation notices of `torch.ao.quantization` and of quantized tensors (torchao replaces them)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"torch\.ao\.quantization is deprecated", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message=r"torch\.quantize_per_tensor, torch\.quantize_per_channel",
                                category=UserWarning)
        yield


def quantize_dynamic(model: nn.Module) -> nn.Module:
    """A copy of ``model`` whose nn.Linear layers hold int8 weights (per tensor); activations quantized on the fly."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    with quiet_quantization_warnings():
        return torch.ao.quantization.quantize_dynamic(copy.deepcopy(model).cpu().eval(), {nn.Linear},
                                                      dtype=torch.qint8, inplace=True)


class QuantizedWrapper(nn.Module):
    """quantize → model → dequantize: the float input enters the integer world once and leaves it once."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.quant = torch.ao.quantization.QuantStub()
        self.model = model
        self.dequant = torch.ao.quantization.DeQuantStub()

    def forward(self, x: Tensor) -> Tensor:
        with quiet_quantization_warnings():
            return self.dequant(self.model(self.quant(x)))


def quantize_static(model: nn.Module, calibration: Iterable[Tensor], fuse: Sequence[Sequence[str]] = ()) -> nn.Module:
    """An int8 copy of ``model`` with weights and activations quantized, activation ranges from ``calibration``.

    ``fuse`` lists groups of submodule names (relative to ``model``, e.g. ``[["enc1.conv", "enc1.relu"]]``) to fuse
    first, so a convolution and its ReLU become one integer operation. Weights: int8, symmetric, per tensor;
    activations: uint8 with min/max ranges on 7 bits (PyTorch's default_qconfig, safe on x86's int8 instructions).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    tq = torch.ao.quantization
    with quiet_quantization_warnings():
        wrapped = QuantizedWrapper(copy.deepcopy(model).cpu()).eval()
        if fuse:
            tq.fuse_modules(wrapped.model, [list(group) for group in fuse], inplace=True)
        wrapped.qconfig = tq.default_qconfig
        tq.prepare(wrapped, inplace=True)
        batches = list(calibration)
        if not batches:
            raise ValueError("calibration must yield at least one batch of inputs")
        with torch.no_grad():
            for batch in batches:
                wrapped(batch.cpu())
        tq.convert(wrapped, inplace=True)
    return wrapped


def saved_bytes(model: nn.Module) -> int:
    """Bytes of ``torch.save(model.state_dict())``: the file a phone would download (works for quantized models)."""
    buffer = io.BytesIO()
    with quiet_quantization_warnings():
        torch.save(model.state_dict(), buffer)
    return buffer.getbuffer().nbytes
