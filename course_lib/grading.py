"""Grading students' exercise notebooks through nbval, with the instructor's hidden tests.

    course-grade SOLUTIONS SUBMISSIONS [-o OUTPUT] [-j WORKERS] [--cell-timeout S] [--timeout S]

SOLUTIONS is ``solutions/`` or one solution notebook. SUBMISSIONS is a folder of ``<student>.ipynb`` (one
exercise: SOLUTIONS must then be a single notebook, or hold exactly one) or of ``<student>/<NN_topic>.ipynb``.
For each submission:

1. the file is read, never written: it is parsed (old nbformat versions are upgraded) into a private work
   directory outside the course, one per submission;
2. every graded cell is found by its part id (``nbgrader.grade_id`` in the cell's metadata, not its position)
   and its source is replaced by the solution's test cell, visible and hidden tests together, so a student
   can neither weaken a visible check nor see a hidden one; the student's outputs are dropped;
3. pytest runs the notebook through nbval, in this environment's kernel, with a per-cell time limit, a time
   limit for the whole notebook and quick mode on;
4. each graded part is *passed* (its cell ran without error), *failed* (with the exception's message, which
   is the instructor's assertion message, never the test's code), or *not gradable* (with the reason: the cell
   is missing, the notebook is not readable, an earlier cell hit the time limit, the kernel died, ...).

Outputs in OUTPUT (default ``grading/``): ``grades.csv`` (one row per student, one column per part, a total
and a maximum), ``feedback/<student>.md``, and ``logs/<student>.log`` (pytest's output, capped) for the
instructor. A broken submission costs its own points and never stops the batch; the exit status is non-zero
only when the grader itself cannot run (bad arguments, unreadable solutions).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import csv
import os
import re
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from course_lib.exercises import graded_parts, hidden_test_texts

PASSED, FAILED, NOT_GRADABLE = "passed", "failed", "not gradable"
LOG_LIMIT = 200_000  # characters of pytest output kept per submission
_ANSI = re.compile(r"(?:\x1b|#x1B)\[[0-9;]*[A-Za-z]")  # junit writes ESC as "#x1B"
_EXCEPTION_LINE = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt|Warning)): ?(.*)$")


@dataclass(frozen=True)
class Part:
    exercise: str  # the solution notebook's name, e.g. 01_batch_sgd
    part_id: str
    points: float
    test_source: str  # the solution's whole test cell, hidden tests included

    @property
    def column(self) -> str:
        return f"{self.exercise}:{self.part_id}"


def hidden_lines(parts: list[Part]) -> set[str]:
    """Every non-trivial line of the parts' hidden tests: none of them may appear in feedback."""
    return {line.strip() for part in parts for block in hidden_test_texts(part.test_source)
            for line in block.splitlines() if len(line.strip()) > 8}


@dataclass
class PartResult:
    part: Part
    status: str
    message: str = ""

    @property
    def score(self) -> float:
        return self.part.points if self.status == PASSED else 0.0


@dataclass
class StudentResult:
    student: str
    results: list[PartResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # problems in cells that are not graded, e.g. a time limit
    log: str = ""

    @property
    def total(self) -> float:
        return sum(r.score for r in self.results)


def load_solution_parts(solution: Path) -> list[Part]:
    """The graded parts of a solution notebook, in order, each with its full test cell."""
    notebook = nbformat.read(solution, as_version=4)
    parts = graded_parts(notebook, solution.name)
    if not parts:
        raise ValueError(f"{solution} has no graded cell (nbgrader metadata with grade: true)")
    return [Part(solution.stem, p.part_id, p.points, notebook.cells[p.cell_index].source) for p in parts]


def _clean_message(text: str) -> str:
    """The last 'SomeError: message' line of a traceback, without colour codes or source lines."""
    lines = [_ANSI.sub("", line).strip() for line in text.splitlines()]
    for line in reversed(lines):
        match = _EXCEPTION_LINE.match(line)
        if match:
            name, message = match.groups()
            return f"{name}: {message}".strip().rstrip(":")[:500]
    if any("Timeout" in line for line in lines):
        return next(line for line in lines if "Timeout" in line)[:500]
    return "the cell failed"


def prepare(submission: bytes, parts: list[Part], workdir: Path) -> tuple[Path | None, dict[str, int], dict[str, str]]:
    """Write the graded copy of the ``submission`` (the file's bytes) into ``workdir``.

    Returns the copy's path (None if the submission is not a readable notebook), the code-cell index of each
    part's test cell (nbval numbers code cells from 0), and the reasons for parts that cannot be graded.
    """
    try:
        text = submission.decode("utf-8")
        notebook = nbformat.reads(text, as_version=4)
    except Exception as error:
        reason = f"not a readable notebook ({error.__class__.__name__})"
        return None, {}, {p.part_id: reason for p in parts}
    by_id = {p.part_id: p for p in parts}
    cell_of_part, missing, code_index = {}, {}, 0
    cells = []
    for cell in notebook.cells:
        if cell.get("cell_type") == "code":
            part_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
            if part_id in by_id and part_id not in cell_of_part:
                cell.source = by_id[part_id].test_source  # the instructor's checks, never the student's
                cell_of_part[part_id] = code_index
            cell.outputs, cell.execution_count = [], None
            code_index += 1
        cells.append(cell)
    notebook.cells = cells
    for part in parts:
        if part.part_id not in cell_of_part:
            missing[part.part_id] = f"the graded cell '{part.part_id}' is missing (deleted, or its metadata changed)"
    path = workdir / "submission.ipynb"
    nbformat.write(notebook, path)
    return path, cell_of_part, missing


def run_nbval(notebook: Path, cell_timeout: int, timeout: int) -> tuple[dict[int, tuple[str, str]] | None, str]:
    """Execute ``notebook`` with pytest + nbval in its own folder; return {code cell index: (status, message)}
    (None when pytest produced no report) and pytest's output, capped."""
    workdir = notebook.parent
    (workdir / "pytest.ini").write_text("[pytest]\n")  # keeps the course's own pytest settings away
    report = workdir / "report.xml"
    environment = dict(os.environ, COURSE_QUICK=os.environ.get("COURSE_QUICK", "1"), MPLBACKEND="Agg",
                       HOME=str(workdir), PYTHONDONTWRITEBYTECODE="1")
    command = [sys.executable, "-m", "pytest", notebook.name, "--nbval", "--nbval-current-env",
               f"--nbval-cell-timeout={cell_timeout}", "--nbval-kernel-startup-timeout=120", "-p", "no:cacheprovider",
               f"--junitxml={report.name}", "-q", "-c", "pytest.ini", "--rootdir", str(workdir)]
    try:
        done = subprocess.run(command, cwd=workdir, env=environment, capture_output=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
        output = (done.stdout + done.stderr).decode("utf-8", "replace")
    except subprocess.TimeoutExpired as expired:
        output = ((expired.stdout or b"") + (expired.stderr or b"")).decode("utf-8", "replace")
        output += f"\n[grader] the notebook exceeded the time limit of {timeout} s and was stopped\n"
    output = output[:LOG_LIMIT] + ("\n[grader] output truncated\n" if len(output) > LOG_LIMIT else "")
    if not report.exists():
        return None, output
    results = {}
    for case in ElementTree.parse(report).getroot().iter("testcase"):
        match = re.search(r"Cell (\d+)", case.get("name", ""))
        if not match:
            continue
        problem = case.find("failure") if case.find("failure") is not None else case.find("error")
        if problem is not None:
            results[int(match.group(1))] = (FAILED, _clean_message((problem.get("message") or "") + "\n" + (problem.text or "")))
        elif case.find("skipped") is not None:
            results[int(match.group(1))] = (NOT_GRADABLE, "not run: an earlier cell exceeded the time limit")
        else:
            results[int(match.group(1))] = (PASSED, "")
    return results, output


def grade_submission(student: str, submission: bytes, parts: list[Part], cell_timeout: int = 120,
                     timeout: int = 900) -> StudentResult:
    """Grade one student's notebook of one exercise, given as the file's bytes (read once, before any
    student code runs, so no submission can change what another one is graded on)."""
    result = StudentResult(student)
    workdir = Path(tempfile.mkdtemp(prefix="course-grade-"))
    try:
        notebook, cell_of_part, missing = prepare(submission, parts, workdir)
        outcomes, result.log = (None, "") if notebook is None else run_nbval(notebook, cell_timeout, timeout)
        for part in parts:
            if part.part_id in missing:
                result.results.append(PartResult(part, NOT_GRADABLE, missing[part.part_id]))
            elif outcomes is None:
                result.results.append(PartResult(part, NOT_GRADABLE, "the notebook could not be executed (time limit or crash)"))
            else:
                status, message = outcomes.get(cell_of_part[part.part_id],
                                               (NOT_GRADABLE, "not run: the kernel died or the time limit stopped the notebook"))
                if status == FAILED and "Timeout" in message:
                    status, message = NOT_GRADABLE, f"time limit of {cell_timeout} s per cell exceeded"
                if any(line in message for line in hidden_lines([part])):
                    message = "the error message was withheld because it quotes the hidden tests"
                result.results.append(PartResult(part, status, message))
            graded_cells = set(cell_of_part.values())
            for index, (status, message) in sorted((outcomes or {}).items()):
                if status == FAILED and index not in graded_cells:
                    if "Timeout" in message:
                        message = f"exceeded the time limit of {cell_timeout} s and was interrupted"
                    elif any(line in message for line in hidden_lines(parts)):
                        message = "failed (its message was withheld because it quotes the hidden tests)"
                    result.notes.append(f"code cell {index + 1} (not graded): {message}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return result


def find_submissions(submissions: Path, exercises: dict[str, list[Part]]) -> list[tuple[str, Path, list[Part]]]:
    """(student, notebook, parts) for every submission; the layout decides how files map to exercises."""
    jobs = []
    for entry in sorted(submissions.iterdir()):
        if entry.is_dir():
            for notebook in sorted(entry.glob("*.ipynb")):
                if notebook.stem in exercises:
                    jobs.append((entry.name, notebook, exercises[notebook.stem]))
        elif entry.suffix == ".ipynb":
            if len(exercises) != 1:
                raise ValueError(f"{entry.name}: with several exercises, submissions must be <student>/<NN_topic>.ipynb")
            jobs.append((entry.stem, entry, next(iter(exercises.values()))))
    return jobs


def write_outputs(results: list[StudentResult], all_parts: list[Part], output: Path) -> None:
    (output / "feedback").mkdir(parents=True, exist_ok=True)
    (output / "logs").mkdir(parents=True, exist_ok=True)
    maximum = sum(p.points for p in all_parts)
    students = sorted({r.student for r in results})
    merged = {s: [part_result for r in results if r.student == s for part_result in r.results] for s in students}
    with open(output / "grades.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["student", *[p.column for p in all_parts], "total", "maximum"])
        for student in students:
            scores = {r.part.column: r.score for r in merged[student]}
            writer.writerow([student, *[f"{scores.get(p.column, 0.0):g}" for p in all_parts],
                             f"{sum(scores.values()):g}", f"{maximum:g}"])
    for student in students:
        lines = [f"# Feedback for {student}", ""]
        notes = [note for r in results if r.student == student for note in r.notes]
        if notes:
            lines += ["Problems in cells that are not graded:", *[f"- {note}" for note in notes], ""]
        total = 0.0
        for r in merged[student]:
            total += r.score
            mark = {PASSED: "passed", FAILED: "failed", NOT_GRADABLE: "not gradable"}[r.status]
            line = f"- **{r.part.column}** — {mark}, {r.score:g} / {r.part.points:g} points"
            lines.append(line + (f": {r.message}" if r.message else ""))
        lines += ["", f"Total: {total:g} / {sum(r.part.points for r in merged[student]):g}", ""]
        (output / "feedback" / f"{student}.md").write_text("\n".join(lines), encoding="utf-8")
    for r in results:
        log = output / "logs" / f"{r.student}.log"
        with open(log, "a", encoding="utf-8") as handle:
            handle.write(r.log)


def grade(solutions: Path, submissions: Path, output: Path, workers: int = 2, cell_timeout: int = 120,
          timeout: int = 900) -> list[StudentResult]:
    """Grade every submission; write grades.csv, feedback and logs into ``output``; return the results."""
    solution_files = sorted(solutions.glob("*.ipynb")) if solutions.is_dir() else [solutions] if solutions.is_file() else []
    if not solution_files:
        raise ValueError(f"no solution notebook in {solutions}")
    try:
        exercises = {path.stem: load_solution_parts(path) for path in solution_files}
    except (OSError, nbformat.reader.NotJSONError, nbformat.ValidationError) as error:
        raise ValueError(f"cannot read the solutions: {error}") from None
    if not submissions.is_dir():
        raise ValueError(f"submissions folder {submissions} does not exist")
    jobs = find_submissions(submissions, exercises)
    # Student code runs with this user's rights. Whatever it writes, the submissions and the solutions are
    # restored byte for byte afterwards (and the tampering is logged): grading never loses anyone's work.
    protected = {path: path.read_bytes() for path in [*submissions.rglob("*"), *solution_files] if path.is_file()}
    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            results = list(pool.map(lambda job: grade_submission(job[0], protected[job[1]], job[2], cell_timeout, timeout), jobs))
    finally:
        tampered = restore(protected)
    if tampered:
        print("course-grade: restored files that a submission modified: " + ", ".join(str(p) for p in tampered), file=sys.stderr)
    all_parts = [p for parts in exercises.values() for p in parts]
    write_outputs(results, all_parts, output)
    return results


def restore(snapshot: dict[Path, bytes]) -> list[Path]:
    """Rewrite every file of ``snapshot`` whose bytes changed or that disappeared; return those files."""
    changed = []
    for path, content in snapshot.items():
        try:
            same = path.read_bytes() == content
        except OSError:
            same = False
        if not same:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
            changed.append(path)
    return changed


def summary(results: list[StudentResult]) -> str:
    students = sorted({r.student for r in results})
    if not students:
        return "no submission found"
    totals = {s: sum(r.total for r in results if r.student == s) for s in students}
    failures: dict[str, int] = {}
    for r in results:
        for part_result in r.results:
            if part_result.status != PASSED:
                failures[part_result.part.column] = failures.get(part_result.part.column, 0) + 1
    worst = sorted(failures.items(), key=lambda item: -item[1])[:5]
    lines = [f"graded {len(students)} student(s); mean score {sum(totals.values()) / len(students):.2f}"]
    if worst:
        lines.append("parts most often not passed: " + ", ".join(f"{name} ({count})" for name, count in worst))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="course-grade", description="Grade exercise notebooks through nbval.")
    parser.add_argument("solutions", type=Path, help="solutions/ or one solution notebook")
    parser.add_argument("submissions", type=Path, help="a folder of <student>.ipynb or <student>/<NN_topic>.ipynb")
    parser.add_argument("-o", "--output", type=Path, default=Path("grading"), help="where grades.csv and feedback/ go")
    parser.add_argument("-j", "--workers", type=int, default=2, help="submissions graded in parallel")
    parser.add_argument("--cell-timeout", type=int, default=120, help="seconds allowed per cell")
    parser.add_argument("--timeout", type=int, default=900, help="seconds allowed per submission")
    args = parser.parse_args(argv)
    try:
        results = grade(args.solutions, args.submissions, args.output, args.workers, args.cell_timeout, args.timeout)
    except ValueError as error:
        print(f"course-grade: {error}", file=sys.stderr)
        return 2
    print(summary(results))
    print(f"grades: {args.output / 'grades.csv'}; feedback: {args.output / 'feedback'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
