"""Tricks that read answers out of what the hidden tests leave in the kernel score nothing, graded in one batch with
two honest copies of the solution, which get every automatic point."""

from __future__ import annotations

import csv
import shutil

import nbformat
import pytest

from course_lib.grading import batch, runner, sandbox
from course_lib.grading.verdicts import exercise_parts
from grading_tricks import SOLUTION, TRICKS, trick_submissions

SANDBOX, WHY = sandbox.available()
pytestmark = [pytest.mark.grading, pytest.mark.complete, pytest.mark.skipif(not SANDBOX, reason=f"no sandbox here: {WHY}")]
AUTOMATIC = {p.part_id: p.points for p in exercise_parts(nbformat.read(SOLUTION, as_version=4), SOLUTION.stem)
             if not p.manual}
HONEST = ("honest_a", "honest_b")


@pytest.fixture(scope="module")
def grades(tmp_path_factory):
    base = tmp_path_factory.mktemp("tricks")
    solutions, submissions, output = base / "solutions", base / "submissions", base / "output"
    solutions.mkdir()
    submissions.mkdir()
    shutil.copy(SOLUTION, solutions / SOLUTION.name)
    for student, text in trick_submissions().items():
        (submissions / f"{student}.ipynb").write_text(text)
    for student in HONEST:
        shutil.copy(SOLUTION, submissions / f"{student}.ipynb")
    batch.grade(solutions, submissions, output, workers=2, settings=runner.RunSettings(cell_timeout=120, timeout=600))
    with open(output / "grades.csv", newline="") as handle:
        return {row["student"]: row for row in csv.DictReader(handle)}


def automatic_points(row: dict) -> float:
    return sum(float(row[f"{SOLUTION.stem}:{part}"]) for part in AUTOMATIC)


@pytest.mark.parametrize("trick", sorted(TRICKS))
def test_each_trick_scores_no_automatic_point(grades, trick):
    assert automatic_points(grades[trick]) == 0, {part: grades[trick][f"{SOLUTION.stem}:{part}"] for part in AUTOMATIC}


def test_the_honest_bystanders_get_every_automatic_point(grades):
    for student in HONEST:
        assert automatic_points(grades[student]) == sum(AUTOMATIC.values()), grades[student]
