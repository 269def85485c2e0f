"""Exercise notebooks generated from solution notebooks: one source, two audiences.

``solutions/NN_topic.ipynb`` is written once, with nbgrader's markers and cell metadata:

- an **answer** sits between ``### BEGIN SOLUTION`` and ``### END SOLUTION`` in a cell whose metadata
  says ``"nbgrader": {"solution": true, "grade_id": "<part>-answer", ...}``; a comment ``# Hint: ...`` on the line
  just above ``### BEGIN SOLUTION`` stays in the exercise and becomes the message of the student's error;
- a **graded part** is a test cell with ``"nbgrader": {"grade": true, "grade_id": "<part>",
  "points": P}``: its visible asserts stay for the student; checks between
  ``### BEGIN HIDDEN TESTS`` and ``### END HIDDEN TESTS`` are the instructor's alone;
- a **written answer** is a Markdown cell with ``"nbgrader": {"solution": true, "grade": true, ...}`` whose
  model answer sits between the solution markers: it is graded by hand.

`make_exercise` turns such a notebook into ``exercises/NN_topic.ipynb`` exactly as ``nbgrader
generate_assignment`` releases it, with one difference, the student's stub::

    # Hint: <hint>
    # YOUR CODE HERE
    raise NotImplementedError("<hint>")

at the marker's indentation (a Markdown answer becomes "YOUR ANSWER HERE"). Every hidden test is removed,
outputs are cleared, and the metadata nbgrader adds on release is added too: ``nbgrader.cell_type``, the
``checksum`` that lets ``nbgrader validate`` notice an edited check cell (taken, as nbgrader does, after the hidden
tests are removed), ``deletable: false`` on answer and check cells and ``editable: false`` on check cells. ``course-make-exercises`` regenerates the whole folder;
``--check`` only reports whether the committed exercises are up to date.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat

BEGIN_SOLUTION = "### BEGIN SOLUTION"
END_SOLUTION = "### END SOLUTION"
BEGIN_HIDDEN = "### BEGIN HIDDEN TESTS"
END_HIDDEN = "### END HIDDEN TESTS"
CODE_STUB = ["# YOUR CODE HERE", "raise NotImplementedError({hint!r})"]
TEXT_STUB = "YOUR ANSWER HERE"
DEFAULT_HINT = "replace this line with your answer"
HINT_PREFIX = "# Hint:"

COURSE_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Region:
    """Lines ``begin``..``end`` (the two marker lines included) of a cell's source."""

    begin: int
    end: int
    indent: str


def find_regions(source: str, begin_marker: str, end_marker: str, where: str = "cell") -> list[Region]:
    """The marked regions of ``source``; unbalanced or nested markers are an error naming ``where``."""
    regions, opened = [], None
    for number, line in enumerate(source.splitlines()):
        text = line.strip()
        if text == begin_marker:
            if opened is not None:
                raise ValueError(f"{where}: '{begin_marker}' on line {number + 1} inside another region")
            opened = (number, line[: len(line) - len(line.lstrip())])
        elif text == end_marker:
            if opened is None:
                raise ValueError(f"{where}: '{end_marker}' on line {number + 1} without a '{begin_marker}'")
            regions.append(Region(opened[0], number, opened[1]))
            opened = None
    if opened is not None:
        raise ValueError(f"{where}: '{begin_marker}' on line {opened[0] + 1} is never closed")
    return regions


def _replace_regions(source: str, regions: list[Region], replacement: list[str] | None) -> str:
    if not regions:
        return source
    lines = source.splitlines()
    for region in reversed(regions):
        new = [region.indent + text for text in replacement] if replacement is not None else []
        lines[region.begin: region.end + 1] = new
    return "\n".join(lines)


def region_hint(lines: list[str], region: Region) -> str:
    """The text of the ``# Hint:`` comment just above a solution region, or `DEFAULT_HINT`."""
    above = lines[region.begin - 1].strip() if region.begin > 0 else ""
    return above[len(HINT_PREFIX):].strip() if above.startswith(HINT_PREFIX) else DEFAULT_HINT


def clear_solutions(source: str, markdown: bool = False, where: str = "cell") -> str:
    """``source`` with every solution region replaced by the student's stub, whose error names the region's hint."""
    regions = find_regions(source, BEGIN_SOLUTION, END_SOLUTION, where)
    if markdown or not regions:
        return _replace_regions(source, regions, [TEXT_STUB])
    lines = source.splitlines()
    for region in reversed(regions):
        stub = [CODE_STUB[0], CODE_STUB[1].format(hint=region_hint(lines, region))]
        lines[region.begin: region.end + 1] = [region.indent + text for text in stub]
    return "\n".join(lines)


def first_hint(source: str) -> str:
    """The hint of the first solution region of a cell (the message its stub raises)."""
    regions = find_regions(source, BEGIN_SOLUTION, END_SOLUTION)
    return region_hint(source.splitlines(), regions[0]) if regions else DEFAULT_HINT


def remove_hidden_tests(source: str, where: str = "cell") -> str:
    """``source`` without its hidden-test regions (markers included)."""
    return _replace_regions(source, find_regions(source, BEGIN_HIDDEN, END_HIDDEN, where), None)


def _region_texts(source: str, begin_marker: str, end_marker: str, where: str) -> list[str]:
    lines = source.splitlines()
    return ["\n".join(lines[r.begin + 1: r.end]) for r in find_regions(source, begin_marker, end_marker, where)]


def solution_texts(source: str, where: str = "cell") -> list[str]:
    """The answer code of each solution region (markers excluded), to check that none leaks."""
    return _region_texts(source, BEGIN_SOLUTION, END_SOLUTION, where)


def hidden_test_texts(source: str, where: str = "cell") -> list[str]:
    """The code of each hidden-test region (markers excluded)."""
    return _region_texts(source, BEGIN_HIDDEN, END_HIDDEN, where)


@dataclass(frozen=True)
class GradedPart:
    """A test cell worth points: its id, its points and its position among the notebook's cells."""

    part_id: str
    points: float
    cell_index: int


def graded_parts(notebook: nbformat.NotebookNode, where: str = "notebook") -> list[GradedPart]:
    """The graded parts of a notebook, in order; duplicate ids or missing points are an error."""
    parts, seen = [], set()
    for index, cell in enumerate(notebook.cells):
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if not meta.get("grade"):
            continue
        part_id, points = meta.get("grade_id"), meta.get("points")
        if not part_id or part_id in seen:
            raise ValueError(f"{where} cell {index}: a graded cell needs a unique grade_id, got {part_id!r}")
        if not isinstance(points, (int, float)) or points <= 0:
            raise ValueError(f"{where} cell {index} ({part_id}): points must be a positive number, got {points!r}")
        seen.add(part_id)
        parts.append(GradedPart(part_id, float(points), index))
    return parts


def nbgrader_checksum(cell: nbformat.NotebookNode) -> str:
    """nbgrader's checksum of a cell (``nbgrader.utils.compute_checksum``, 0.9): MD5 of the source, the cell type,
    whether it is a grade, solution and locked cell, its id, and its points if it is graded."""
    meta = cell.metadata["nbgrader"]
    grade, solution = bool(meta.get("grade", False)), bool(meta.get("solution", False))
    locked = False if solution else True if grade else bool(meta.get("locked", False))
    digest = hashlib.md5()
    for text in (cell.source, cell.cell_type, str(grade), str(solution), str(locked), meta["grade_id"]):
        digest.update(text.encode("utf-8"))
    if grade:
        digest.update(str(float(meta["points"])).encode("utf-8"))
    return digest.hexdigest()


def make_exercise(solution: nbformat.NotebookNode, where: str = "notebook") -> nbformat.NotebookNode:
    """The student's version of a solution notebook (the input is not modified): what ``nbgrader
    generate_assignment`` releases, with the hints kept (see the module's docstring)."""
    graded_parts(solution, where)  # validates ids and points
    exercise = copy.deepcopy(solution)
    for index, cell in enumerate(exercise.cells):
        here = f"{where} cell {index}"
        cell.source = remove_hidden_tests(clear_solutions(cell.source, cell.cell_type == "markdown", here), here)
        meta = cell.get("metadata", {}).get("nbgrader")
        is_solution, is_grade = bool(meta and meta.get("solution")), bool(meta and meta.get("grade"))
        is_locked = not is_solution and (is_grade or bool(meta and meta.get("locked")))
        if is_solution or is_grade or is_locked:  # nbgrader's LockCells and ComputeChecksums
            cell.metadata["deletable"] = False
            if is_locked:
                cell.metadata["editable"] = False
            meta["checksum"] = nbgrader_checksum(cell)
            meta["cell_type"] = cell.cell_type
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    return exercise


def exercise_text(solution_path: Path) -> str:
    """The exact text of the exercise notebook generated from ``solution_path``."""
    solution = nbformat.read(solution_path, as_version=4)
    return nbformat.writes(make_exercise(solution, solution_path.name)) + "\n"


def write_exercises(solutions: Path, exercises: Path, check: bool = False) -> list[Path]:
    """Regenerate ``exercises/`` from ``solutions/``; return the exercise files that were (or, with
    ``check``, would be) written or removed."""
    if not solutions.is_dir():
        raise ValueError(f"solutions folder {solutions} does not exist")
    if not check:
        exercises.mkdir(parents=True, exist_ok=True)
    changed = []
    expected = set()
    for solution_path in sorted(solutions.glob("*.ipynb")):
        target = exercises / solution_path.name
        expected.add(target.name)
        text = exercise_text(solution_path)
        if not target.exists() or target.read_text(encoding="utf-8") != text:
            changed.append(target)
            if not check:
                target.write_text(text, encoding="utf-8")
    for stale in sorted(exercises.glob("*.ipynb")) if exercises.is_dir() else []:
        if stale.name not in expected:
            changed.append(stale)
            if not check:
                stale.unlink()
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="course-make-exercises",
        description="Regenerate the exercise notebooks from the solution notebooks.",
    )
    parser.add_argument("--solutions", type=Path, default=COURSE_ROOT / "solutions", help="folder of solution notebooks")
    parser.add_argument("--exercises", type=Path, default=COURSE_ROOT / "exercises", help="folder to write exercises into")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if the exercises are out of date")
    args = parser.parse_args(argv)
    try:
        changed = write_exercises(args.solutions, args.exercises, check=args.check)
    except ValueError as error:
        print(f"course-make-exercises: {error}", file=sys.stderr)
        return 2
    for path in changed:
        print(f"{'out of date' if args.check else 'wrote'}: {path}")
    if args.check and changed:
        print("Run course-make-exercises to regenerate them.", file=sys.stderr)
        return 1
    if not changed:
        print("exercises are up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
