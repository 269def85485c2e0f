import random

import numpy
import pytest
import torch

from course_lib import runtime


@pytest.mark.parametrize("value, expected", [("1", True), ("true", True), ("ON", True), ("0", False), ("", False), ("no", False)])
def test_quick_mode_reads_the_environment(monkeypatch, value, expected):
    monkeypatch.setenv(runtime.QUICK_ENV, value)
    assert runtime.quick_mode() is expected
    assert runtime.scale() is (runtime.QUICK if expected else runtime.FULL)


def test_quick_mode_rejects_unknown_values(monkeypatch):
    monkeypatch.setenv(runtime.QUICK_ENV, "maybe")
    with pytest.raises(ValueError, match="COURSE_QUICK"):
        runtime.quick_mode()


def test_quick_scale_is_smaller_in_every_field():
    for name in runtime.Scale.__dataclass_fields__:
        assert getattr(runtime.QUICK, name) < getattr(runtime.FULL, name), name


def test_seed_everything_makes_every_generator_repeat():
    def draw():
        return random.random(), numpy.random.rand(), torch.rand(3)

    runtime.seed_everything(7)
    first = draw()
    runtime.seed_everything(7)
    second = draw()
    assert first[0] == second[0] and first[1] == second[1] and torch.equal(first[2], second[2])
    with pytest.raises(ValueError, match="seed"):
        runtime.seed_everything(-1)


def test_choose_device_honours_the_override(monkeypatch):
    monkeypatch.setenv(runtime.DEVICE_ENV, "cpu")
    assert runtime.choose_device() == torch.device("cpu")
    monkeypatch.setenv(runtime.DEVICE_ENV, "tpu")
    with pytest.raises(ValueError, match="allowed values"):
        runtime.choose_device()


def test_choose_device_auto_prefers_cuda(monkeypatch):
    monkeypatch.delenv(runtime.DEVICE_ENV, raising=False)
    expected = "cuda" if torch.cuda.is_available() else ("mps" if runtime._mps_available() else "cpu")
    assert runtime.choose_device().type == expected


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without CUDA")
def test_asking_for_missing_cuda_is_an_error_not_a_fallback():
    with pytest.raises(ValueError, match="no CUDA device"):
        runtime.choose_device("cuda")


def test_default_threads(monkeypatch):
    monkeypatch.setenv(runtime.THREADS_ENV, "3")
    assert runtime.default_threads() == 3
    monkeypatch.setenv(runtime.THREADS_ENV, "zero")
    with pytest.raises(ValueError, match="COURSE_THREADS"):
        runtime.default_threads()
    monkeypatch.delenv(runtime.THREADS_ENV)
    monkeypatch.setattr(runtime.os, "cpu_count", lambda: 2)
    assert runtime.default_threads() == 1
    monkeypatch.setattr(runtime.os, "cpu_count", lambda: 32)
    assert runtime.default_threads() == 8


def test_setup_prints_one_line_and_returns_the_device(monkeypatch, capsys):
    monkeypatch.setenv(runtime.DEVICE_ENV, "cpu")
    monkeypatch.setenv(runtime.QUICK_ENV, "1")
    monkeypatch.setenv(runtime.THREADS_ENV, "1")
    before = torch.get_num_threads()
    try:
        device = runtime.setup(seed=3)
        assert device == torch.device("cpu")
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines == ["course_lib: device cpu, 1 torch thread, seed 3, quick mode"]
