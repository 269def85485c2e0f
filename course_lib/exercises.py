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
import ast
import copy
import hashlib
import re
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
    problems = notebook_problems(solution, solution_path.name, BUILD_RULES)
    if problems:
        raise ValueError("hidden tests that leave an answer in the kernel:\n  " + "\n  ".join(problems))
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


# ----------------------------------------------------------------------------------------------------------
# Hidden tests that leave nothing in the kernel to answer them
# ----------------------------------------------------------------------------------------------------------

MEASURED_NUMBER = re.compile(r"(?<![\w.=])\d*\.\d+|\d\s*%")  # 0.54, .5, 89 %, 80% (not lr=0.05, not 1e-6)
QUOTES_THE_SOLUTION = re.compile(r"\bsolution\b", re.IGNORECASE)
BUILD_RULES = "abc"  # the rules `exercise_text` enforces on every solution (see `hidden_test_problems`)
PUBLIC_LABELS = re.compile(r"heldout|held_out|mnist|test_y", re.IGNORECASE)


def _statements_in(tree: ast.Module) -> list[ast.stmt]:
    """Every statement that runs at module level: the top-level ones and those nested in if/for/while/with/try
    blocks (not in function or class bodies, whose names are local)."""
    found, stack = [], list(tree.body)
    while stack:
        statement = stack.pop(0)
        found.append(statement)
        if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        for block in ("body", "orelse", "finalbody"):
            stack.extend(getattr(statement, block, []) or [])
        for handler in getattr(statement, "handlers", []) or []:
            stack.extend(handler.body)
    return found


def _bound_values(statement: ast.stmt) -> list[ast.expr]:
    """The expressions whose values a module-level statement binds to global names."""
    if isinstance(statement, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
        return [statement.value] if statement.value is not None else []
    if isinstance(statement, (ast.For, ast.AsyncFor)):
        return [statement.iter]
    if isinstance(statement, (ast.With, ast.AsyncWith)):
        return [item.context_expr for item in statement.items if item.optional_vars is not None]
    return [node.value for node in ast.walk(statement) if isinstance(node, ast.NamedExpr)]


def _call_name(node: ast.Call) -> str | None:
    return node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", None)


def _literal_text(node: ast.expr) -> str:
    """The literal characters of a message: a string, or the constant parts of an f-string (a formatted value
    is an input the test describes, not a number written into the message)."""
    parts = [node] if isinstance(node, ast.Constant) else list(getattr(node, "values", []))
    if isinstance(node, ast.BinOp):  # "..." + "..."
        return _literal_text(node.left) + _literal_text(node.right)
    return "".join(p.value for p in parts if isinstance(p, ast.Constant) and isinstance(p.value, str))


def hidden_test_problems(source: str, where: str, rules: str = "abc") -> list[str]:
    """Why the hidden tests of one check cell could leave an answer in the student's kernel (empty when none).

    The student's code runs in the same kernel as the hidden tests, can read every global they bind and every
    message they pass, and holds the course's public data. Three rules, on the hidden-test lines of the cell:

    (a) **no function bound as a global**: no ``def`` or ``class`` at module level (also inside module-level
        ``if``/``for``/``while``/``with``/``try`` blocks), and no ``lambda`` anywhere in a value bound to a global
        (assignments, ``for`` iterables, ``with ... as``, ``:=``). A helper that computes an expected value
        belongs inside the ``reference=`` argument (a comprehension, an immediately-called lambda) or in
        ``course_lib``; a lambda passed as an argument of a call that binds nothing (``expect_raises(...,
        lambda: f(bad), ...)``) is fine, and so are imports and data globals (``generator = ...``, ``x = ...``);
    (b) **no measured number in a message**: the literal text of the ``message=`` of an ``expect*`` call may not
        contain a number with a decimal point or a percentage (``0.54``, ``89 %``) unless it directly follows
        ``=`` (``lr=0.05`` describes an input), nor the word "solution" (as in "the solution measures");
        tolerances (``to 1e-6``) and whole-number inputs (``B=17``) pass;
    (c) **no accuracy on public labels**: ``expect_accuracy`` whose ``labels=`` expression mentions ``heldout``,
        ``held_out``, ``mnist`` or ``test_y`` is refused: the kernel holds those labels, so use
        ``expect_trained``, which the grader evaluates in its own process.

    ``rules`` picks which of them to apply. Each problem names ``where``, the line of the cell and the offending code.
    """
    hidden = set()
    for region in find_regions(source, BEGIN_HIDDEN, END_HIDDEN, where):
        hidden.update(range(region.begin + 2, region.end + 1))  # 1-based numbers of the lines between the markers
    if not hidden:
        return []
    try:
        tree = ast.parse(source)
    except SyntaxError as error:
        return [f"{where}, line {error.lineno}: the check cell does not parse"]
    lines = source.splitlines()
    problems = []

    def refuse(node: ast.AST, why: str) -> None:
        problems.append(f"{where}, line {node.lineno}: {why}: {lines[node.lineno - 1].strip()}")

    for statement in _statements_in(tree):
        if statement.lineno not in hidden or "a" not in rules:
            continue
        if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            refuse(statement, f"a hidden test binds '{statement.name}' as a global (rule a: put the computation "
                              "inside reference= or in course_lib)")
        elif any(isinstance(node, ast.Lambda) for value in _bound_values(statement) for node in ast.walk(value)):
            refuse(statement, "a hidden test binds a value holding a lambda to a global (rule a: put the "
                              "computation inside reference= or in course_lib)")
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or node.lineno not in hidden or not (_call_name(node) or "").startswith("expect"):
            continue
        for keyword in node.keywords:
            if keyword.arg == "message" and "b" in rules:
                text = _literal_text(keyword.value)
                if MEASURED_NUMBER.search(text) or QUOTES_THE_SOLUTION.search(text):
                    refuse(keyword.value, "the message quotes a measured value or the solution's result (rule b: say what "
                                 "is checked and how precisely, not the numbers that pass)")
            if keyword.arg == "labels" and "c" in rules and _call_name(node) == "expect_accuracy" \
                    and PUBLIC_LABELS.search(ast.unparse(keyword.value)):
                refuse(node, "expect_accuracy on held-out labels the kernel holds (rule c: record the model with "
                             "expect_trained, which the grader evaluates in its own process)")
    return problems


def notebook_problems(solution: nbformat.NotebookNode, where: str = "notebook", rules: str = "abc") -> list[str]:
    """`hidden_test_problems` of every graded check cell of a solution notebook, each named by its part id."""
    problems = []
    for index, cell in enumerate(solution.cells):
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if cell.cell_type == "code" and meta.get("grade"):
            problems += hidden_test_problems(cell.source, f"{where}, part '{meta.get('grade_id')}' (cell {index})", rules)
    return problems
