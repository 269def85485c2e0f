"""expect_trained: a trained model is judged by its recorded parameters, evaluated in the grader's process on the
held-out digits; whatever a student records instead fails only its part."""

from __future__ import annotations

import math

import pytest
import torch

from course_lib.grading import evidence, heldout
from course_lib.grading.verdicts import check_record

OPTIONS = {"hidden_units": 8, "heldout_size": 200}
MLP = "course_lib.grading.heldout:mlp"


def reference(at_least=0.5, evaluate=MLP, options=OPTIONS):
    return {"key": "k", "kind": "trained", "evaluate": evaluate, "options": options, "at_least": at_least,
            "message": "m", "value": None}


def trained_mlp() -> torch.nn.Module:
    """An MLP of the prescribed shape fitted for a few hundred steps on the first training digits."""
    from course_lib.data import load_mnist

    mnist = load_mnist(train_size=1000, heldout_size=10, download=False)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 8), torch.nn.ReLU(), torch.nn.Linear(8, 10))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(150):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(mnist.train_x), mnist.train_y).backward()
        optimizer.step()
    return model


@pytest.fixture(scope="module")
def record():
    return {"value": evidence.encode(trained_mlp().state_dict())}


def test_a_trained_model_passes_and_an_untrained_one_fails(record):
    assert check_record(record, reference()) is None
    torch.manual_seed(1)
    untrained = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 8), torch.nn.ReLU(), torch.nn.Linear(8, 10))
    reason = check_record({"value": evidence.encode(untrained.state_dict())}, reference())
    assert reason is not None and "measured by the grader" in reason


def test_the_evaluation_and_its_options_come_from_the_reference_only(record):
    forged = {**record, "evaluate": "os:system", "options": {"hidden_units": 8, "heldout_size": 1}, "at_least": 0}
    assert check_record(forged, reference(at_least=0.99)) is not None, "the student's threshold is ignored"
    with pytest.raises(ValueError, match="evaluate must be one of"):
        heldout.accuracy_of(record["value"], "os:system", OPTIONS)
    assert "evaluate must be one of" in check_record(record, reference(evaluate="course_lib.data:load_mnist"))


def mutated(record, key, change):
    value = {"mapping": dict(record["value"]["mapping"])}
    tensor = dict(value["mapping"][key]["tensor"])
    change(tensor)
    value["mapping"][key] = {"tensor": tensor}
    return {"value": value}


@pytest.mark.parametrize("forge, why", [
    (lambda r: {"value": None}, "keys"),
    (lambda r: {"value": "mapping"}, "keys"),
    (lambda r: {"value": {"mapping": {**r["value"]["mapping"], "extra": r["value"]["mapping"]["1.bias"]}}}, "keys"),
    (lambda r: mutated(r, "1.bias", lambda t: t.update(shape=[9])), "shape"),
    (lambda r: mutated(r, "1.bias", lambda t: t.update(dtype="torch.float64")), "float32"),
    (lambda r: mutated(r, "1.bias", lambda t: t.update(values=t["values"][:-1])), "finite values"),
    (lambda r: mutated(r, "1.bias", lambda t: t.update(values=["nan"] * len(t["values"]))), "finite values"),
    (lambda r: mutated(r, "1.bias", lambda t: t.update(values=[1e300] * len(t["values"]))), "magnitude"),
    (lambda r: mutated(r, "1.bias", lambda t: t.update(values=[10 ** 400] * len(t["values"]))), "magnitude"),
    (lambda r: mutated(r, "1.bias", lambda t: t.update(values=[True] * len(t["values"]))), "finite values"),
    (lambda r: mutated(r, "1.bias", lambda t: t.update(values="0" * 8)), "finite values"),
])
def test_a_malformed_state_fails_the_part_without_raising(record, forge, why):
    reason = check_record(forge(record), reference())
    assert reason is not None and why in reason


def test_expect_trained_asserts_in_a_plain_run_and_checks_its_arguments(record, monkeypatch):
    monkeypatch.delenv(evidence.GRADING_ENV, raising=False)
    model = trained_mlp()
    evidence.expect_trained("k", model, evaluate=MLP, options=OPTIONS, at_least=0.5, message="m")
    with pytest.raises(AssertionError, match="too weak"):
        evidence.expect_trained("k", model, evaluate=MLP, options=OPTIONS, at_least=1.0, message="too weak")
    with pytest.raises(AssertionError, match="wrong shape"):
        evidence.expect_trained("k", model, evaluate=MLP, options={**OPTIONS, "hidden_units": 9}, at_least=0,
                                message="wrong shape")
    with pytest.raises(ValueError, match="evaluate must be one of"):
        evidence.expect_trained("k", model, evaluate="course_lib.grading.heldout:nothing", options=OPTIONS,
                                at_least=0.5, message="m")
    with pytest.raises(ValueError, match="at_least"):
        evidence.expect_trained("k", model, evaluate=MLP, options=OPTIONS, at_least=80, message="m")
    with pytest.raises(ValueError, match="model must be"):
        evidence.expect_trained("k", [1, 2], evaluate=MLP, options=OPTIONS, at_least=0.5, message="m")
    with pytest.raises(ValueError, match="options"):
        evidence.expect_trained("k", model, evaluate=MLP, options=[1], at_least=0.5, message="m")


def test_under_grading_it_records_the_parameters(monkeypatch):
    monkeypatch.setenv(evidence.GRADING_ENV, "1")
    emitted = []
    monkeypatch.setattr(evidence, "_emit", emitted.append)
    model = trained_mlp()
    evidence.expect_trained("k", model, evaluate=MLP, options=OPTIONS, at_least=0.5, message="m")
    (made,) = emitted
    assert made["kind"] == "trained" and made["self_check"] is True and made["evaluate"] == MLP
    assert made["shapes"]["1.weight"] == [8, 784] and math.isclose(
        heldout.accuracy_of(made["value"], MLP, OPTIONS), heldout.mlp(model.state_dict(), OPTIONS))
