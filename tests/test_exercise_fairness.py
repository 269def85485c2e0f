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
from pathlib import Path

import pytest

from answer_fixtures import EXERCISES, ROOT, module, submission
from course_lib.grading import cli, sandbox
from course_lib.grading.verdicts import BY_HAND, FAILED, NOT_GRADABLE, PASSED

SANDBOX, WHY = sandbox.available()
pytestmark = [pytest.mark.grading, pytest.mark.skipif(not SANDBOX, reason=f"no sandbox here: {WHY}")]


@pytest.fixture(scope="module", params=[(e, t) for e in EXERCISES for t in (1, 2)],
                ids=lambda p: f"{p[0]}-{p[1]}-thread{'s' if p[1] > 1 else ''}")
def graded(request, tmp_path_factory):
    """One exercise graded at one thread count: its module of answers, {student: {part: (status, message)}}, and
    the ids of its written answers."""
    exercise, threads = request.param
    base = tmp_path_factory.mktemp(f"fairness-{exercise}-{threads}")
    submissions = base / "submissions"
    fixtures = module(exercise)
    notebooks = {"solution": (ROOT / "solutions" / f"{exercise}.ipynb").read_text(),
                 "exercise": (ROOT / "exercises" / f"{exercise}.ipynb").read_text(),
                 **{f"alternative-{name}": submission(exercise, answers) for name, answers in fixtures.ALTERNATIVES.items()},
                 **{f"wrong-{name}": submission(exercise, answers) for name, (_, answers) in fixtures.WRONG.items()}}
    for student, text in notebooks.items():
        (submissions / student).mkdir(parents=True)
        (submissions / student / f"{exercise}.ipynb").write_text(text)
    code = cli.main([str(ROOT / "solutions" / f"{exercise}.ipynb"), str(submissions), "-o", str(base / "out"),
                     "-j", "2", "--threads", str(threads)])
    assert code == 0
    data = json.loads((base / "out" / "results.json").read_text())
    verdicts = {r["student"]: {p["part_id"]: (p["status"], p["message"]) for p in r["parts"]} for r in data["results"]}
    manual = {p["part_id"] for p in data["parts"][exercise] if p["manual"]}
    for student, parts in verdicts.items():  # the grader's own failure shows its traceback, not only a verdict
        if any(message.startswith("the grader could not run") for _, message in parts.values()):
            log = (base / "out" / "logs" / f"{student}.log").read_text()
            pytest.fail(f"the grader failed on {student}'s {exercise}:\n{log[-6000:]}")
    return fixtures, verdicts, manual


def test_the_solution_gets_every_point_and_the_exercise_none(graded):
    _, verdicts, manual = graded
    expected = {part: BY_HAND if part in manual else PASSED for part in verdicts["solution"]}
    assert {part: status for part, (status, _) in verdicts["solution"].items()} == expected, verdicts["solution"]
    assert {status for status, _ in verdicts["exercise"].values()} <= {FAILED, NOT_GRADABLE}, verdicts["exercise"]


def test_alternative_correct_answers_get_every_point(graded):
    fixtures, verdicts, manual = graded
    assert len(fixtures.ALTERNATIVES) >= 2
    for name in fixtures.ALTERNATIVES:
        lost = {part: message for part, (status, message) in verdicts[f"alternative-{name}"].items()
                if status != (BY_HAND if part in manual else PASSED)}
        assert lost == {}, f"the correct alternative '{name}' lost points"


def test_wrong_answers_lose_exactly_their_parts_and_fail_a_visible_check(graded):
    fixtures, verdicts, manual = graded
    assert len(fixtures.WRONG) >= 3
    for name, (parts, _) in fixtures.WRONG.items():
        mine = verdicts[f"wrong-{name}"]
        lost = {part for part, (status, _) in mine.items() if status not in (PASSED, BY_HAND)}
        assert lost == set(parts), f"'{name}' should lose exactly {sorted(parts)}: {mine}"
        assert any(mine[part][1].startswith("a visible check") for part in parts), \
            f"no visible check catches '{name}': {mine}"
