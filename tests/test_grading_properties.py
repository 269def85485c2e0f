"""Property-based tests of the grader's pure functions: whatever JSON a submission's kernel sends, whatever a file or
folder is called, whatever a notebook holds, they return an answer and never raise past the boundary of one
submission (Hypothesis draws the inputs; a failure prints the smallest one it found)."""

from __future__ import annotations

import csv
import io
import json
import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from course_lib.grading import evidence, reports
from course_lib.grading.batch import read_notebook
from course_lib.grading.runner import CellOutcome, _results
from course_lib.grading.submissions import MAX_NAME_BYTES, shown, student_id
from course_lib.grading.verdicts import (BY_HAND, FAILED, NOT_GRADABLE, PASSED, ExerciseResult, Part, PartResult,
                                         check_record, judge, ungraded_notes, written_answer)

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Any JSON a kernel could send: huge and negative ints, floats of every kind, any text (lone surrogates included).
text = st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x10FFFF), max_size=40)
scalars = st.none() | st.booleans() | st.integers(min_value=-(10 ** 400), max_value=10 ** 400) \
    | st.floats(allow_nan=True, allow_infinity=True) | text
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=5) | st.dictionaries(text, inner, max_size=5),
                           max_leaves=30)
# Values shaped like records, so that the comparisons get past their first checks.
tensors = st.fixed_dictionaries({"tensor": st.fixed_dictionaries({
    "dtype": st.sampled_from(["torch.float64", "torch.float32", "torch.int64", "torch.bool", "torch.weird"]) | text,
    "shape": st.lists(st.integers(min_value=-2, max_value=4), max_size=3) | json_values,
    "values": st.lists(scalars, max_size=8) | json_values})})
encoded = st.recursive(json_values | tensors | st.fixed_dictionaries({"float": scalars}),
                       lambda inner: st.fixed_dictionaries({"sequence": st.lists(inner, max_size=4)})
                       | st.fixed_dictionaries({"mapping": st.dictionaries(text, inner, max_size=3)}), max_leaves=12)

# The references a solution records (trusted: made by the instructor's run).
REFERENCES = [
    {"key": "a", "kind": "value", "message": "a", "value": evidence.encode(value), "rtol": rtol, "atol": atol,
     "exact_dtype": exact}
    for value, rtol, atol, exact in [(0.25, None, None, True), (3, None, None, True), ("text", None, None, True),
                                     ([1.5, [2, 3.0]], 0.0, 0.03, True), ({"w": 1.0, "b": None}, None, None, False)]
] + [
    {"key": "t", "kind": "value", "message": "t", "rtol": None, "atol": None, "exact_dtype": True,
     "value": {"tensor": {"dtype": "torch.float64", "shape": [2, 2], "values": [0.5, -1.0, float("inf"), 2.0]}}},
    {"key": "i", "kind": "value", "message": "i", "rtol": None, "atol": None, "exact_dtype": False,
     "value": {"tensor": {"dtype": "torch.int64", "shape": [3], "values": [1, 2, 3]}}},
    {"key": "r", "kind": "raises", "message": "r", "expected": "ValueError", "mentions": "-2"},
    {"key": "c", "kind": "accuracy", "message": "c", "at_least": 0.8,
     "labels": {"tensor": {"dtype": "torch.int64", "shape": [4], "values": [1, 0, 3, 3]}}},
]
PART = Part("01_x", "p", 2.0, "f(1)\n### BEGIN HIDDEN TESTS\nexpect('a', 1, message='a')\n### END HIDDEN TESTS",
            (), frozenset({"visible message"}))
WRITTEN = Part("01_x", "why", 2.0, "", (), frozenset(), True, "Why?", "Because.")
records = st.lists(st.fixed_dictionaries({"key": st.sampled_from(["a", "t", "i", "r", "c"]) | text,
                                          "kind": st.sampled_from(["value", "raises", "accuracy"]) | text,
                                          "value": encoded}) | json_values, max_size=8)


@SETTINGS
@given(got=encoded)
def test_comparing_any_record_with_a_reference_gives_a_verdict(got):
    for reference in REFERENCES:
        reason = check_record({"value": got}, reference)
        assert reason is None or isinstance(reason, str)
        if reference["kind"] == "value":
            assert evidence.disagreement(got, reference["value"]) is None or \
                isinstance(evidence.disagreement(got, reference["value"]), str)


@SETTINGS
@given(got=encoded, student=st.dictionaries(text, json_values, max_size=4))
def test_a_record_of_any_shape_is_judged_not_crashed(got, student):
    for reference in REFERENCES:
        check_record(dict(student), reference)
        check_record({"value": got, **student}, reference)


@SETTINGS
@given(status=st.sampled_from(["ran", "error", "timeout", "not run"]) | text, ename=st.none() | text,
       evalue=st.none() | text | st.sampled_from(["visible message"]), reason=text, made=records)
def test_any_cell_outcome_gets_a_verdict_and_notes(status, ename, evalue, reason, made):
    outcome = CellOutcome(status, ename, evalue, made, reason)
    verdict = judge(PART, [r for r in REFERENCES if r["key"] in ("a", "t", "r")], outcome, 20)
    assert verdict.status in (PASSED, FAILED, NOT_GRADABLE) and isinstance(verdict.message, str)
    for note in ungraded_notes([(3, outcome)] * 2, 20):
        assert note.isprintable()
        if ename:
            assert ename not in note or ename in "raised an exception; the first is code cell 4 2"


@SETTINGS
@given(cells=st.lists(json_values | st.fixed_dictionaries({
    "cell_type": st.sampled_from(["markdown", "code"]) | text,
    "metadata": st.fixed_dictionaries({"nbgrader": st.fixed_dictionaries({"grade_id": st.just("why") | json_values})})
    | json_values, "source": json_values}), max_size=4))
def test_a_written_answer_is_read_from_any_cells(cells):
    verdict = written_answer(WRITTEN, cells)
    assert verdict.status in (BY_HAND, FAILED, NOT_GRADABLE)
    verdict.answer.encode("utf-8")  # what manual/answers.md will hold


@SETTINGS
@given(data=st.binary(max_size=300) | json_values.map(lambda v: json.dumps(v).encode()))
def test_reading_any_bytes_as_a_notebook_raises_nothing_but_an_exception(data):
    try:
        read_notebook(data)
    except Exception:  # the per-submission boundary: "not a readable notebook"
        pass


@SETTINGS
@given(lines=st.lists(st.binary(max_size=80) | json_values.map(lambda v: json.dumps(v).encode())
                      | st.fixed_dictionaries({"cell": scalars, "status": json_values, "ename": json_values,
                                               "evalue": json_values, "records": json_values, "reason": json_values})
                      .map(lambda v: json.dumps(v).encode()), max_size=6))
def test_any_results_file_is_read_into_cell_outcomes(tmp_path_factory, lines):
    path = tmp_path_factory.mktemp("results") / "results.jsonl"
    path.write_bytes(b"\n".join(lines))
    for cell, outcome in _results(path).items():
        assert isinstance(cell, int) and isinstance(outcome.records, list)
        assert outcome.ename is None or isinstance(outcome.ename, str)


names = st.text(alphabet=st.characters(min_codepoint=1, max_codepoint=0x10FFFF, blacklist_characters="/"),
                min_size=1, max_size=300) | st.binary(min_size=1, max_size=300).filter(
    lambda b: b"/" not in b and b"\0" not in b).map(os.fsdecode)


@SETTINGS
@given(name=names)
def test_every_name_gets_a_writable_identifier_and_a_readable_spelling(name):
    identifier = student_id(name)
    assert identifier == student_id(name), "the same name gets the same identifier in every run"
    assert identifier.isprintable() and "/" not in identifier and "\\" not in identifier
    assert len(f"feedback/{identifier}.md".encode("utf-8")) < 255 and len(identifier.encode()) <= MAX_NAME_BYTES + 60
    assert shown(name).isprintable()
    if name.isprintable() and len(name.encode("utf-8", "surrogatepass")) <= MAX_NAME_BYTES and "\\" not in name \
            and not any(0xD800 <= ord(c) <= 0xDFFF for c in name):
        assert identifier == name


@SETTINGS
@given(first=names, second=names)
def test_two_different_names_never_share_an_identifier_unless_one_is_hashed(first, second):
    if first != second and student_id(first) == student_id(second):
        raise AssertionError(f"{first!r} and {second!r} share {student_id(first)!r}")


@SETTINGS
@given(name=names, message=text, note=text)
def test_reports_of_any_student_are_written_and_escaped(name, message, note):
    student = student_id(name)
    part = Part("01_x", "p", 2.0, "", (), frozenset())
    result = ExerciseResult(student, "01_x", [PartResult(part, FAILED, message), PartResult(WRITTEN, BY_HAND,
                                                                                            answer=message)], [note])
    feedback = reports.feedback_text(student, [result], shown(name))
    feedback.encode("utf-8", "replace")
    heading = feedback.splitlines()[0]
    assert heading.startswith("# Feedback for ") and "<" not in heading.replace("\\<", "")
    assert not any(line.startswith("#") for line in feedback.splitlines()[1:] if line.startswith("# "))
    table = reports.grades_table([result], {"01_x": [part, WRITTEN]}, [student])
    rows = list(csv.reader(io.StringIO(table)))
    assert reports.restore(rows[1][0]) == student
    review = reports.manual_files([result], {"01_x": [part, WRITTEN]})["manual/answers.md"].decode("utf-8")
    assert f"### {reports.markdown_text(student)}" in review


@SETTINGS
@given(cell=st.text(max_size=20))
def test_neutralize_and_restore_are_inverse(cell):
    assert reports.restore(reports.neutralize(cell)) == cell
    assert reports.neutralize(cell)[:1] not in ("=", "+", "-", "@", "\t", "\r")


@SETTINGS
@given(value=text)
def test_markdown_text_shows_any_text_literally(value):
    escaped = reports.markdown_text(value)
    assert "\n" not in escaped and "\r" not in escaped
    for character in "<>#[]*_`|!":
        assert escaped.count(character) == escaped.count("\\" + character)
