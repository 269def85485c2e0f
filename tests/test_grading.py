"""The grader on a set of broken submissions, and on every committed solution/exercise pair.

Each submission below is built from the committed solution or exercise of lecture 01 and graded through
nbval in one batch; none may stop the batch, each must get the points it deserves, every file must be
byte-identical afterwards, and no feedback may quote a hidden test.
"""

import csv
import json
import shutil
from pathlib import Path

import nbformat
import pytest

from course_lib import grading
from course_lib.exercises import hidden_test_texts

ROOT = Path(__file__).resolve().parent.parent
SOLUTION = ROOT / "solutions" / "01_batch_sgd.ipynb"
EXERCISE = ROOT / "exercises" / "01_batch_sgd.ipynb"
PARTS = ["linear-backward", "minibatches", "sgd-step", "train-mnist"]  # worth 2, 3, 2, 1


def answer_cell(notebook, part):
    return next(c for c in notebook.cells if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == f"{part}-answer")


def with_answer(part, transform):
    notebook = nbformat.read(SOLUTION, as_version=4)
    cell = answer_cell(notebook, part)
    cell.source = transform(cell.source)
    return nbformat.writes(notebook)


def without_cell(part):
    notebook = nbformat.read(SOLUTION, as_version=4)
    notebook.cells = [c for c in notebook.cells if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") != part]
    return nbformat.writes(notebook)


def old_format():
    notebook = nbformat.read(SOLUTION, as_version=4)
    return nbformat.writes(nbformat.convert(notebook, 3), version=3)


def build_submissions(folder: Path, solutions: Path) -> dict[str, float]:
    """Write the fixtures; return each student's expected total."""
    victim = folder / "bob.ipynb"
    attack = (
        "from pathlib import Path\n"
        f"Path({str(victim)!r}).write_text('overwritten')\n"
        f"Path({str(solutions / SOLUTION.name)!r}).write_text('overwritten')\n"
        "Path('../escaped.txt').write_text('outside the work directory')\n"
        "text = Path('submission.ipynb').read_text()\n"
        "leak = text[text.rfind('BEGIN HIDDEN TESTS'):][:3000].replace(chr(10), ' ')  # one line, to survive extraction\n"
    )
    fixtures = {
        "alice": (SOLUTION.read_text(), 8),  # the solution itself
        "bob": (EXERCISE.read_text(), 0),  # the untouched exercise
        "carol": (with_answer("linear-backward", lambda s: s.replace("grad_w = grad_y.T @ x", "grad_w = x.T @ grad_y")), 6),
        "dave": (with_answer("minibatches", lambda s: "raise RuntimeError('oops')\n" + s), 4),  # minibatches and train-mnist
        "eve": (with_answer("linear-backward", lambda s: "while True:\n    pass\n" + s), 6),  # interrupted: loses that part
        "frank": ('{"cells": [', 0),  # invalid JSON
        "grace": (old_format(), 8),  # nbformat 3
        "heidi": (without_cell("minibatches"), 5),  # a deleted graded cell
        "ivan": (with_answer("sgd-step", lambda s: s.replace("def sgd_step", "def sgd_update")), 5),  # renamed
        "judy": (with_answer("linear-backward", lambda s: "import sys\nsys.exit()\n" + s), 6),
        "mallory": (with_answer("minibatches", lambda s: "import os\nos._exit(1)\n" + s), 2),  # kills the kernel
        "oscar": (with_answer("sgd-step", lambda s: "for i in range(100_000):\n    print('spam ' * 20)\n" + s), 8),
        "trent": (with_answer("sgd-step", lambda s: attack + s.replace(
            "    if lr < 0:", "    if lr == 0.5:\n        raise ValueError(leak)\n    if lr < 0:")), 6),
        "empty": ("", 0),
        "walter": ("These are my notes, not a notebook.\n", 0),
    }
    for student, (text, _) in fixtures.items():
        (folder / f"{student}.ipynb").write_text(text)
    return {student: expected for student, (_, expected) in fixtures.items()}


@pytest.fixture(scope="module")
def graded_batch(tmp_path_factory):
    base = tmp_path_factory.mktemp("grading")
    solutions, submissions, output = base / "solutions", base / "submissions", base / "output"
    solutions.mkdir()
    submissions.mkdir()
    shutil.copy(SOLUTION, solutions / SOLUTION.name)
    expected = build_submissions(submissions, solutions)
    before = {path: path.read_bytes() for path in [*submissions.iterdir(), *solutions.iterdir()]}
    code = grading.main([str(solutions), str(submissions), "-o", str(output), "-j", "2", "--cell-timeout", "20",
                         "--timeout", "300"])
    return dict(code=code, expected=expected, before=before, output=output, base=base)


def read_grades(output: Path) -> dict[str, dict[str, str]]:
    with open(output / "grades.csv") as handle:
        return {row["student"]: row for row in csv.DictReader(handle)}


def test_every_submission_gets_the_points_it_deserves(graded_batch):
    assert graded_batch["code"] == 0, "students' failures never make the grader fail"
    grades = read_grades(graded_batch["output"])
    assert set(grades) == set(graded_batch["expected"])
    got = {student: float(row["total"]) for student, row in grades.items()}
    assert got == {student: float(points) for student, points in graded_batch["expected"].items()}
    assert all(row["maximum"] == "8" for row in grades.values())
    assert grades["carol"]["01_batch_sgd:linear-backward"] == "0" and grades["carol"]["01_batch_sgd:minibatches"] == "3"


def test_feedback_explains_without_quoting_hidden_tests(graded_batch):
    feedback = {p.stem: p.read_text() for p in (graded_batch["output"] / "feedback").glob("*.md")}
    hidden = {line.strip() for block in hidden_test_texts("\n".join(
        c.source for c in nbformat.read(SOLUTION, as_version=4).cells)) for line in block.splitlines() if len(line.strip()) > 8}
    assert hidden
    for student, text in feedback.items():
        leaked = [line for line in hidden if line in text]
        assert leaked == [], f"{student}'s feedback quotes hidden tests: {leaked[:2]}"
    assert "grad_x must be (B, D_in) and grad_w (D_out, D_in)" in feedback["carol"], "the instructor's message is shown"
    assert "time limit" in feedback["eve"]
    assert "not a readable notebook" in feedback["frank"] and "not a readable notebook" in feedback["empty"]
    assert "is missing" in feedback["heidi"]
    assert "NameError" in feedback["ivan"]
    assert "withheld" in feedback["trent"], "an error message that quotes the hidden tests is withheld"


def test_no_file_was_changed_by_grading(graded_batch):
    for path, content in graded_batch["before"].items():
        assert path.read_bytes() == content, f"{path.name} was modified"


def test_grading_the_committed_pairs_gives_full_marks_and_zero(tmp_path):
    submissions = tmp_path / "submissions"
    for who, folder in (("solution", ROOT / "solutions"), ("exercise", ROOT / "exercises")):
        (submissions / who).mkdir(parents=True)
        for notebook in folder.glob("*.ipynb"):
            shutil.copy(notebook, submissions / who / notebook.name)
    results = grading.grade(ROOT / "solutions", submissions, tmp_path / "output", workers=2, cell_timeout=120, timeout=600)
    totals = {r.student: 0.0 for r in results}
    maximum = 0.0
    for r in results:
        totals[r.student] += r.total
        if r.student == "solution":
            maximum += sum(p.part.points for p in r.results)
            failed = [(p.part.column, p.message) for p in r.results if p.status != grading.PASSED]
            assert failed == [], f"the solution fails {failed}"
    assert totals["exercise"] == 0.0 and totals["solution"] == maximum > 0
    assert len({r.results[0].part.exercise for r in results}) == len(list((ROOT / "solutions").glob("*.ipynb")))


def test_bad_arguments_are_reported_with_status_2(tmp_path, capsys):
    assert grading.main([str(tmp_path / "nothing"), str(tmp_path)]) == 2
    assert "no solution notebook" in capsys.readouterr().err
    empty = tmp_path / "solutions"
    empty.mkdir()
    shutil.copy(SOLUTION, empty / SOLUTION.name)
    assert grading.main([str(empty), str(tmp_path / "missing")]) == 2


def test_message_extraction_keeps_only_the_exception_line():
    text = "#x1B[91mNotebook cell execution failed#x1B[0m\nInput:\nassert x == 1, 'secret code'\nTraceback...\n" \
           "#x1B[31mAssertionError#x1B[39m: grad_w does not match autograd\n"
    assert grading._clean_message(text) == "AssertionError: grad_w does not match autograd"
