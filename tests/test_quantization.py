"""Oracles for course_lib.compression.quantization: PyTorch's observers and quantize_per_tensor, bit for bit."""

import warnings

import pytest
import torch
from torch import nn
from torch.ao.quantization import MinMaxObserver, PerChannelMinMaxObserver

from course_lib.compression import (choose_qparams, clipping_range, dequantize, quantize, quantize_dynamic,
                                    quantize_static, quiet_quantization_warnings, rounding_error_bound, saved_bytes,
                                    torch_dtype)
from course_lib.compression.experiments import autoencoder

RANGES = [(-1.0, 1.0), (0.3, 2.0), (-3.7, -0.2), (0.0, 5.0), (-0.013, 7.9), (-250.0, 3.0), (2.5, 2.5), (0.0, 0.0)]


def torch_qparams(lo, hi, dtype):
    with quiet_quantization_warnings():
        observer = MinMaxObserver(dtype=torch_dtype(dtype))
        observer(torch.tensor([lo, hi]))
        return observer.calculate_qparams()


def samples(lo, hi, n=20_000, seed=0):
    """Values over the range and 20 % beyond it on each side, plus the ends and 0."""
    g = torch.Generator().manual_seed(seed)
    width = max(hi - lo, 1.0)
    x = lo - 0.2 * width + 1.4 * width * torch.rand(n, generator=g)
    return torch.cat([x, torch.tensor([lo, hi, 0.0])])


@pytest.mark.parametrize("dtype", ["uint8", "int8"])
@pytest.mark.parametrize("lo,hi", RANGES)
def test_matches_pytorch_exactly(lo, hi, dtype):
    scale, zero_point = choose_qparams(lo, hi, dtype)
    torch_scale, torch_zero_point = torch_qparams(lo, hi, dtype)
    assert scale.dtype == torch.float32 and scale.item() == torch_scale.item()
    assert zero_point.item() == torch_zero_point.item()
    x = samples(lo, hi)
    q = quantize(x, scale, zero_point, dtype)
    assert q.dtype == (torch.uint8 if dtype == "uint8" else torch.int8)
    with quiet_quantization_warnings():
        reference = torch.quantize_per_tensor(x, torch_scale.item(), int(torch_zero_point), torch_dtype(dtype))
    assert torch.equal(q, reference.int_repr())
    assert torch.equal(dequantize(q, scale, zero_point), reference.dequantize())


@pytest.mark.parametrize("dtype", ["uint8", "int8"])
@pytest.mark.parametrize("lo,hi", RANGES)
def test_rounding_error_within_half_a_step_inside_the_clipping_range(lo, hi, dtype):
    scale, zero_point = choose_qparams(lo, hi, dtype)
    low, high = clipping_range(scale, zero_point, dtype)
    bound = rounding_error_bound(scale)
    assert bound == scale / 2
    slack = 1e-6 * max(1.0, abs(lo), abs(hi))  # float32 rounding of s · (q − z)
    assert low <= min(lo, 0.0) + bound + slack and high >= max(hi, 0.0) - bound - slack, \
        "rounding z moves the clipping range by at most half a step"
    x = samples(lo, hi)
    error = (x - dequantize(quantize(x, scale, zero_point, dtype), scale, zero_point)).abs()
    inside = (x >= low) & (x <= high)
    assert (error[inside] <= bound + slack).all()
    in_range = (x >= min(lo, 0.0)) & (x <= max(hi, 0.0))
    assert (error[in_range] <= bound + slack).all(), "every value of the widened range [a', b'] is within s/2"
    if hi - lo > 1e-3:  # the bound is tight: some value lands half a step from its level
        assert error[inside].max() > 0.9 * bound
    outside = ~inside
    assert torch.allclose(error[outside], torch.minimum((x[outside] - low).abs(), (x[outside] - high).abs()),
                          atol=1e-5 * max(1.0, abs(lo), abs(hi))), "outside, the error is the distance to the range"
    assert dequantize(quantize(torch.zeros(1), scale, zero_point, dtype), scale, zero_point).item() == 0.0, \
        "the real 0 is exactly a level"


def test_formulas_by_hand():
    scale, zero_point = choose_qparams(-1.0, 3.0, "uint8")  # s = 4 / 255, z = 0 − round(−1 / s) = round(63.75) = 64
    assert scale.item() == pytest.approx(4 / 255) and zero_point.item() == 64
    scale, zero_point = choose_qparams(0.5, 2.0, "int8")  # widened to [0, 2]: s = 2 / 255, z = −128
    assert scale.item() == pytest.approx(2 / 255) and zero_point.item() == -128
    q = quantize(torch.tensor([0.0, 2.0, 5.0, -1.0]), scale, zero_point, "int8")
    assert q.tolist() == [-128, 127, 127, -128]


def test_per_channel_matches_pytorch():
    torch.manual_seed(0)
    w = torch.randn(6, 5) * torch.tensor([0.1, 1.0, 3.0, 0.01, 10.0, 0.5])[:, None] + torch.tensor([0, 0, 1, 0, 0, -2.0])[:, None]
    with quiet_quantization_warnings():
        observer = PerChannelMinMaxObserver(ch_axis=0, dtype=torch.qint8, qscheme=torch.per_channel_affine)
        observer(w)
        torch_scale, torch_zero_point = observer.calculate_qparams()
        reference = torch.quantize_per_channel(w, torch_scale.double(), torch_zero_point, 0, torch.qint8)
    scale, zero_point = choose_qparams(w.amin(1), w.amax(1), "int8")
    assert torch.equal(scale, torch_scale) and torch.equal(zero_point, torch_zero_point)
    q = quantize(w, scale, zero_point, "int8", axis=0)
    assert torch.equal(q, reference.int_repr())
    assert torch.equal(dequantize(q, scale, zero_point, axis=0), reference.dequantize())
    assert torch.equal(quantize(w.T, scale, zero_point, "int8", axis=-1), q.T)
    assert torch.equal(quantize(w, scale, zero_point, "int8", axis=-2), q)
    with pytest.raises(ValueError, match="axis must index"):
        quantize(w, scale, zero_point, "int8", axis=-3)
    with pytest.raises(ValueError, match=r"need 6 values"):
        quantize(w, scale[:, None], zero_point[:, None], "int8", axis=0)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="dtype"):
        choose_qparams(0.0, 1.0, "int4")
    with pytest.raises(ValueError, match="min_val must not exceed max_val"):
        choose_qparams(1.0, 0.0)
    with pytest.raises(ValueError, match="^min_val and max_val must be finite$"):
        choose_qparams(0.0, float("inf"))
    with pytest.raises(ValueError, match="same shape"):
        choose_qparams(torch.zeros(2), torch.ones(3))
    with pytest.raises(ValueError, match="scale must be positive"):
        quantize(torch.ones(3), 0.0, 0)
    with pytest.raises(ValueError, match="scale must be positive"):
        dequantize(torch.ones(3), -1.0, 0)
    with pytest.raises(ValueError, match="pass axis"):
        quantize(torch.ones(3, 2), torch.ones(3), torch.zeros(3))
    with pytest.raises(ValueError, match="axis must index"):
        quantize(torch.ones(3, 2), torch.ones(3), torch.zeros(3), axis=2)
    with pytest.raises(ValueError, match=r"need 2 values"):
        quantize(torch.ones(3, 2), torch.ones(3), torch.zeros(3), axis=1)
    with pytest.raises(ValueError, match="dtype"):
        clipping_range(1.0, 0, "uint4")
    with pytest.raises(ValueError, match="scale must be positive"):
        rounding_error_bound(0.0)
    with pytest.raises(TypeError, match="model must be an nn.Module, got str"):
        quantize_dynamic("model")
    with pytest.raises(TypeError, match="model must be an nn.Module, got list"):
        quantize_static([], [])
    with pytest.raises(ValueError, match="^calibration must yield at least one batch of inputs$"):
        quantize_static(nn.Sequential(nn.Linear(2, 2)), [])


def test_pytorch_quantized_models_are_close_smaller_and_quiet():
    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10)).eval()
    x = torch.rand(32, 1, 28, 28)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        dynamic = quantize_dynamic(mlp)
        ae = autoencoder().eval()
        static = quantize_static(ae, [x], fuse=[["enc1.conv", "enc1.relu"], ["enc2.conv", "enc2.relu"]])
        with torch.no_grad():
            dynamic_out, static_out = dynamic(x), static(x)
    with torch.no_grad():
        assert (dynamic_out - mlp(x)).abs().max() < 0.05 * mlp(x).abs().max()
        assert (static_out - ae(x)).abs().max() < 0.1 * ae(x).abs().max()
    assert type(dynamic[1]).__module__.startswith("torch.ao.nn.quantized.dynamic")
    assert type(static.model.enc1.conv).__name__ == "ConvReLU2d" and isinstance(static.model.enc1.relu, nn.Identity)
    assert "quantized" in type(static.model.dec2).__module__
    assert saved_bytes(dynamic) < 0.35 * saved_bytes(mlp) and saved_bytes(static) < 0.5 * saved_bytes(ae)
    assert isinstance(mlp[1], nn.Linear) and isinstance(ae.enc1.relu, nn.ReLU), "the float models are left unchanged"


def test_results_are_float32_and_int64_whatever_the_inputs_dtypes():
    """PyTorch keeps s in float32 and z in int64 and computes x · (1/s) in float32; so does course_lib, also when
    it is handed float64 ranges, scales or inputs (a float64 product can round to the other level)."""
    lo64, hi64 = torch.tensor([-0.3, -1.0], dtype=torch.float64), torch.tensor([0.7, 2.5], dtype=torch.float64)
    scale, zero_point = choose_qparams(lo64, hi64)
    assert scale.dtype == torch.float32 and zero_point.dtype == torch.int64
    assert torch.equal(scale, choose_qparams(lo64.float(), hi64.float())[0])
    scale64 = torch.tensor(0.1, dtype=torch.float64)
    assert rounding_error_bound(scale64).dtype == torch.float32
    low, high = clipping_range(scale64, torch.tensor(3, dtype=torch.int32))
    assert low.dtype == high.dtype == torch.float32
    assert torch.equal(torch.stack([low, high]), torch.stack(clipping_range(0.1, 3, "uint8")))
    x = torch.linspace(-10.0, 10.0, 20_001, dtype=torch.float64) + 1e-9  # near the midpoints between levels
    q = quantize(x, scale64, 3, "int8")
    assert torch.equal(q, quantize(x.float(), 0.1, 3, "int8"))
    assert torch.equal(q, torch.quantize_per_tensor(x.float(), 0.1, 3, torch.qint8).int_repr())
    assert torch.equal(quantize(torch.tensor([0.5 + 1e-12], dtype=torch.float64), 1.0, 0), torch.tensor([0],
                                                                                                  dtype=torch.uint8))
    assert dequantize(q, scale64, 3).dtype == torch.float32
    scales64 = torch.tensor([0.1, 0.3, 0.7], dtype=torch.float64)  # per channel: one value per row
    rows = x[:19_998].reshape(3, -1)
    q_rows = quantize(rows, scales64, torch.tensor([3, 0, -2]), "int8", axis=0)
    assert torch.equal(q_rows, quantize(rows.float(), scales64.float(), torch.tensor([3, 0, -2]), "int8", axis=0))
    assert dequantize(q_rows, scales64, torch.tensor([3, 0, -2]), axis=0).dtype == torch.float32


def test_dynamic_quantization_touches_linear_layers_only():
    model = nn.ModuleDict({"rnn": nn.LSTM(4, 4), "head": nn.Linear(4, 2)})
    quantized = quantize_dynamic(model)
    assert type(quantized["rnn"]) is nn.LSTM and type(quantized["head"]).__module__.startswith(
        "torch.ao.nn.quantized.dynamic")
