"""The verdicts on their own: the parts a solution notebook defines, the solution's reference records, each kind of
check, the verdict and the feedback text of a part, written answers and the notes on ungraded cells. Everything is
built in memory (no kernel, no sandbox): these are the rules a student's score and feedback come from."""

from __future__ import annotations

import nbformat
import pytest
import torch

from course_lib.grading import evidence
from course_lib.grading.runner import CellOutcome
from course_lib.grading.verdicts import (BY_HAND, FAILED, GRADED_BY_HAND, NOT_GRADABLE, PASSED, ExerciseResult, Part,
                                         PartResult, check_record, exercise_parts, grade_by_hand, hidden_lines, judge,
                                         reference_records, ungraded_notes, visible_messages, written_answer)

HIDDEN = "### BEGIN HIDDEN TESTS\nexpect('a', f(2), reference=g(2), message='m')\n### END HIDDEN TESTS"
PART = Part("01_x", "p", 2.0, f'assert ok, "visible message"\n{HIDDEN}', ("p-answer",), frozenset({"visible message"}))


def value_record(key, value, **more):
    return {"key": key, "kind": "value", "value": evidence.encode(value), "message": f"message of {key}",
            "rtol": None, "atol": None, "exact_dtype": True, "self_check": True, **more}


def raises_record(key, expected="ValueError", mentions="7"):
    return {"key": key, "kind": "raises", "value": {}, "expected": expected, "mentions": mentions,
            "message": f"message of {key}", "self_check": True}


def accuracy_record(key, labels, at_least):
    return {"key": key, "kind": "accuracy", "value": evidence.encode(labels), "labels": evidence.encode(labels),
            "at_least": at_least, "message": f"message of {key}", "self_check": True}


def made(key, value):
    """The record a student's run makes under ``key`` (only its key and value matter to the verdict)."""
    return {"key": key, "value": evidence.encode(value)}


def raised(key, *names, text="got 7"):
    return {"key": key, "value": {"raised": list(names), "text": text}}


# ---------------------------------------------------------------------------------------------------------------
# The parts of a solution notebook
# ---------------------------------------------------------------------------------------------------------------

def cell(kind, source, **nbgrader):
    make = nbformat.v4.new_markdown_cell if kind == "markdown" else nbformat.v4.new_code_cell
    return make(source, metadata={"nbgrader": nbgrader} if nbgrader else {})


def answer(grade_id, body):
    return cell("code", f"### BEGIN SOLUTION\n{body}\n### END SOLUTION", grade_id=grade_id, solution=True, grade=False)


def written(grade_id, points, body):
    return cell("markdown", body, grade_id=grade_id, points=points, solution=True, grade=True)


CHECK_A = f'assert f(1) == 2, "visible one"\nassert f(0) == 0, f"not {{f(0)}}"\n{HIDDEN}'
CHECK_B = 'if g(1) != 3:\n    raise AssertionError("raised one")\n'


def solution_notebook():
    cells = [
        written("first", 1, "### BEGIN SOLUTION\nOne.\n### END SOLUTION\nkept out\n### BEGIN SOLUTION\nTwo.\n"
                            "### END SOLUTION"),
        answer("a-answer", "def f(x):\n    return 2 * x"),
        cell("code", "def helper():\n    return 1", grade_id="helper", solution=True, grade=False),  # no region
        cell("code", CHECK_A, grade_id="check-a", points=2, grade=True, solution=False, locked=True),
        cell("markdown", "Why does it work?"),
        written("why", 2, "### BEGIN SOLUTION\nBecause.\n### END SOLUTION"),
        answer("b-answer", "def g(x):\n    return x + 2"),
        written("how", 1, "### BEGIN SOLUTION\n  Like this.  \n### END SOLUTION"),
        cell("code", CHECK_B, grade_id="check-b", points=1.5, grade=True, solution=False, locked=True),
    ]
    notebook = nbformat.v4.new_notebook(cells=cells)
    # A hand-edited notebook may drop a cell's metadata: such a cell is neither an answer nor a part.
    notebook.cells.append(nbformat.from_dict({"cell_type": "markdown", "source": "The end."}))
    return notebook


def test_a_solution_notebook_defines_its_parts_in_order_with_their_answers_questions_and_model_answers():
    assert exercise_parts(solution_notebook(), "01_x") == [
        Part("01_x", "first", 1.0, "", (), frozenset(), True, "", "One.\nTwo."),  # the first cell: no question
        Part("01_x", "check-a", 2.0, CHECK_A, ("a-answer",), frozenset({"visible one"})),
        Part("01_x", "why", 2.0, "", (), frozenset(), True, "Why does it work?", "Because."),
        Part("01_x", "how", 1.0, "", (), frozenset(), True, "", "Like this."),  # after a code cell: no question
        Part("01_x", "check-b", 1.5, CHECK_B, ("b-answer",), frozenset({"raised one"})),
    ]


def test_a_solution_notebook_without_graded_cells_or_with_a_bad_one_is_refused_by_name():
    with pytest.raises(ValueError, match=r"^01_x has no graded cell \(nbgrader metadata with grade: true\)$"):
        exercise_parts(nbformat.v4.new_notebook(cells=[answer("a-answer", "x = 1")]), "01_x")
    no_points = nbformat.v4.new_notebook(cells=[cell("code", "pass", grade_id="p", grade=True)])
    with pytest.raises(ValueError, match=r"^01_x cell 0 \(p\): points must be a positive number, got None$"):
        exercise_parts(no_points, "01_x")


def test_visible_messages_ignore_raises_of_anything_but_a_plain_assertion_error():
    source = 'raise errors.AssertionError("dotted")\nraise make()("called")\nraise AssertionError\n' \
             'raise AssertionError(reason)\nassert x\nassert y, "kept"'
    assert visible_messages(source) == {"kept"}
    assert visible_messages("not python (") == frozenset()


def test_hidden_lines_are_the_stripped_hidden_test_lines_longer_than_eight_characters():
    source = "visible_line_1()\n### BEGIN HIDDEN TESTS\n    f(123456)\n  f(12345)\n  x = 1\n### END HIDDEN TESTS"
    other = Part("02_y", "q", 1.0, "### BEGIN HIDDEN TESTS\nanother_line()\n### END HIDDEN TESTS", (), frozenset())
    assert hidden_lines([Part("01_x", "p", 1.0, source, (), frozenset()), other]) == {"f(123456)", "another_line()"}


# ---------------------------------------------------------------------------------------------------------------
# The reference: the solution's own records
# ---------------------------------------------------------------------------------------------------------------

def test_a_solution_check_cell_that_did_not_run_cleanly_is_reported_in_full():
    where = "the solution 01_x, part 'p': the check cell"
    for outcome, status in [(None, "did not run"), (CellOutcome("timeout"), "ended with timeout"),
                            (CellOutcome("error", ename="NameError", evalue="x"), "ended with error (NameError: x)"),
                            (CellOutcome("not run", reason="the kernel died"), "ended with not run")]:
        with pytest.raises(ValueError) as caught:
            reference_records(PART, outcome)
        assert str(caught.value) == f"{where} {status}"


def test_the_solutions_records_must_be_well_formed_and_present():
    where = "the solution 01_x, part 'p'"
    for bad in ["text", {"key": "a", "kind": "value", "message": 3, "self_check": True},
                {"key": 3, "kind": "value", "message": "m", "self_check": True},
                {"key": "a", "kind": "vibes", "message": "m", "self_check": True}]:
        with pytest.raises(ValueError) as caught:
            reference_records(PART, CellOutcome("ran", records=[bad]))
        assert str(caught.value) == f"{where}: a malformed evidence record"
    with pytest.raises(ValueError) as caught:
        reference_records(PART, CellOutcome("ran", records=[{"key": evidence.VISIBLE_DONE, "kind": "marker"}]))
    assert str(caught.value) == (f"{where} records no evidence: its hidden tests must call expect(...), "
                                 "expect_raises(...) or expect_accuracy(...) from course_lib.grading.evidence")
    with pytest.raises(ValueError) as caught:
        reference_records(PART, CellOutcome("ran", records=[value_record("a", 1, self_check=False)]))
    assert str(caught.value) == f"{where}: the solution fails its own check 'a' (message of a)"


# ---------------------------------------------------------------------------------------------------------------
# One record against the reference's
# ---------------------------------------------------------------------------------------------------------------

def test_a_value_check_uses_the_solutions_tolerances_and_dtype_rule():
    assert check_record(made("k", 105.0), value_record("k", 100.0, rtol=0.1)) is None
    assert check_record(made("k", 111.0), value_record("k", 100.0, rtol=0.1)) == "the value differs"
    assert check_record(made("k", 0.05), value_record("k", 0.0, atol=0.1)) is None
    assert check_record(made("k", 0.2), value_record("k", 0.0, atol=0.1)) == "the value differs"
    assert check_record(made("k", 0.05), value_record("k", 0.0)) == "the value differs"  # default float tolerance
    single, double = torch.ones(3), torch.ones(3, dtype=torch.float64)
    assert check_record(made("k", single), value_record("k", double, exact_dtype=False)) is None
    assert check_record(made("k", single), value_record("k", double)) == "the value should have dtype torch.float64"
    unspecified = value_record("k", double)
    del unspecified["exact_dtype"]
    assert check_record(made("k", single), unspecified) == "the value should have dtype torch.float64", "exact by default"
    assert check_record(made("k", double), unspecified) is None


def test_a_raises_check_needs_the_expected_exception_and_its_mention():
    reference = raises_record("b")
    assert check_record(raised("b", "ValueError", "Exception"), reference) is None
    assert check_record(raised("b", "TypeError", "Exception"), reference) == "ValueError was not raised"
    for value in (None, "ValueError", ["ValueError"], {"raised": None, "returned": 3}, {"raised": "ValueError"}):
        assert check_record({"key": "b", "value": value}, reference) == "ValueError was not raised"
    assert check_record(raised("b", "ValueError", text="bad value"), reference) == \
        "the error message does not name the value"
    assert check_record({"key": "b", "value": {"raised": ["ValueError"]}}, reference) == \
        "the error message does not name the value"
    assert check_record(raised("b", "ValueError", text="bad value"), raises_record("b", mentions=None)) is None


def test_an_accuracy_check_needs_the_shape_and_at_least_the_required_fraction():
    reference = accuracy_record("c", torch.tensor([0, 1, 1, 0]), 0.75)
    assert check_record(made("c", torch.tensor([0, 1, 1, 0])), reference) is None
    assert check_record(made("c", torch.tensor([0, 1, 1, 1])), reference) is None, "exactly the required fraction"
    assert check_record(made("c", torch.tensor([0, 1, 0, 1])), reference) == "accuracy 0.500, at least 0.75 is required"
    assert check_record(made("c", torch.tensor([1, 0, 0, 1])), reference) == "accuracy 0.000, at least 0.75 is required"
    for wrong in (torch.tensor([0, 1, 1]), None, 3):
        assert check_record(made("c", wrong), reference) == "the predictions do not have the expected shape"


# ---------------------------------------------------------------------------------------------------------------
# The verdict on a part and its feedback
# ---------------------------------------------------------------------------------------------------------------

REFERENCE = [value_record("a", torch.ones(2)), raises_record("b"), accuracy_record("c", torch.tensor([1, 0]), 1.0)]
GOOD = [made("a", torch.ones(2)), raised("b", "ValueError"), made("c", torch.tensor([1, 0]))]


def verdict(result):
    assert result.part is PART
    return result.status, result.message


def test_a_part_that_did_not_run_to_its_end_is_not_gradable_and_says_why():
    assert verdict(judge(PART, REFERENCE, None, 20)) == (
        NOT_GRADABLE, "not run: the kernel died or the time limit stopped the notebook")
    assert verdict(judge(PART, REFERENCE, CellOutcome("timeout", records=GOOD), 45)) == (
        NOT_GRADABLE, "the check cell exceeded the time limit of 45 s")
    assert verdict(judge(PART, REFERENCE, CellOutcome("not run", reason="an earlier cell ran out of memory"), 20)) == (
        NOT_GRADABLE, "not run: an earlier cell ran out of memory")
    assert verdict(judge(PART, REFERENCE, CellOutcome("not run", records=GOOD), 20)) == (
        NOT_GRADABLE, "not run: the kernel died")


def test_a_part_passes_with_every_check_agreeing_whatever_else_the_kernel_sent():
    junk = ["text", 3, None, ["a"], {"key": 3}, {"no key": "a"}]
    assert verdict(judge(PART, REFERENCE, CellOutcome("ran", records=[*junk, *GOOD]), 20)) == (PASSED, "")
    assert judge(PART, REFERENCE, CellOutcome("ran", records=GOOD), 20).score == 2.0


def test_the_feedback_names_the_first_failed_check_and_counts_the_others():
    wrong_a, wrong_b = made("a", torch.zeros(2)), raised("b", "TypeError")
    assert verdict(judge(PART, REFERENCE, CellOutcome("ran", records=[wrong_a, GOOD[1], GOOD[2]]), 20)) == (
        FAILED, "message of a (the value differs at index (0,))")
    assert verdict(judge(PART, REFERENCE, CellOutcome("ran", records=[wrong_a, wrong_b, GOOD[2]]), 20)) == (
        FAILED, "message of a (the value differs at index (0,); 1 more check(s) of this part failed)")
    assert verdict(judge(PART, REFERENCE, CellOutcome("ran", records=[wrong_b]), 20)) == (
        FAILED, "message of a (this check made no record; 2 more check(s) of this part failed)")
    assert verdict(judge(PART, REFERENCE, CellOutcome("ran", records=[*GOOD, GOOD[1]]), 20)) == (
        FAILED, "message of b (this check was recorded more than once)")


def test_a_stopped_check_cell_is_explained_in_the_graders_words_only():
    stopped = {"status": "error", "ename": "AssertionError"}
    assert verdict(judge(PART, REFERENCE, CellOutcome(**stopped, evalue="visible message"), 20)) == (
        FAILED, "a visible check failed: visible message")
    # stopped before the hidden tests (no marker), though a visible expect(...) made a record
    assert verdict(judge(PART, REFERENCE, CellOutcome("error", ename="KeyError", records=[GOOD[0]]), 20)) == (
        FAILED, "a visible check of this cell stopped with KeyError: run the cell to see where")
    marker = {"key": evidence.VISIBLE_DONE, "kind": "marker"}
    assert verdict(judge(PART, REFERENCE, CellOutcome("error", ename="Mine", records=[marker, *GOOD]), 20)) == (
        FAILED, "the check cell stopped with an exception after its checks")
    assert verdict(judge(PART, REFERENCE, CellOutcome("error", ename="Mine", records=[marker]), 20)) == (
        FAILED, "the check cell stopped with an exception before this check: message of a")
    assert verdict(judge(PART, REFERENCE, CellOutcome("error", ename="KeyError", records=[marker, GOOD[0]]), 20)) == (
        FAILED, "the check cell stopped with KeyError before this check: message of b")


# ---------------------------------------------------------------------------------------------------------------
# Written answers, notes and totals
# ---------------------------------------------------------------------------------------------------------------

WRITTEN = Part("02_y", "why", 2.0, "", (), frozenset(), True, "Why?", "Because.")


def test_a_written_answer_is_found_only_in_a_markdown_cell_with_its_id():
    moved = [cell("code", "It works.", grade_id="why"), cell("markdown", "It works.", grade_id="other"),
             nbformat.from_dict({"cell_type": "markdown", "source": "It works.", "metadata": {"nbgrader": "why"}})]
    missing = written_answer(WRITTEN, moved)
    assert (missing.part, missing.status, missing.message) == (
        WRITTEN, NOT_GRADABLE, "the answer cell 'why' is missing (deleted, or its metadata changed)")
    found = written_answer(WRITTEN, [*moved, cell("markdown", "  It works.\n", grade_id="why")])
    assert (found.part, found.status, found.answer, found.score, found.pending) == (WRITTEN, BY_HAND, "It works.", 0.0, 2.0)
    stub = written_answer(WRITTEN, [cell("markdown", "YOUR ANSWER HERE", grade_id="why")])
    assert (stub.part, stub.status, stub.message, stub.pending) == (WRITTEN, FAILED, "no answer was written", 0.0)


def test_points_given_by_hand_may_be_anything_from_zero_to_the_parts_points():
    for points in (0, 0.5, 2, 2.0):
        result = PartResult(WRITTEN, BY_HAND)
        grade_by_hand(result, points, "seen")
        assert (result.status, result.given, result.score, result.message) == (GRADED_BY_HAND, points, points, "seen")
    for points in (-0.5, 2.5, "1"):
        with pytest.raises(ValueError, match=r"^02_y:why: points must be between 0 and 2, got "):
            grade_by_hand(PartResult(WRITTEN, BY_HAND), points, "")


def test_ungraded_cells_get_a_note_only_when_they_stopped_or_were_cut_short():
    cut = "the time limit of the notebook was reached while this cell ran"
    assert ungraded_notes([(4, CellOutcome("timeout"))], 30) == [
        "1 code cell(s) that are not graded exceeded the time limit of 30 s and were interrupted; the first is code "
        "cell 5"]
    assert ungraded_notes([(4, CellOutcome("error", ename="ValueError"))], 30) == [
        "1 code cell(s) that are not graded raised an exception; the first is code cell 5"]
    assert ungraded_notes([(4, CellOutcome("not run", reason=cut))], 30) == [
        "1 code cell(s) that are not graded were cut short while they ran (the kernel died, or the notebook's time "
        "limit came); the first is code cell 5"]
    assert ungraded_notes([(4, CellOutcome("not run", reason="an earlier cell stopped the kernel"))], 30) == []
    assert ungraded_notes([(4, CellOutcome("ran", reason=cut))], 30) == []
    many = [(i, CellOutcome("error")) for i in range(9, 20)]
    assert ungraded_notes(many[:10], 30)[0].startswith("10 code cell(s)")
    assert ungraded_notes(many, 30)[0].startswith("more than 10 code cell(s)") and "code cell 10" in \
        ungraded_notes(many[::-1], 30)[0]


def test_an_exercises_notes_are_kept_once_each_in_order():
    result = ExerciseResult("bo", "01_x")
    for text in ("b", "a", "b"):
        result.note(text)
    assert result.notes == ["b", "a"]
