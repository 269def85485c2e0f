"""The solutions work with the real nbgrader: `generate_assignment` releases what `course-make-exercises` writes
(hints aside), `validate` notices an edited check cell, and `autograde` gives the points `course-grade` gives."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from answer_fixtures import module, submission
from course_lib.grading import cli, sandbox

nbgrader = pytest.importorskip("nbgrader", reason="nbgrader is not installed")
ROOT = Path(__file__).resolve().parent.parent
EXERCISE = "01_batch_sgd"
BIN = Path(sys.executable).parent
pytestmark = [pytest.mark.grading]


def run_nbgrader(course: Path, *args: str) -> subprocess.CompletedProcess:
    environment = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")  # nbgrader calls alembic
    shutil.copy(ROOT / "nbgrader_config.py", course / "nbgrader_config.py")
    done = subprocess.run([str(BIN / "nbgrader"), *args, f"--CourseDirectory.root={course}"], cwd=course,
                          env=environment, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    course = tmp_path_factory.mktemp("nbgrader")
    (course / "source" / EXERCISE).mkdir(parents=True)
    shutil.copy(ROOT / "solutions" / f"{EXERCISE}.ipynb", course / "source" / EXERCISE)
    run_nbgrader(course, "generate_assignment", EXERCISE, "--force")
    return course


def test_generate_assignment_releases_what_course_make_exercises_writes(course):
    released = nbformat.read(course / "release" / EXERCISE / f"{EXERCISE}.ipynb", as_version=4)
    ours = nbformat.read(ROOT / "exercises" / f"{EXERCISE}.ipynb", as_version=4)
    assert len(released.cells) == len(ours.cells)
    for theirs, mine in zip(released.cells, ours.cells):
        meta_theirs, meta_mine = dict(theirs.metadata), dict(mine.metadata)
        assert meta_theirs.keys() == meta_mine.keys()
        if meta_mine.get("nbgrader", {}).get("solution") and theirs.cell_type == "code":
            # nbgrader's stub is one setting for every cell; ours keeps the answer's hint in its error
            assert theirs.source == re.sub(r"raise NotImplementedError\(.*\)$", "raise NotImplementedError()",
                                           mine.source, flags=re.MULTILINE)
            meta_mine["nbgrader"] = {k: v for k, v in meta_mine["nbgrader"].items() if k != "checksum"}
            meta_theirs["nbgrader"] = {k: v for k, v in meta_theirs["nbgrader"].items() if k != "checksum"}
        else:
            assert theirs.source == mine.source
        assert meta_theirs == meta_mine
    hints = [line for cell in released.cells for line in cell.source.splitlines() if line.strip().startswith("# Hint:")]
    assert len(hints) >= 5, "the hints survive nbgrader's release"


def test_validate_notices_an_edited_check_cell(course, tmp_path):
    notebook = nbformat.read(ROOT / "exercises" / f"{EXERCISE}.ipynb", as_version=4)
    check = next(c for c in notebook.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "sgd-step")
    check.source = "pass"
    nbformat.write(notebook, tmp_path / f"{EXERCISE}.ipynb")
    done = run_nbgrader(course, "validate", str(tmp_path / f"{EXERCISE}.ipynb"))
    assert "THE CONTENTS OF 1 TEST CELL(S) HAVE CHANGED" in done.stdout + done.stderr


@pytest.mark.skipif(not sandbox.available()[0], reason="course-grade needs its sandbox for the comparison")
def test_autograde_gives_the_points_course_grade_gives(course, tmp_path):
    wrong = module(EXERCISE).WRONG
    students = {"solution": (ROOT / "solutions" / f"{EXERCISE}.ipynb").read_text(),
                "exercise": (ROOT / "exercises" / f"{EXERCISE}.ipynb").read_text(),
                **{name: submission(EXERCISE, answers) for name, (_, answers) in list(wrong.items())[:2]}}
    submissions = tmp_path / "submissions"
    for student, text in students.items():
        (course / "submitted" / student / EXERCISE).mkdir(parents=True)
        (course / "submitted" / student / EXERCISE / f"{EXERCISE}.ipynb").write_text(text)
        (submissions / student).mkdir(parents=True)
        (submissions / student / f"{EXERCISE}.ipynb").write_text(text)
    run_nbgrader(course, "autograde", EXERCISE, "--create", "--force")
    from nbgrader.api import Gradebook

    theirs = {}
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        for student in students:
            notebook = gradebook.find_submission_notebook(EXERCISE, EXERCISE, student)
            theirs[student] = {grade.name: grade.score for grade in notebook.grades if grade.auto_score is not None}
    assert cli.main([str(ROOT / "solutions" / f"{EXERCISE}.ipynb"), str(submissions), "-o", str(tmp_path / "out")]) == 0
    data = json.loads((tmp_path / "out" / "results.json").read_text())
    points = {p["part_id"]: p["points"] for p in data["parts"][EXERCISE]}
    ours = {r["student"]: {p["part_id"]: points[p["part_id"]] if p["status"] == "passed" else 0.0
                           for p in r["parts"] if p["status"] != "to be graded by hand"} for r in data["results"]}
    assert theirs == ours
    assert sum(theirs["solution"].values()) == 10 and sum(theirs["exercise"].values()) == 0
