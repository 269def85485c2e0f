"""The grading engine piece by piece (evidence, verdicts, submissions, reports), then small batches in the sandbox:
shards merged into one run's output, grading without a sandbox, and the instructor's mistakes. (Every committed
solution and exercise is graded in `tests/test_exercise_fairness.py`.)"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import nbformat
import pytest
import torch

from course_lib.grading import cli, evidence, reports, sandbox
from course_lib.grading.runner import CellOutcome
from course_lib.grading.submissions import collect, shard
from course_lib.grading.verdicts import (BUILTIN_EXCEPTIONS, BY_HAND, FAILED, NOT_GRADABLE, NOTE_COUNT_CAP, PASSED,
                                         ExerciseResult, Part, PartResult, judge, reference_records, ungraded_notes, visible_messages, written_answer)

ROOT = Path(__file__).resolve().parent.parent
SOLUTION = ROOT / "tests" / "grading_subject" / "solutions" / "01_batch_sgd.ipynb"
EXERCISE = ROOT / "tests" / "grading_subject" / "exercises" / "01_batch_sgd.ipynb"
SANDBOX, WHY = sandbox.available()
needs_sandbox = pytest.mark.skipif(not SANDBOX, reason=f"no sandbox here: {WHY}")


# ---------------------------------------------------------------------------------------------------------------
# Evidence: encoding, the comparison rule, plain-run assertions, withheld references
# ---------------------------------------------------------------------------------------------------------------

def test_encoding_keeps_dtype_shape_and_non_finite_values():
    encoded = evidence.encode((torch.tensor([[1.0, float("nan")], [float("inf"), -2.5]], dtype=torch.float64), 3,
                               0.5, None, "text", True, {"k": [1, 2]}))
    assert json.loads(json.dumps(encoded, allow_nan=False)) == encoded
    tensor = encoded["sequence"][0]["tensor"]
    assert tensor == {"dtype": "torch.float64", "shape": [2, 2], "values": [1.0, "nan", "inf", -2.5]}
    assert encoded["sequence"][1:] == [3, {"float": 0.5}, None, "text", True, {"mapping": {"k": {"sequence": [1, 2]}}}]
    assert evidence.encode(object()) == {"unsupported": "object"}
    assert evidence.encode(torch.zeros(evidence.MAX_ELEMENTS + 1)) == {"too_large": evidence.MAX_ELEMENTS + 1}


def test_the_comparison_rule():
    e = evidence.encode
    assert evidence.disagreement(e(torch.ones(3)), e(torch.ones(3) + 1e-6)) is None  # float32 tolerance
    assert "differs" in evidence.disagreement(e(torch.ones(3, dtype=torch.float64)),
                                              e(torch.ones(3, dtype=torch.float64) + 1e-6))
    assert "dtype torch.float64" in evidence.disagreement(e(torch.ones(3)), e(torch.ones(3, dtype=torch.float64)))
    assert evidence.disagreement(e(torch.ones(3)), e(torch.ones(3, dtype=torch.float64)), exact_dtype=False) is None
    assert "should have shape (3,)" in evidence.disagreement(e(torch.ones(1, 3)), e(torch.ones(3)))
    assert evidence.disagreement(e(torch.tensor([float("nan"), 1.0])), e(torch.tensor([float("nan"), 1.0]))) is None
    assert evidence.disagreement(e(torch.tensor([float("inf")])), e(torch.tensor([1e38]))) is not None
    assert evidence.disagreement(e(torch.tensor([1, 2])), e(torch.tensor([1, 3]))) is not None
    assert evidence.disagreement(e(True), e(1)) is not None and evidence.disagreement(e(1), e(1.0)) is None
    assert evidence.disagreement(e([1, 2]), e((1, 2))) is None and "should have 3 items" in evidence.disagreement(e([1, 2]), e([1, 2, 3]))
    assert evidence.disagreement(e(0.1 + 0.2), e(0.3)) is None and evidence.disagreement(e(0.31), e(0.3)) is not None
    assert evidence.disagreement(e(0.31), e(0.3), atol=0.02) is None
    assert evidence.disagreement("forged", e({"unsupported": 1})) is not None


def test_a_disagreement_says_where_in_words_a_student_reads():
    """The feedback names what differs (a recorded mapping's key), counts items from 1 and gives a tensor's index
    as the student would write it: never ``value[1]`` or a flat index."""
    e = evidence.encode
    v = torch.zeros(2, 3, dtype=torch.float64)
    wrong = v.clone()
    wrong[1, 2] = 1.0
    assert evidence.disagreement(e({"the parameters": v, "the second moment v after step 3": wrong}),
                                 e({"the parameters": v, "the second moment v after step 3": v})) \
        == "the second moment v after step 3 differs at index (1, 2)"
    assert evidence.disagreement(e([1.0, {"bias": v[0]}]), e([1.0, {"bias": wrong[1]}])) \
        == "item 2 of the value, bias differs at index (2,)"
    assert evidence.disagreement(e(torch.tensor(2.0)), e(torch.tensor(1.0))) == "the value differs"
    assert evidence.disagreement(e([1, 2]), e([1, 3])) == "item 2 of the value differs"
    # Anything a student's kernel sends is data: malformed records disagree, they never raise.
    for junk in (None, [], {"tensor": 3}, {"tensor": {"shape": [3], "values": "x"}}, {"float": [1]}, {"sequence": 5}):
        assert evidence.disagreement(junk, e(torch.ones(3))) is not None
        assert evidence.disagreement(junk, e([1.5])) is not None


def test_the_feedback_of_a_comparison_never_repeats_the_students_data():
    forged = {"tensor": {"dtype": "x = hidden_line()", "shape": ["x = hidden_line()"], "values": [1.0]}}
    reason = evidence.disagreement(forged, evidence.encode(torch.ones(1)))
    assert "hidden_line" not in reason


def test_plain_runs_assert_and_grading_runs_record(monkeypatch):
    evidence.expect("same", torch.ones(2), reference=torch.ones(2), message="m")
    evidence.expect("no reference: only a record", torch.ones(2), message="m")
    with pytest.raises(AssertionError, match="^the values differ$"):
        evidence.expect("k", torch.ones(2), reference=torch.zeros(2), message="the values differ")
    evidence.expect_raises("k", ValueError, lambda: int("x"), mentions="'x'", message="m")
    with pytest.raises(AssertionError, match="must raise"):
        evidence.expect_raises("k", ValueError, lambda: 3, message="must raise")
    with pytest.raises(AssertionError, match="name it"):
        evidence.expect_raises("k", ValueError, lambda: int("x"), mentions="y", message="name it")
    with pytest.raises(AssertionError, match="learn"):
        evidence.expect_accuracy("k", torch.tensor([0, 1, 1]), labels=torch.tensor([0, 0, 0]), at_least=0.5, message="learn")
    with pytest.raises(ValueError, match="message"):
        evidence.expect("k", 1, reference=1, message="")
    with pytest.raises(ValueError, match="at_least"):
        evidence.expect_accuracy("k", torch.tensor([1]), labels=torch.tensor([1]), at_least=2, message="m")
    records = []
    monkeypatch.setenv(evidence.GRADING_ENV, "1")
    monkeypatch.setattr(evidence, "_emit", records.append)
    evidence.expect("k", torch.ones(2), reference=torch.zeros(2), message="the values differ")  # no exception
    evidence.expect_raises("r", ValueError, lambda: int("x"), mentions="'x'", message="m")
    evidence.expect_accuracy("a", torch.tensor([1, 1]), labels=..., at_least=0.5, message="m")
    assert [r["key"] for r in records] == ["k", "r", "a"]
    assert records[0]["self_check"] is False and records[1]["value"]["raised"][0] == "ValueError"
    assert records[2]["labels"] is None


def test_references_are_withheld_from_a_students_kernel():
    source = textwrap.dedent('''
        for k in range(3):
            expect(f"k={k}", f(k), reference=torch.autograd.functional.vjp(
                       lambda x: x ** 2, torch.tensor(1.0) * k)[1],
                   message="é")
        evidence.expect_raises("bad", ValueError, lambda: f(-1), mentions=-1, message="names -1")
        expect_accuracy("acc", predictions, labels=heldout_y[order], at_least=0.8, message="m")
        other(reference=keep_me)
    ''')
    withheld = evidence.withhold_references(source)
    assert withheld.count("\n") == source.count("\n"), "line numbers stay"
    assert "vjp" not in withheld and "heldout_y" not in withheld and "mentions=-1" not in withheld
    assert "reference=...," in withheld and "labels=...," in withheld and "mentions=...," in withheld
    assert "other(reference=keep_me)" in withheld and 'message="é"' in withheld
    compile(withheld, "<check>", "exec")
    assert evidence.withhold_references("not python (") == "not python ("


# ---------------------------------------------------------------------------------------------------------------
# Verdicts
# ---------------------------------------------------------------------------------------------------------------

PART = Part("01_x", "p", 2.0, 'assert ok, "visible message"\nassert ok, f"not {literal}"\n', ("p-answer",),
            frozenset({"visible message"}))


def record(key, value, **more):
    return {"key": key, "kind": "value", "value": evidence.encode(value), "message": f"message of {key}",
            "rtol": None, "atol": None, "exact_dtype": True, "self_check": True, **more}


REFERENCE = [record("a", torch.ones(2)), {"key": "b", "kind": "raises", "value": {}, "expected": "ValueError",
                                          "mentions": "7", "message": "message of b", "self_check": True}]


def test_a_part_passes_only_with_every_record_agreeing():
    good = [record("a", torch.ones(2)), {"key": "b", "value": {"raised": ["ValueError", "Exception"], "text": "got 7"}}]
    assert judge(PART, REFERENCE, CellOutcome("ran", records=good), 20).status == PASSED
    wrong = judge(PART, REFERENCE, CellOutcome("ran", records=[record("a", torch.zeros(2)), good[1]]), 20)
    assert (wrong.status, wrong.message) == (FAILED, "message of a (the value differs at index (0,))")
    unnamed = judge(PART, REFERENCE, CellOutcome("ran", records=[good[0], {"key": "b", "value": {
        "raised": ["ValueError"], "text": "bad value"}}]), 20)
    assert unnamed.message == "message of b (the error message does not name the value)"
    twice = judge(PART, REFERENCE, CellOutcome("ran", records=[good[0], good[0], good[1]]), 20)
    assert "recorded more than once" in twice.message
    missing = judge(PART, REFERENCE, CellOutcome("ran", records=[good[1]]), 20)
    assert missing.message == "message of a (this check made no record)"
    after = judge(PART, REFERENCE, CellOutcome("error", ename="KeyError", records=good), 20)
    assert (after.status, after.message) == (FAILED, "the check cell stopped with KeyError after its checks")


def test_a_failure_shows_the_instructors_words_only():
    visible = judge(PART, REFERENCE, CellOutcome("error", ename="AssertionError", evalue="visible message"), 20)
    assert visible.message == "a visible check failed: visible message"
    forged = judge(PART, REFERENCE, CellOutcome("error", ename="AssertionError", evalue="x = secret_hidden()"), 20)
    assert "secret" not in forged.message and forged.message.endswith("before this check: message of a")
    made_up = judge(PART, REFERENCE, CellOutcome("error", ename="x = secret_hidden()", evalue="?"), 20)
    assert "secret" not in made_up.message and "an exception" in made_up.message
    assert "NameError" in judge(PART, REFERENCE, CellOutcome("error", ename="NameError"), 20).message
    assert judge(PART, REFERENCE, CellOutcome("timeout"), 20).status == NOT_GRADABLE
    assert judge(PART, REFERENCE, None, 20).status == NOT_GRADABLE
    assert ungraded_notes([(3, CellOutcome("error", ename="Boom x = secret"))], 20) == [
        "1 code cell(s) that are not graded raised an exception; the first is code cell 4"]
    assert ungraded_notes([(0, CellOutcome("ran"))], 20) == []


def test_notes_on_ungraded_cells_carry_no_choice_of_the_student():
    """Which exception each ungraded cell raises (a student's free choice, ~6 bits a cell) never reaches the notes:
    two runs that differ only in those choices get the same notes, and counts stop at NOTE_COUNT_CAP."""
    import random

    names = sorted(BUILTIN_EXCEPTIONS)
    runs = []
    for seed in (1, 2):
        chooser = random.Random(seed)
        runs.append([(i, CellOutcome("error", ename=chooser.choice(names), evalue=str(chooser.random())))
                     for i in range(5, 2405)])
    assert [o.ename for _, o in runs[0]] != [o.ename for _, o in runs[1]]
    notes = [ungraded_notes(run, 20) for run in runs]
    assert notes[0] == notes[1] == [
        f"more than {NOTE_COUNT_CAP} code cell(s) that are not graded raised an exception; the first is code cell 6"]
    mixed = [(2, CellOutcome("timeout")), (4, CellOutcome("not run", reason="the kernel died while this cell ran")),
             (1, CellOutcome("error", ename="ValueError")), (7, CellOutcome("error", ename="KeyError"))]
    assert ungraded_notes(mixed, 20) == [
        "2 code cell(s) that are not graded raised an exception; the first is code cell 2",
        "1 code cell(s) that are not graded exceeded the time limit of 20 s and were interrupted; the first is code cell 3",
        "1 code cell(s) that are not graded were cut short while they ran (the kernel died, or the notebook's time "
        "limit came); the first is code cell 5"]


def test_the_feedback_says_whether_a_cell_stopped_in_its_visible_checks():
    source = "f(1)\n### BEGIN HIDDEN TESTS\nexpect('a', f(2), message='m')\n### END HIDDEN TESTS"
    marked = evidence.mark_visible_end(source)
    assert marked.splitlines()[2].endswith("visible_checks_passed()") and evidence.mark_visible_end("x = 1") == "x = 1"
    part = Part("01_x", "p", 2.0, source, (), frozenset())
    marker = {"key": evidence.VISIBLE_DONE, "kind": "marker"}
    early = judge(part, REFERENCE, CellOutcome("error", ename="TypeError"), 20)
    assert early.message == "a visible check of this cell stopped with TypeError: run the cell to see where"
    late = judge(part, REFERENCE, CellOutcome("error", ename="TypeError", records=[marker]), 20)
    assert late.message == "the check cell stopped with TypeError before this check: message of a"
    assert [r["key"] for r in reference_records(part, CellOutcome("ran", records=[marker, *REFERENCE]))] == ["a", "b"]


def test_visible_messages_are_the_literal_ones_outside_hidden_tests():
    source = 'assert a, "one"\nraise AssertionError("two")\nassert b, f"{x}"\n### BEGIN HIDDEN TESTS\nassert c, "three"\n' \
             '### END HIDDEN TESTS\n'
    assert visible_messages(source) == {"one", "two"}


def test_the_solutions_records_are_checked():
    with pytest.raises(ValueError, match="records no evidence"):
        reference_records(PART, CellOutcome("ran", records=[]))
    with pytest.raises(ValueError, match="recorded twice"):
        reference_records(PART, CellOutcome("ran", records=[record("a", 1), record("a", 1)]))
    with pytest.raises(ValueError, match="fails its own check 'a'"):
        reference_records(PART, CellOutcome("ran", records=[record("a", 1, self_check=False)]))
    with pytest.raises(ValueError, match="ended with error"):
        reference_records(PART, CellOutcome("error", ename="NameError", evalue="x"))
    with pytest.raises(ValueError, match="malformed"):
        reference_records(PART, CellOutcome("ran", records=[{"key": "a", "kind": "vibes", "message": "m"}]))
    assert [r["key"] for r in reference_records(PART, CellOutcome("ran", records=REFERENCE))] == ["a", "b"]


# ---------------------------------------------------------------------------------------------------------------
# Submissions and shards
# ---------------------------------------------------------------------------------------------------------------

def test_submissions_that_cannot_be_graded_fairly_are_refused(tmp_path):
    (tmp_path / "ok.ipynb").write_text("{}")
    os.symlink(tmp_path / "ok.ipynb", tmp_path / "link.ipynb")
    os.mkfifo(tmp_path / "pipe.ipynb")
    (tmp_path / "twice.ipynb").write_text("{}")
    (tmp_path / "twice").mkdir()
    (tmp_path / "twice" / "01_x.ipynb").write_text("{}")
    (tmp_path / "Case.ipynb").write_text("{}")
    (tmp_path / "case.ipynb").write_text("{}")
    (tmp_path / "notes.txt").write_text("")
    (tmp_path / ".ipynb_checkpoints").mkdir()
    found = collect(tmp_path, ["01_x"])
    refused = {s.label: s.refused for s in found.submissions}
    assert refused["ok.ipynb"] == "" and found.submissions[[s.label for s in found.submissions].index("ok.ipynb")].content == b"{}"
    assert "symbolic link" in refused["link.ipynb"] and "not a regular file" in refused["pipe.ipynb"]
    assert "twice.ipynb and twice/01_x.ipynb" in refused["twice.ipynb"] == refused["twice/01_x.ipynb"]
    cased = {s.label: s.student for s in found.submissions if s.label.lower() == "case.ipynb"}
    assert refused["Case.ipynb"] == refused["case.ipynb"] == "", "names that differ only in case are both graded"
    assert cased["Case.ipynb"].startswith("Case~") and cased["case.ipynb"].startswith("case~")
    assert any(flag.startswith("Case is graded as Case~") for flag in found.flagged)
    assert ".ipynb_checkpoints (hidden)" in found.ignored and "notes.txt (not a notebook)" in found.ignored
    with pytest.raises(ValueError, match="several exercises"):
        collect(tmp_path, ["01_x", "02_y"])


def test_shards_split_the_students_into_disjoint_deterministic_slices():
    students = [f"s{i:02d}" for i in range(10)]
    slices = [shard(students, k, 3) for k in (1, 2, 3)]
    assert sorted(sum(slices, [])) == students and [len(s) for s in slices] == [4, 3, 3]
    assert shard(list(reversed(students)), 2, 3) == slices[1]
    with pytest.raises(ValueError, match="1 ≤ K ≤ N"):
        shard(students, 4, 3)


# ---------------------------------------------------------------------------------------------------------------
# Reports
# ---------------------------------------------------------------------------------------------------------------

def test_the_grade_table_counts_only_what_was_handed_in():
    parts = {"01_x": [Part("01_x", "a", 2.0, "", (), frozenset()), Part("01_x", "b", 1.0, "", (), frozenset())],
             "02_y": [Part("02_y", "c", 5.0, "", (), frozenset()),
                      Part("02_y", "why", 2.0, "", (), frozenset(), True, "Why?", "Because.")]}
    results = [ExerciseResult("=cmd", "01_x", [PartResult(parts["01_x"][0], PASSED), PartResult(parts["01_x"][1], FAILED)]),
               ExerciseResult("bo", "02_y", [PartResult(parts["02_y"][0], PASSED),
                                             PartResult(parts["02_y"][1], BY_HAND, answer="Since ``` it is.")])]
    table = list(csv.reader(io.StringIO(reports.grades_table(results, parts, ["=cmd", "bo"]))))
    assert table[0] == ["student", "01_x:a", "01_x:b", "02_y:c", "02_y:why", "total", "pending", "maximum"]
    assert table[1] == ["'=cmd", "2", "0", "", "", "2", "0", "3"]
    assert table[2] == ["bo", "", "", "5", "pending", "5", "2", "7"]
    assert "Total: 2 / 3" in reports.feedback_text("=cmd", results[:1])
    feedback = reports.feedback_text("bo", results[1:])
    assert "why**: to be graded by hand, 2 points" in feedback and "Total: 5 / 7 (2 more to be graded by hand)" in feedback
    assert "Since" not in feedback, "a written answer is for the instructor's review, not the feedback"
    assert [reports.neutralize(c) for c in ("+1", "-x", "@a", "\tb", "ok")] == ["'+1", "'-x", "'@a", "'\tb", "ok"]


def test_written_answers_are_reviewed_and_graded_by_hand(tmp_path):
    part = Part("02_y", "why", 2.0, "", (), frozenset(), True, "Why?", "Because.")
    cell = nbformat.v4.new_markdown_cell("It works because ```` reasons.", metadata={"nbgrader": {"grade_id": "why"}})
    stub = nbformat.v4.new_markdown_cell("YOUR ANSWER HERE", metadata={"nbgrader": {"grade_id": "why"}})
    assert written_answer(part, [cell]).status == BY_HAND and written_answer(part, [stub]).status == FAILED
    assert written_answer(part, []).status == NOT_GRADABLE
    results = [ExerciseResult("bo", "02_y", [written_answer(part, [cell])]),
               ExerciseResult("al", "02_y", [written_answer(part, [stub])])]
    files = reports.manual_files(results, {"02_y": [part]})
    review = files["manual/answers.md"].decode()
    assert "**Question.**\n\nWhy?" in review and "Because." in review and "`````text\nIt works" in review
    assert "(failed: no answer was written)" in review
    sheet_notebook = nbformat.reads(files["manual/answers.ipynb"].decode(), as_version=4)
    nbformat.validate(sheet_notebook)
    sources = [c.source for c in sheet_notebook.cells]
    assert all(c.cell_type == "markdown" for c in sheet_notebook.cells)
    assert "**Question.**\n\nWhy?" in sources[1] and "Because." in sources[1]
    assert sources[2:] == ["### al (why)\n\n(failed: no answer was written)", "### bo (why)",
                           "It works because ```` reasons."], "each answer rendered in a cell of its own"
    sheet = tmp_path / "scores.csv"
    sheet.write_bytes(files["manual/scores.csv"])
    rows = list(csv.DictReader(io.StringIO(sheet.read_text())))
    assert [(r["student"], r["part"], r["points"], r["maximum"]) for r in rows] == [("bo", "why", "", "2")]
    sheet.write_text(sheet.read_text().replace("bo,02_y,why,,2,", "bo,02_y,why,1.5,2,=clear but short") +
                     "zed,02_y,why,1,2,\n")
    unmatched = reports.apply_manual_scores(results, reports.read_manual_scores(sheet))
    assert unmatched == ["zed 02_y:why"]
    assert (results[0].total, results[0].pending, results[0].results[0].message) == (1.5, 0, "=clear but short")
    assert "graded by hand, 1.5 / 2 points. =clear but short" in reports.feedback_text("bo", results[:1])
    sheet.write_text("student,exercise,part,points\nbo,02_y,why,3\n")
    with pytest.raises(ValueError, match="between 0 and 2"):
        reports.apply_manual_scores(results, reports.read_manual_scores(sheet))


def test_the_output_folder_must_be_empty_or_the_graders(tmp_path):
    (tmp_path / "mine.txt").write_text("the instructor's notes")
    with pytest.raises(ValueError, match="not empty"):
        reports.prepare_output(tmp_path)
    assert (tmp_path / "mine.txt").exists()


# ---------------------------------------------------------------------------------------------------------------
# Whole batches in the sandbox
# ---------------------------------------------------------------------------------------------------------------

def submit(folder: Path, notebooks: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in notebooks.items():
        (folder / f"{name}.ipynb").write_text(text)
    return folder


def wrong_minibatches() -> str:
    notebook = nbformat.read(SOLUTION, as_version=4)
    cell = next(c for c in notebook.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "minibatches-answer")
    cell.source = cell.source.replace("torch.randperm(x.shape[0], generator=generator)", "torch.arange(x.shape[0])")
    return nbformat.writes(notebook)


@needs_sandbox
@pytest.mark.grading
def test_three_shards_merge_into_exactly_what_one_run_writes(tmp_path):
    submissions = submit(tmp_path / "submissions", {"ann": SOLUTION.read_text(), "ben": EXERCISE.read_text(),
                                                    "=cy": wrong_minibatches(), "dee": "{broken"})
    whole = tmp_path / "whole"
    assert cli.main([str(SOLUTION), str(submissions), "-o", str(whole)]) == 0
    shards = [tmp_path / f"shard{k}" for k in (1, 2, 3)]
    for k, folder in enumerate(shards, start=1):
        assert cli.main([str(SOLUTION), str(submissions), "-o", str(folder), "--shard", f"{k}/3"]) == 0
    assert cli.merge_main([str(s) for s in reversed(shards)] + ["-o", str(tmp_path / "merged")]) == 0
    merged = tmp_path / "merged"
    assert (merged / "grades.csv").read_bytes() == (whole / "grades.csv").read_bytes()
    for feedback in (whole / "feedback").iterdir():
        assert (merged / "feedback" / feedback.name).read_bytes() == feedback.read_bytes()
    manifests = [json.loads((folder / "manifest.json").read_text()) for folder in (whole, merged)]
    for manifest in manifests:
        manifest.pop("logs")  # logs hold run times
    assert manifests[0] == manifests[1]
    grades = {row["student"]: row for row in csv.DictReader(io.StringIO((whole / "grades.csv").read_text()))}
    assert grades["'=cy"]["01_batch_sgd:minibatches"] == "0" and grades["'=cy"]["01_batch_sgd:linear-backward"] == "2"
    assert grades["dee"]["total"] == "0" and grades["ann"]["pending"] == "2"
    assert cli.merge_main([str(shards[0]), str(shards[1]), "-o", str(tmp_path / "partial")]) == 2


@needs_sandbox
@pytest.mark.grading
def test_without_a_sandbox_the_grades_say_so(tmp_path, capsys):
    submissions = submit(tmp_path / "submissions", {"ann": SOLUTION.read_text(), "cy": wrong_minibatches()})
    assert cli.main([str(SOLUTION), str(submissions), "-o", str(tmp_path / "out"), "--no-sandbox"]) == 0
    assert "WITHOUT a sandbox" in capsys.readouterr().out
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["sandboxed"] is False and "--no-sandbox" in manifest["sandbox"]
    grades = {row["student"]: row for row in csv.DictReader(io.StringIO((tmp_path / "out" / "grades.csv").read_text()))}
    ann = {key: float(value) for key, value in grades["ann"].items() if key != "student" and value != "pending"}
    assert grades["cy"]["01_batch_sgd:minibatches"] == "0"
    assert ann["pending"] == 2 and ann["total"] + ann["pending"] == ann["maximum"], "the solution: every automatic point"


def test_the_instructors_mistakes_stop_the_batch_with_status_2(tmp_path, capsys):
    assert cli.main([str(tmp_path / "nothing"), str(tmp_path)]) == 2
    assert "no solution notebook" in capsys.readouterr().err
    assert cli.main([str(SOLUTION), str(tmp_path / "missing")]) == 2
    submissions = submit(tmp_path / "submissions", {"ann": "{}"})
    assert cli.main([str(SOLUTION), str(submissions), "-o", str(submissions / "out")]) == 2
    assert "must not be inside the submissions folder" in capsys.readouterr().err
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    assert cli.main([str(SOLUTION), str(submissions), "-o", str(tmp_path / "busy")]) == 2
    assert "not empty" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main([str(SOLUTION), str(submissions), "--shard", "4/3"])


@needs_sandbox
@pytest.mark.grading
def test_a_solution_that_fails_its_own_checks_stops_the_batch(tmp_path, capsys):
    notebook = nbformat.read(SOLUTION, as_version=4)
    check = next(c for c in notebook.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "sgd-step")
    check.source = check.source.replace("reference=(start_a - 0.5 * slope,", "reference=(start_a + 0.5 * slope,")
    solutions = tmp_path / "solutions"
    solutions.mkdir()
    nbformat.write(notebook, solutions / SOLUTION.name)
    submissions = submit(tmp_path / "submissions", {"ann": SOLUTION.read_text()})
    assert cli.main([str(solutions), str(submissions), "-o", str(tmp_path / "out")]) == 2
    assert "part 'sgd-step': the solution fails its own check 'a step on a, none on b'" in capsys.readouterr().err
    assert not (tmp_path / "out" / "grades.csv").exists()


@pytest.mark.grading
def test_the_graders_own_failure_is_tried_again_then_costs_that_notebook_only(tmp_path, monkeypatch):
    from course_lib.grading import batch

    calls, grade_submission = [], batch.grade_submission

    def flaky(submission, *args):
        calls.append(submission.student)
        if submission.student == "ben" or calls.count(submission.student) == 1:
            raise OSError("the grader's own trouble")
        return grade_submission(submission, *args)

    monkeypatch.setattr(batch, "grade_submission", flaky)
    submissions = submit(tmp_path / "submissions", {"ann": SOLUTION.read_text(), "ben": SOLUTION.read_text()})
    assert cli.main([str(SOLUTION), str(submissions), "-o", str(tmp_path / "out"), "--no-sandbox"]) == 0
    assert sorted(calls) == ["ann", "ann", "ben", "ben"]
    data = json.loads((tmp_path / "out" / "results.json").read_text())
    statuses = {r["student"]: {p["status"] for p in r["parts"]} for r in data["results"]}
    assert statuses == {"ann": {PASSED, BY_HAND}, "ben": {NOT_GRADABLE}}
    log = (tmp_path / "out" / "logs" / "ben.log").read_text()
    assert "attempt 1 failed" in log and "attempt 2 failed" in log and "the grader's own trouble" in log


# ---------------------------------------------------------------------------------------------------------------
# The resource budget, the seccomp filter, the output swap, what a killed grader leaves
# ---------------------------------------------------------------------------------------------------------------

def test_each_runs_memory_is_fitted_into_the_jobs_limit():
    from course_lib.grading.budget import GRADER_RESERVE, fit_memory

    gib = sandbox.GiB
    assert fit_memory(4 * gib, 2, None) == 4 * gib, "no job limit: the memory asked for"
    assert fit_memory(4 * gib, 2, 5 * gib) == 2 * gib == (5 * gib - GRADER_RESERVE) // 2
    assert fit_memory(4 * gib, 1, 64 * gib) == 4 * gib, "never more than asked"
    assert fit_memory(4 * gib, 16, 2 * gib) == 256 << 20, "never less than 256 MiB"


@pytest.mark.skipif(sys.platform != "linux" or os.uname().machine not in sandbox.SYSCALLS,
                    reason="the seccomp filter is written for Linux on x86_64 and aarch64")
def test_the_seccomp_filter_refuses_new_user_namespaces_and_watches_and_nothing_else():
    script = """
import ctypes, os, subprocess, sys, threading
from course_lib.grading import sandbox
libc = ctypes.CDLL(None, use_errno=True)
assert libc.prctl(38, 1, 0, 0, 0) == 0
assert sandbox.forbid_namespaces_and_watches(libc)
def errno_of(result):
    return 0 if result >= 0 else ctypes.get_errno()
print("unshare-user", errno_of(libc.unshare(0x10000000)))
print("unshare-user-mount", errno_of(libc.unshare(0x10000000 | 0x00020000)))
print("setns", errno_of(libc.setns(-1, 0)))
print("clone3", errno_of(libc.syscall(435, 0, 0)))
print("inotify", errno_of(libc.inotify_init1(0)))
print("unshare-nothing", errno_of(libc.unshare(0)))
thread = threading.Thread(target=print, args=("thread", 0)); thread.start(); thread.join()
print("child", subprocess.run([sys.executable, "-c", "import torch; print(int(torch.ones(3).sum()))"],
                              capture_output=True, text=True).stdout.strip())
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    seen = dict(line.split() for line in done.stdout.splitlines())
    assert seen == {"unshare-user": "1", "unshare-user-mount": "1", "setns": "1", "clone3": "38", "inotify": "38",
                    "unshare-nothing": "0", "thread": "0", "child": "3"}


def test_a_failed_write_leaves_the_earlier_output_as_it_was(tmp_path):
    output = tmp_path / "grading"
    part = Part("01_x", "a", 1.0, "", (), frozenset())
    results = [ExerciseResult("al", "01_x", [PartResult(part, PASSED)])]
    reports.write_outputs(output, results, {"01_x": [part]}, ["al"], {"logs/al.log": b"ok"}, {"shard": None})
    before = {p.relative_to(output): p.read_bytes() for p in output.rglob("*") if p.is_file()}
    reports.prepare_output(output)
    with pytest.raises(OSError):  # a log name no file system takes: the write fails half-way
        reports.write_outputs(output, [], {"01_x": [part]}, ["al"], {"logs/al.log": b"new", f"logs/{'x' * 300}.log": b""},
                              {"shard": None})
    assert {p.relative_to(output): p.read_bytes() for p in output.rglob("*") if p.is_file()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grading"], "no half-written folder is left beside it"
    dead = subprocess.Popen(["true"])
    dead.wait()
    (tmp_path / f".grading.new-{dead.pid}" / "feedback").mkdir(parents=True)  # what a killed grader left
    reports.write_outputs(output, results, {"01_x": [part]}, ["al"], {"logs/al.log": b"ok"}, {"shard": None})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grading"]
    (output / "feedback" / "mine.md").write_text("the instructor's own file")
    with pytest.raises(ValueError, match=r"holds feedback/mine.md, which no course-grade run wrote"):
        reports.prepare_output(output)


def test_a_killed_graders_private_folder_and_cgroups_are_removed_by_the_next_run(tmp_path, monkeypatch):
    from course_lib.grading import batch, budget

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    dead = subprocess.Popen(["true"])
    dead.wait()
    (tmp_path / f"course-grade-{dead.pid}-abc" / "run0-0").mkdir(parents=True)
    (tmp_path / f"course-grade-{os.getpid()}-def").mkdir()
    group, why = budget.create("stale", budget.Budget(memory=256 << 20, cpus=1.0, tasks=16))
    if group is not None:  # pretend a dead grader made it: the name carries the grader's pid
        sleeper = subprocess.Popen(["sleep", "300"])
        group.add(sleeper.pid)
        for controller, folder in group.folders.items():
            folder.rename(folder.with_name(folder.name.replace(str(os.getpid()), str(dead.pid), 1)))
    removed = batch.clean_stale_runs()
    assert str(tmp_path / f"course-grade-{dead.pid}-abc") in removed
    assert not (tmp_path / f"course-grade-{dead.pid}-abc").exists() and (tmp_path / f"course-grade-{os.getpid()}-def").exists()
    if group is not None:
        assert f"course-grade-{dead.pid}-stale" in removed and sleeper.wait(timeout=30) == -9
        assert not any(f.with_name(f.name.replace(str(os.getpid()), str(dead.pid), 1)).exists()
                       for f in group.folders.values())


def test_a_runs_cgroup_stops_it_at_its_memory_and_kills_all_it_started():
    from course_lib.grading import budget

    group, why = budget.create("test-memory", budget.Budget(memory=128 << 20, cpus=1.0, tasks=64))
    if group is None:
        pytest.skip(f"no cgroup can be made here: {why}")
    try:
        hog = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.5); x = bytearray(512 << 20)"])
        group.add(hog.pid)
        assert hog.wait(timeout=60) == -9, "the kernel's OOM killer ends the run inside its own group"
        assert group.peak_memory() <= 128 << 20
        sleeper = subprocess.Popen(["sleep", "300"])
        group.add(sleeper.pid)
        assert group.pids() == [sleeper.pid]
    finally:
        group.remove()
    assert sleeper.wait(timeout=30) == -9 and not any(f.exists() for f in group.folders.values())


def test_the_runners_pytest_leaves_out_only_a_checker_no_notebook_schema_uses():
    """The runner starts pytest without jsonschema's IRI checker (1.5 s of every graded notebook): nbformat's schemas
    name no IRI format, and a notebook is still validated, a broken one still refused."""
    from course_lib.grading import runner

    schemas = Path(nbformat.__file__).parent.rglob("*.json")
    assert not [path for path in schemas if '"format": "iri' in path.read_text().replace('":"', '": "')]
    preamble = runner.PYTEST.split("import pytest")[0].replace("; ", "\n")
    check = (preamble + "import nbformat\n"
             "nbformat.validate(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell('1')]))\n"
             "broken = nbformat.v4.new_notebook(); broken.cells = [{'cell_type': 'code'}]\n"
             "try:\n    nbformat.validate(broken)\nexcept nbformat.ValidationError:\n    print('refused')\n"
             "print('rfc3987_syntax' in sys.modules and sys.modules['rfc3987_syntax'] is None)")
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["refused", "True"]
    version = subprocess.run([sys.executable, "-c", runner.PYTEST, "--version"], capture_output=True, text=True)
    assert version.returncode == 0 and "pytest" in version.stdout + version.stderr
