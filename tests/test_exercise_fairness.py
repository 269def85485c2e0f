"""Grades a student can predict, whatever the thread count: every exercise graded in the sandbox with one torch
thread and with two, together with other correct answers and subtly wrong ones (`tests/answer_fixtures/`).

- the solution gets every automatic point, its written answers wait for the instructor;
- the untouched exercise gets no point;
- each alternative correct answer gets every automatic point;
- each wrong answer loses exactly the parts it gets wrong, and at least one of them through a visible check (the
  student could have seen it before handing in).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from answer_fixtures import EXERCISES, ROOT, module, submission
from course_lib.grading import cli, sandbox
from course_lib.grading.verdicts import BY_HAND, FAILED, NOT_GRADABLE, PASSED

SANDBOX, WHY = sandbox.available()
pytestmark = [pytest.mark.grading, pytest.mark.skipif(not SANDBOX, reason=f"no sandbox here: {WHY}")]


@pytest.fixture(scope="module", params=[1, 2], ids=lambda n: f"{n}-thread{'s' if n > 1 else ''}")
def graded(request, tmp_path_factory):
    """{student: {exercise: {part: (status, message)}}} of one batch at the given thread count."""
    base = tmp_path_factory.mktemp(f"fairness{request.param}")
    solutions, submissions = base / "solutions", base / "submissions"
    solutions.mkdir()
    for exercise in EXERCISES:
        shutil.copy(ROOT / "solutions" / f"{exercise}.ipynb", solutions)
        fixtures = module(exercise)
        notebooks = {"solution": (ROOT / "solutions" / f"{exercise}.ipynb").read_text(),
                     "exercise": (ROOT / "exercises" / f"{exercise}.ipynb").read_text(),
                     **{f"alternative-{name}": submission(exercise, answers)
                        for name, answers in fixtures.ALTERNATIVES.items()},
                     **{f"wrong-{name}": submission(exercise, answers) for name, (_, answers) in fixtures.WRONG.items()}}
        for student, text in notebooks.items():
            folder = submissions / f"{exercise[:2]}-{student}"
            folder.mkdir(parents=True)
            (folder / f"{exercise}.ipynb").write_text(text)
    code = cli.main([str(solutions), str(submissions), "-o", str(base / "out"), "-j", "2", "--threads",
                     str(request.param)])
    assert code == 0
    data = json.loads((base / "out" / "results.json").read_text())
    verdicts: dict = {}
    for result in data["results"]:
        verdicts.setdefault(result["student"], {})[result["exercise"]] = {
            p["part_id"]: (p["status"], p["message"]) for p in result["parts"]}
    manual = {(exercise, p["part_id"]) for exercise, parts in data["parts"].items() for p in parts if p["manual"]}
    return verdicts, manual


def _verdicts(graded, exercise, student):
    verdicts, manual = graded
    return verdicts[f"{exercise[:2]}-{student}"][exercise], manual


@pytest.mark.parametrize("exercise", EXERCISES)
def test_the_solution_gets_every_point_and_the_exercise_none(graded, exercise):
    verdicts, manual = _verdicts(graded, exercise, "solution")
    expected = {part: BY_HAND if (exercise, part) in manual else PASSED for part in verdicts}
    assert {part: status for part, (status, _) in verdicts.items()} == expected, verdicts
    empty, _ = _verdicts(graded, exercise, "exercise")
    assert {status for status, _ in empty.values()} <= {FAILED, NOT_GRADABLE}, empty


@pytest.mark.parametrize("exercise", EXERCISES)
def test_alternative_correct_answers_get_every_point(graded, exercise):
    for name in module(exercise).ALTERNATIVES:
        verdicts, manual = _verdicts(graded, exercise, f"alternative-{name}")
        lost = {part: message for part, (status, message) in verdicts.items()
                if status != (BY_HAND if (exercise, part) in manual else PASSED)}
        assert lost == {}, f"the correct alternative '{name}' lost points"


@pytest.mark.parametrize("exercise", EXERCISES)
def test_wrong_answers_lose_exactly_their_parts_and_fail_a_visible_check(graded, exercise):
    assert len(module(exercise).WRONG) >= 3 and len(module(exercise).ALTERNATIVES) >= 2
    for name, (parts, _) in module(exercise).WRONG.items():
        verdicts, manual = _verdicts(graded, exercise, f"wrong-{name}")
        lost = {part for part, (status, _) in verdicts.items() if status not in (PASSED, BY_HAND)}
        assert lost == set(parts), f"'{name}' should lose exactly {sorted(parts)}: {verdicts}"
        assert any(verdicts[part][1].startswith("a visible check failed") for part in parts), \
            f"no visible check catches '{name}': {verdicts}"
