"""Every exercise asks the student to think, says how it is graded, and has a slip for every part.

What each solution notebook must show, read from the notebook itself (no grading needed):

- 6 or 7 parts, each headed ``## Part N — `id` (P points, KIND)`` in the order of the graded cells, with the points
  of the graded cell and a kind from `KINDS`; the last part is the written answer, graded by hand;
- at least two automatic parts the student must *derive* or *design* (what the text does not hand over) and at least
  one *predict, then measure* experiment;
- the overview table in the first cell gives every part with the kind of its heading;
- the first cell says at which scale the grader runs the notebook and, where a number depends on the scale, how to run
  it at that scale;
- for every automatic part, a wrong answer in `answer_fixtures` that is the solution with only that part wrong (so
  `test_exercise_fairness.py` proves, at one and two threads, that a slip there costs that part alone).
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

from answer_fixtures import EXERCISES, module
from course_lib import exercises

ROOT = Path(__file__).resolve().parent.parent
KINDS = {"implement", "derive", "design", "verify", "experiment", "predict, then measure", "result",
         "explain; graded by hand"}
THINKING = {"derive", "design"}
HEADING = re.compile(r"^## Part (\d+) — `([a-z0-9-]+)` \((\d+) points?, ([^)]+)\)$")


def headings(notebook: nbformat.NotebookNode) -> list[tuple[int, str, float, str]]:
    """(number, part id, points, kind) of every part heading, in order."""
    found = []
    for cell in notebook.cells:
        first_line = cell.source.splitlines()[0] if cell.cell_type == "markdown" and cell.source else ""
        if first_line.startswith("## Part"):
            match = HEADING.match(first_line)
            assert match, f"a part heading must read '## Part N — `id` (P points, KIND)': {first_line!r}"
            number, part_id, points, kind = match.groups()
            found.append((int(number), part_id, float(points), kind))
    return found


@pytest.fixture(params=EXERCISES)
def exercise(request):
    return request.param, nbformat.read(ROOT / "solutions" / f"{request.param}.ipynb", as_version=4)


def test_every_part_is_headed_with_its_points_and_kind(exercise):
    name, notebook = exercise
    parts = headings(notebook)
    graded = exercises.graded_parts(notebook, name)
    assert [(part_id, points) for _, part_id, points, _ in parts] == [(p.part_id, p.points) for p in graded]
    assert [number for number, *_ in parts] == list(range(1, len(parts) + 1))
    assert 6 <= len(parts) <= 7 and all(points <= 2 for _, _, points, _ in parts)
    assert {kind for *_, kind in parts} <= KINDS, [kind for *_, kind in parts if kind not in KINDS]
    assert parts[-1][3] == "explain; graded by hand" and all(kind != parts[-1][3] for *_, kind in parts[:-1])


def test_every_exercise_asks_to_derive_or_design_twice_and_to_predict_once(exercise):
    name, notebook = exercise
    kinds = [kind for *_, kind in headings(notebook)]
    assert sum(kind in THINKING for kind in kinds) >= 2, f"{name}: {kinds}"
    assert "predict, then measure" in kinds, f"{name}: {kinds}"


def test_the_overview_table_lists_every_part_with_its_kind(exercise):
    name, notebook = exercise
    table = {}
    for line in notebook.cells[0].source.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0].startswith("`"):
            table[cells[0].strip("`")] = cells[1].split(";")[0]
    expected = {part_id: kind.split(";")[0] for _, part_id, _, kind in headings(notebook)}
    assert table == expected


def test_the_first_cell_says_at_which_scale_the_grader_runs(exercise):
    """And, where a number depends on the scale, the line that runs the notebook as the grader does."""
    name, notebook = exercise
    text = notebook.cells[0].source
    assert "COURSE_SCALE=quick" in text, name
    assert "%env COURSE_SCALE=quick" in text or "depends on the scale" in text or "depend on the scale" in text, name


def test_for_every_automatic_part_a_wrong_answer_costs_that_part_alone(exercise):
    name, notebook = exercise
    automatic = {part_id for _, part_id, _, kind in headings(notebook) if kind != "explain; graded by hand"}
    alone = {next(iter(parts)) for parts, _ in module(name).WRONG.values() if len(parts) == 1}
    assert automatic - alone == set(), f"{name}: no wrong answer loses only {sorted(automatic - alone)}"
    assert all(set(parts) <= automatic for parts, _ in module(name).WRONG.values())
