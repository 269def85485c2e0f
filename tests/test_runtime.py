import random

import numpy
import pytest
import torch

from course_lib import runtime


@pytest.mark.parametrize("value, expected", [("1", True), ("true", True), ("ON", True), ("0", False), ("", False), ("no", False)])
def test_course_quick_still_selects_the_quick_scale(monkeypatch, value, expected):
    monkeypatch.delenv(runtime.SCALE_ENV, raising=False)
    monkeypatch.setenv(runtime.QUICK_ENV, value)
    assert runtime.quick_mode() is expected
    assert runtime.scale() is (runtime.QUICK if expected else runtime.LECTURE)


@pytest.mark.parametrize("value", ["quick", "lecture", "paper", " Paper "])
def test_course_scale_names_the_scale(monkeypatch, value):
    monkeypatch.delenv(runtime.QUICK_ENV, raising=False)
    monkeypatch.setenv(runtime.SCALE_ENV, value)
    assert runtime.scale() is runtime.SCALES[value.strip().lower()]
    assert runtime.scale().name == value.strip().lower()


def test_the_default_scale_is_the_lecture_scale(monkeypatch):
    monkeypatch.delenv(runtime.QUICK_ENV, raising=False)
    monkeypatch.delenv(runtime.SCALE_ENV, raising=False)
    assert runtime.scale() is runtime.LECTURE


def test_unknown_or_contradicting_scales_are_errors_naming_the_variable(monkeypatch):
    monkeypatch.delenv(runtime.SCALE_ENV, raising=False)
    monkeypatch.setenv(runtime.QUICK_ENV, "maybe")
    with pytest.raises(ValueError, match="COURSE_QUICK"):
        runtime.quick_mode()
    monkeypatch.delenv(runtime.QUICK_ENV)
    monkeypatch.setenv(runtime.SCALE_ENV, "full")
    with pytest.raises(ValueError, match="COURSE_SCALE='full'.*quick, lecture, paper"):
        runtime.scale()
    monkeypatch.setenv(runtime.SCALE_ENV, "paper")
    monkeypatch.setenv(runtime.QUICK_ENV, "1")
    with pytest.raises(ValueError, match="contradicts"):
        runtime.scale()


def test_scales_grow_from_quick_to_lecture_to_paper():
    # the paper trains g_infty's MNIST network on more digits for more epochs; what must grow is its work, digits × epochs
    work = {"ginfty_mnist_epochs": lambda s: s.ginfty_mnist_epochs * s.ginfty_mnist_train}
    for name in runtime.Scale.__dataclass_fields__:
        if name == "name":
            continue
        size = work.get(name, lambda s: getattr(s, name))
        quick, lecture, paper = (size(s) for s in (runtime.QUICK, runtime.LECTURE, runtime.PAPER))
        assert quick <= lecture <= paper, name
        assert quick < paper, name


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
    monkeypatch.delenv(runtime.SCALE_ENV, raising=False)
    monkeypatch.setenv(runtime.THREADS_ENV, "1")
    before = torch.get_num_threads()
    try:
        device = runtime.setup(seed=3)
        assert device == torch.device("cpu")
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines == ["course_lib: device cpu, 1 torch thread, seed 3, quick scale (COURSE_SCALE=quick, lecture or paper)"]
