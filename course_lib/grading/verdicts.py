"""Verdicts: each graded part passed or not, decided in the grader's process from records, never by the kernel.

An exercise's **parts** come from the solution notebook: a check cell with ``nbgrader.grade: true``, its id
and points, its whole source (visible and hidden tests) and the answer cells before it; or a written answer (a
Markdown cell that is both ``grade`` and ``solution``), which is **graded by hand**: until the instructor's points
come back (``course-grade --manual``) it is *to be graded by hand*, neither passed nor failed; an answer left as the
exercise's stub is failed at once. Running the solution
once per batch gives the **reference**: for each part, the evidence records its check cell made (see
`course_lib.grading.evidence`), in order, each with the instructor's message and tolerance.

A submission's part **passes** when the copy of its check cell that follows the student's answer ran to the end
and made, for every key of the reference, exactly one record that agrees with the reference's. Anything else
fails, and the feedback says why in the instructor's words: the message of the first check that did not agree
(the grader adds only what kind of difference it found), or, when the cell stopped at a visible ``assert``, that
assert's message, if it is word for word one of the instructor's visible messages. Text the kernel produced
(an exception's message, a record's content) never reaches the feedback; an exception's name does only when it
is one of Python's built-in exceptions.
"""

from __future__ import annotations

import ast
import builtins
from dataclasses import dataclass, field

from course_lib.exercises import (BEGIN_SOLUTION, TEXT_STUB, graded_parts, hidden_test_texts, remove_hidden_tests,
                                  solution_texts)
from course_lib.grading import evidence
from course_lib.grading.runner import CellOutcome

PASSED, FAILED, NOT_GRADABLE = "passed", "failed", "not gradable"
BY_HAND, GRADED_BY_HAND = "to be graded by hand", "graded by hand"
MAX_ANSWER = 20_000  # characters of a written answer kept for the review
BUILTIN_EXCEPTIONS = frozenset(name for name, value in vars(builtins).items()
                               if isinstance(value, type) and issubclass(value, BaseException))
KINDS = ("value", "raises", "accuracy", "trained")
NOTE_COUNT_CAP = 10  # counts of cells in notes stop here ("more than 10")


@dataclass(frozen=True)
class Part:
    """A graded part of an exercise, as the solution notebook defines it."""

    exercise: str  # the solution notebook's name, e.g. 01_batch_sgd
    part_id: str
    points: float
    test_source: str  # the solution's whole check cell, hidden tests included
    answer_ids: tuple[str, ...]  # ids of the answer cells between the previous check cell and this one
    visible_messages: frozenset[str]  # the literal messages of the visible asserts
    manual: bool = False  # a written answer, graded by hand
    question: str = ""  # for a written answer: the Markdown cell before it (the question)
    model_answer: str = ""  # for a written answer: the solution's answer

    @property
    def column(self) -> str:
        return f"{self.exercise}:{self.part_id}"


def visible_messages(source: str) -> frozenset[str]:
    """The literal messages of ``assert ..., "message"`` and ``raise AssertionError("message")`` outside the
    hidden tests of a check cell."""
    try:
        tree = ast.parse(remove_hidden_tests(source))
    except SyntaxError:
        return frozenset()
    found = set()
    for node in ast.walk(tree):
        message = None
        if isinstance(node, ast.Assert):
            message = node.msg
        elif isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call) and node.exc.args \
                and getattr(node.exc.func, "id", None) == "AssertionError":
            message = node.exc.args[0]
        if isinstance(message, ast.Constant) and isinstance(message.value, str):
            found.add(message.value)
    return frozenset(found)


def exercise_parts(notebook, exercise: str) -> list[Part]:
    """The graded parts of a solution notebook, in order."""
    parts, answers = [], []
    by_index = {p.cell_index: p for p in graded_parts(notebook, exercise)}
    for index, cell in enumerate(notebook.cells):
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if meta.get("solution") and not meta.get("grade") and BEGIN_SOLUTION in cell.source:
            answers.append(meta.get("grade_id"))
        if index in by_index and cell.cell_type == "markdown":
            graded = by_index[index]
            question = notebook.cells[index - 1].source if index and notebook.cells[index - 1].cell_type == "markdown" else ""
            model = "\n".join(solution_texts(cell.source)).strip()
            parts.append(Part(exercise, graded.part_id, graded.points, "", (), frozenset(), True, question, model))
        elif index in by_index:
            graded = by_index[index]
            parts.append(Part(exercise, graded.part_id, graded.points, cell.source, tuple(a for a in answers if a),
                              visible_messages(cell.source)))
            answers = []
    if not parts:
        raise ValueError(f"{exercise} has no graded cell (nbgrader metadata with grade: true)")
    return parts


@dataclass
class PartResult:
    part: Part
    status: str
    message: str = ""
    given: float | None = None  # points given by hand
    answer: str = ""  # a written answer, for the instructor's review (never shown in feedback)

    @property
    def score(self) -> float:
        if self.status == PASSED:
            return self.part.points
        return self.given if self.status == GRADED_BY_HAND and self.given is not None else 0.0

    @property
    def pending(self) -> float:
        """Points still to be graded by hand."""
        return self.part.points if self.status == BY_HAND else 0.0


def cell_text(cell) -> str:
    """A cell's source as text, whatever the file holds: a string, a list of strings (nbformat's split form), or
    nothing; characters that UTF-8 cannot encode (lone surrogates) become U+FFFD."""
    source = cell.get("source") if isinstance(cell, dict) else None
    if isinstance(source, list):
        source = "".join(item for item in source if isinstance(item, str))
    if not isinstance(source, str):
        return ""
    return source.encode("utf-8", "surrogatepass").decode("utf-8", "replace")


def _grade_id_of(cell) -> str | None:
    metadata = cell.get("metadata") if isinstance(cell, dict) else None
    nbgrader = metadata.get("nbgrader") if isinstance(metadata, dict) else None
    grade_id = nbgrader.get("grade_id") if isinstance(nbgrader, dict) else None
    return grade_id if isinstance(grade_id, str) else None


def written_answer(part: Part, cells) -> PartResult:
    """The verdict on a written answer before the instructor reads it: to be graded by hand, or failed when the
    cell is missing or still holds the exercise's stub."""
    found = [c for c in cells if isinstance(c, dict) and c.get("cell_type") == "markdown"
             and _grade_id_of(c) == part.part_id]
    if not found:
        return PartResult(part, NOT_GRADABLE, f"the answer cell '{part.part_id}' is missing (deleted, or its metadata "
                                              "changed)")
    text = cell_text(found[-1]).strip()
    if not text or text == TEXT_STUB:
        return PartResult(part, FAILED, "no answer was written")
    return PartResult(part, BY_HAND, answer=text[:MAX_ANSWER])


def grade_by_hand(result: "PartResult", points: float, comment: str) -> None:
    """Record the instructor's points and comment for a written answer."""
    if not isinstance(points, (int, float)) or not 0 <= points <= result.part.points:
        raise ValueError(f"{result.part.column}: points must be between 0 and {result.part.points:g}, got {points!r}")
    result.status, result.given, result.message = GRADED_BY_HAND, float(points), comment


@dataclass
class ExerciseResult:
    """One student's graded exercise."""

    student: str
    exercise: str
    results: list[PartResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # about cells that are not graded, in the grader's words
    log: str = ""

    @property
    def total(self) -> float:
        return sum(r.score for r in self.results)

    @property
    def maximum(self) -> float:
        return sum(r.part.points for r in self.results)

    @property
    def pending(self) -> float:
        return sum(r.pending for r in self.results)

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)


# ----------------------------------------------------------------------------------------------------------
# The reference: what the solution recorded
# ----------------------------------------------------------------------------------------------------------

def reference_records(part: Part, outcome: CellOutcome | None) -> list[dict]:
    """The records the solution's run made for ``part``, checked; a ValueError says what is wrong with them."""
    where = f"the solution {part.exercise}, part '{part.part_id}'"
    if outcome is None or outcome.status != "ran":
        status = "did not run" if outcome is None else f"ended with {outcome.status}" + (
            f" ({outcome.ename}: {outcome.evalue})" if outcome.ename else "")
        raise ValueError(f"{where}: the check cell {status}")
    records, keys = [], set()
    for record in outcome.records:
        if isinstance(record, dict) and record.get("kind") == "marker":
            continue
        if not isinstance(record, dict) or record.get("kind") not in KINDS or not isinstance(record.get("key"), str) \
                or not isinstance(record.get("message"), str):
            raise ValueError(f"{where}: a malformed evidence record")
        if record["key"] in keys:
            raise ValueError(f"{where}: the key {record['key']!r} is recorded twice; give each check its own key")
        if not record.get("self_check"):
            raise ValueError(f"{where}: the solution fails its own check {record['key']!r} ({record['message']})")
        keys.add(record["key"])
        records.append(record)
    if not records:
        raise ValueError(f"{where} records no evidence: its hidden tests must call expect(...), expect_raises(...) "
                         "or expect_accuracy(...) from course_lib.grading.evidence")
    return records


# ----------------------------------------------------------------------------------------------------------
# Judging a submission's part
# ----------------------------------------------------------------------------------------------------------

def check_record(student: dict, reference: dict) -> str | None:
    """Why the student's record does not satisfy the reference record (None when it does)."""
    kind = reference["kind"]
    got = student.get("value")
    if kind == "value":
        return evidence.disagreement(got, reference["value"], reference.get("rtol"), reference.get("atol"),
                                     bool(reference.get("exact_dtype", True)))
    if kind == "raises":
        raised = got.get("raised") if isinstance(got, dict) else None
        if not isinstance(raised, list) or reference["expected"] not in raised:
            return f"{reference['expected']} was not raised"
        mention = reference.get("mentions")
        if mention is not None and (not isinstance(got.get("text"), str) or mention not in got["text"]):
            return "the error message does not name the value"
        return None
    if kind == "trained":  # the solution's record names the evaluation; the student's gives only the parameters
        from course_lib.grading import heldout

        try:
            accuracy = heldout.accuracy_of(got, reference["evaluate"], reference["options"])
        except Exception as error:  # noqa: BLE001 - whatever the recorded parameters are, only this part fails
            return str(error) if isinstance(error, ValueError) else "the recorded parameters cannot be evaluated"
        if not accuracy >= reference["at_least"]:
            return f"held-out accuracy {accuracy:.3f} measured by the grader, at least {reference['at_least']:g} is required"
        return None
    accuracy = evidence.agreement(got, reference["labels"])
    if accuracy is None:
        return "the predictions do not have the expected shape"
    if accuracy < reference["at_least"]:
        return f"accuracy {accuracy:.3f}, at least {reference['at_least']:g} is required"
    return None


def judge(part: Part, reference: list[dict], outcome: CellOutcome | None, cell_timeout: int) -> PartResult:
    """The verdict on one copy of a part's check cell."""
    if outcome is None:
        return PartResult(part, NOT_GRADABLE, "not run: the kernel died or the time limit stopped the notebook")
    if outcome.status == "timeout":
        return PartResult(part, NOT_GRADABLE, f"the check cell exceeded the time limit of {cell_timeout} s")
    if outcome.status == "not run":
        return PartResult(part, NOT_GRADABLE, f"not run: {outcome.reason or 'the kernel died'}")
    made: dict[str, list[dict]] = {}
    for record in outcome.records:
        if isinstance(record, dict) and isinstance(record.get("key"), str):
            made.setdefault(record["key"], []).append(record)
    failures = []
    for expected in reference:
        copies = made.get(expected["key"], [])
        if not copies:
            failures.append((expected["message"], None))
        elif len(copies) > 1:
            failures.append((expected["message"], "this check was recorded more than once"))
        else:
            reason = check_record(copies[0], expected)
            if reason:
                failures.append((expected["message"], reason))
    stopped = outcome.status == "error"
    if not failures and not stopped:
        return PartResult(part, PASSED)
    if stopped and outcome.ename == "AssertionError" and isinstance(outcome.evalue, str) \
            and outcome.evalue in part.visible_messages:
        return PartResult(part, FAILED, f"a visible check failed: {outcome.evalue}")
    name = outcome.ename if outcome.ename in BUILTIN_EXCEPTIONS else "an exception"
    visible_done = any(isinstance(r, dict) and r.get("key") == evidence.VISIBLE_DONE for r in outcome.records)
    if stopped and not visible_done and "### BEGIN HIDDEN TESTS" in part.test_source:
        return PartResult(part, FAILED, f"a visible check of this cell stopped with {name}: run the cell to see where")
    if not failures:
        return PartResult(part, FAILED, f"the check cell stopped with {name} after its checks")
    message, reason = failures[0]
    if reason is None and stopped:
        return PartResult(part, FAILED, f"the check cell stopped with {name} before this check: {message}")
    more = f"; {len(failures) - 1} more check(s) of this part failed" if len(failures) > 1 else ""
    return PartResult(part, FAILED, f"{message} ({reason or 'this check made no record'}{more})")


def ungraded_notes(outcomes: list[tuple[int, CellOutcome]], cell_timeout: int) -> list[str]:
    """The notes about the code cells that are not graded: for each way a cell can go wrong (an exception, the
    time limit, the kernel dying), the first such cell and how many there were, counted up to `NOTE_COUNT_CAP`.

    They say nothing else: not which exception (a student who chooses the exception of each of thousands of cells
    could otherwise spell out anything their kernel saw, the hidden tests included, in their own feedback). So
    whatever a submission does in ungraded cells, its notes carry a few numbers at most.
    """
    kinds = {"error": "raised an exception",
             "timeout": f"exceeded the time limit of {cell_timeout} s and were interrupted",
             "died": "were cut short while they ran (the kernel died, or the notebook's time limit came)"}
    found: dict[str, list[int]] = {kind: [] for kind in kinds}
    for index, outcome in sorted(outcomes, key=lambda item: item[0]):
        if outcome.status in ("error", "timeout"):
            found[outcome.status].append(index)
        elif outcome.status == "not run" and "while this cell ran" in str(outcome.reason):
            found["died"].append(index)
    notes = []
    for kind, indices in found.items():
        if indices:
            count = str(len(indices)) if len(indices) <= NOTE_COUNT_CAP else f"more than {NOTE_COUNT_CAP}"
            notes.append(f"{count} code cell(s) that are not graded {kinds[kind]}; the first is code cell "
                         f"{indices[0] + 1}")
    return notes


def hidden_lines(parts: list[Part]) -> set[str]:
    """Every non-trivial line of the parts' hidden tests (for tests that check nothing of them leaks)."""
    return {line.strip() for part in parts for block in hidden_test_texts(part.test_source)
            for line in block.splitlines() if len(line.strip()) > 8}
