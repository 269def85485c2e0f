"""One batch of exercise 01 with every honest mistake and every attack of `tests/grading_fixtures.py`, graded in
the sandbox: each student gets the grade they deserve, the feedback holds only the instructor's words, no file
outside the grader's own folders changes, and no process a submission started is alive afterwards."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import shutil
import tempfile
import uuid
from pathlib import Path

import nbformat
import pytest

import course_lib
from course_lib.grading import cli, reports, runner, sandbox
from course_lib.grading.verdicts import exercise_parts, hidden_lines
from grading_fixtures import (ALL, EXERCISE, NONE, SECRET_ENV, SOLUTION, adversarial_fixtures, honest_fixtures,
                              leak_fixtures_text, robustness_fixtures, structural_fixtures_text)

SANDBOX, WHY = sandbox.available()
pytestmark = [pytest.mark.grading, pytest.mark.skipif(not SANDBOX, reason=f"no sandbox here: {WHY}")]
PARTS = {p.part_id: p.points for p in exercise_parts(nbformat.read(SOLUTION, as_version=4), SOLUTION.stem) if not p.manual}
MAXIMUM = sum(p.points for p in exercise_parts(nbformat.read(SOLUTION, as_version=4), SOLUTION.stem))
LIBRARY = Path(course_lib.__file__).resolve().parent


def digest_tree(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and not p.is_symlink() and "__pycache__" not in p.parts}


def answer_code() -> str:
    """The solution's answers as one block of code (what the environment spy hopes to find)."""
    from course_lib.exercises import solution_texts
    import textwrap
    notebook = nbformat.read(SOLUTION, as_version=4)
    blocks = []
    for cell in notebook.cells:
        if cell.get("metadata", {}).get("nbgrader", {}).get("solution") and solution_texts(cell.source) \
                and cell.source.startswith("def "):
            header = cell.source.split("### BEGIN SOLUTION")[0]
            blocks.append(header + textwrap.indent(textwrap.dedent(solution_texts(cell.source)[0]), "    "))
    return "import torch\n" + "\n".join(blocks)


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    base = tmp_path_factory.mktemp("batch")
    solutions, submissions, output = base / "solutions", base / "submissions", base / "output"
    solutions.mkdir()
    submissions.mkdir()
    shutil.copy(SOLUTION, solutions / SOLUTION.name)
    token = f"attack-{uuid.uuid4().hex}"
    paths = {"solutions": str(solutions), "submissions": str(submissions), "output": str(output),
             "course_lib": str(LIBRARY)}
    texts = {**leak_fixtures_text(), **structural_fixtures_text()}
    fixtures = honest_fixtures() + adversarial_fixtures(paths, token) + robustness_fixtures()
    expected = {}
    for fixture in fixtures:
        name = fixture.entry if fixture.entry is not None else fixture.student.encode()
        path = Path(os.fsdecode(bytes(submissions) + b"/" + name + b".ipynb"))
        if fixture.student == "latin":
            path.write_bytes(SOLUTION.read_text().replace("Batch", "Bätch").encode("latin-1", errors="replace"))
        elif fixture.data is not None:
            path.write_bytes(fixture.data)
        else:
            path.write_text(fixture.text if fixture.text is not None else texts[fixture.student])
        expected[fixture.student] = fixture.loses
    # Entries that are not plain notebooks
    os.symlink(solutions / SOLUTION.name, submissions / "linked.ipynb")
    os.mkfifo(submissions / "piped.ipynb")
    shutil.copy(SOLUTION, submissions / "dup.ipynb")
    (submissions / "dup").mkdir()
    shutil.copy(EXERCISE, submissions / "dup" / SOLUTION.name)
    shutil.copy(SOLUTION, submissions / "=HYPERLINK(1).ipynb")
    (submissions / "huge.ipynb").write_bytes(SOLUTION.read_bytes() + b" " * (51 << 20))
    (submissions / ".ipynb_checkpoints").mkdir()
    expected.update({"linked": ALL, "piped": ALL, "dup": ALL, "=HYPERLINK(1)": NONE, "huge": ALL})
    watched = {"solutions": solutions, "submissions": submissions, "course_lib": LIBRARY}
    before = {name: digest_tree(folder) for name, folder in watched.items()}
    # The grader's private folder goes into a folder of this batch's own, and its sandboxes run as the users of this
    # process' range: other grading runs on the machine (parallel test workers) cannot be mistaken for this one's.
    # (Not under pytest's own temporary folder: a path with "pytest" in it would make the attack that runs
    # `pkill -f pytest` kill its own kernel, through the kernel's command line.)
    temporary = Path(tempfile.mkdtemp(prefix="grading-batch-test-"))
    old_secret, old_tempdir = os.environ.get(SECRET_ENV), tempfile.tempdir
    os.environ[SECRET_ENV] = answer_code()
    tempfile.tempdir = str(temporary)
    try:
        code = cli.main([str(solutions), str(submissions), "-o", str(output), "-j", "2", "--cell-timeout", "20",
                         "--timeout", "240"])
    finally:
        tempfile.tempdir = old_tempdir
        if old_secret is None:
            os.environ.pop(SECRET_ENV)
        else:
            os.environ[SECRET_ENV] = old_secret
    after = {name: digest_tree(folder) for name, folder in watched.items()}
    first_user = runner.UID_BASE + (os.getpid() % 100_000) * 10_000  # the users runner gives this process' sandboxes
    yield dict(code=code, expected=expected, output=output, before=before, after=after, token=token,
               temporary=temporary, users=(first_user, first_user + 10_000), fixtures={f.student: f for f in fixtures})
    shutil.rmtree(temporary, ignore_errors=True)


def read_grades(output: Path) -> dict[str, dict[str, str]]:
    with open(output / "grades.csv", newline="") as handle:
        return {reports.restore(row["student"]): row for row in csv.DictReader(handle)}


def test_every_submission_gets_the_grade_it_deserves(batch):
    assert batch["code"] == 0, "students' failures never make the grader fail"
    grades = read_grades(batch["output"])
    got = {}
    for student, row in grades.items():
        got[student] = {part for part in PARTS if row[f"01_batch_sgd:{part}"] != f"{PARTS[part]:g}"}
    wrong = {student: (sorted(got.get(student, "missing")), sorted(loses))
             for student, loses in batch["expected"].items() if got.get(student) != set(loses)}
    assert wrong == {}, f"students whose grade is not the one they deserve (got lost parts, deserved): {wrong}"
    assert len(batch["fixtures"]) >= 45 and sum(s.startswith(("forge", "spy", "vandal")) for s in got) >= 30


def test_totals_and_maxima_count_only_what_was_handed_in(batch):
    for student, row in read_grades(batch["output"]).items():
        scores = [float(row[f"01_batch_sgd:{part}"]) for part in PARTS]
        assert float(row["total"]) == sum(scores) and float(row["maximum"]) == MAXIMUM
        feedback = (batch["output"] / "feedback" / f"{student}.md").read_text()
        assert f"Total: {row['total']} / {MAXIMUM:g}" in feedback


def normalized(text: str) -> str:
    return re.sub(r"\s+", " ", text.replace("\u00a0", " ")).strip()


def test_feedback_holds_only_the_instructors_words(batch):
    hidden = {normalized(line) for line in hidden_lines(exercise_parts(nbformat.read(SOLUTION, as_version=4), "01"))}
    feedback = {p.stem: p.read_text() for p in (batch["output"] / "feedback").glob("*.md")}
    for student, text in feedback.items():
        flat = normalized(text)
        assert [line for line in hidden if line in flat] == [], f"{student}'s feedback quotes hidden tests"
        assert "def linear_backward" not in text and "Traceback" not in text
    assert "a visible check failed: grad_x must be (B, D_in), grad_w (D_out, D_in) and grad_b (D_out,)" in feedback["carol"]
    assert "exceeded the time limit of 20 s" in feedback["eve"]
    assert "code cell(s) that are not graded were cut short while they ran" in feedback["mallory"]
    assert "not a readable notebook" in feedback["frank"] and "not a readable notebook" in feedback["empty"]
    assert "the graded cell 'minibatches' is missing" in feedback["heidi"]
    assert "stopped with NameError" in feedback["ivan"]
    assert "1 code cell(s) that are not graded raised an exception" in feedback["vandal_leak_nbsp"], \
        "an ungraded cell's error: not even its class is named"
    assert "raised an exception" in feedback["vandal_leak_class"], "a class the student made up is not named"
    assert "a negative lr must raise ValueError" in feedback["vandal_leak_answer"]
    assert feedback["vandal_leak_class"].count("raised an exception") == 1, "each note once"
    assert "the copy after your answer" in feedback["paste_check_above"]
    assert "symbolic link" in feedback["linked"] and "not a regular file" in feedback["piped"]
    assert "two entries claim" in feedback["dup"] and "larger than 50 MB" in feedback["huge"]


def test_no_file_outside_the_graders_folders_changed(batch):
    assert batch["after"] == batch["before"], "a solution, a submission or course_lib was modified"
    manifest = json.loads((batch["output"] / "manifest.json").read_text())
    written = {str(p.relative_to(batch["output"])) for p in batch["output"].rglob("*") if p.is_file()}
    assert written == {*manifest["files"], *manifest["logs"], "manifest.json"}, "only the grader writes the output"
    for name, digest in {**manifest["files"], **manifest["logs"]}.items():
        assert hashlib.sha256((batch["output"] / name).read_bytes()).hexdigest() == digest
    assert manifest["sandboxed"] is True and manifest["submissions"]["alice.ipynb"] == hashlib.sha256(
        SOLUTION.read_bytes()).hexdigest()
    assert list(batch["temporary"].glob("course-grade-*")) == [], "the grader's private folder is removed"


def test_no_process_started_by_a_submission_is_alive(batch):
    survivors = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if batch["token"] in text or str(batch["temporary"]) in text:
            survivors.append(text[:200])
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            uid = int(next(line for line in status.read_text().splitlines() if line.startswith("Uid:")).split()[1])
        except (OSError, StopIteration):
            continue
        if batch["users"][0] <= uid < batch["users"][1]:
            survivors.append(f"pid {status.parent.name} of sandbox user {uid}")
    assert survivors == []


def test_the_csv_cannot_start_a_formula(batch):
    text = (batch["output"] / "grades.csv").read_text()
    assert "\n'=HYPERLINK(1)," in text and "\n=HYPERLINK" not in text


def notes(feedback: str) -> list[str]:
    return feedback.split("Notes:", 1)[1].split("\n\n")[0].strip().splitlines() if "Notes:" in feedback else []


def test_a_secret_spelled_in_ungraded_cells_cannot_be_read_back(batch):
    """Two students whose 160 ungraded cells raise exceptions chosen to spell two different secrets get the same
    notes: nothing of the choice reaches the feedback."""
    first, second = ((batch["output"] / "feedback" / f"{name}.md").read_text() for name in ("covert_a", "covert_b"))
    first_extra = sum(c.cell_type == "code" for c in nbformat.read(SOLUTION, as_version=4).cells) + 1
    assert notes(first) == notes(second) == [
        f"- more than 10 code cell(s) that are not graded raised an exception; the first is code cell {first_extra}"]
    assert first.replace("covert\\_a", "covert\\_b") == second


def test_names_are_escaped_and_never_forge_markdown(batch):
    output = batch["output"]
    review = (output / "manual" / "answers.md").read_text()
    for text in [review, *(p.read_text() for p in (output / "feedback").glob("*.md"))]:
        assert re.search(r"(?<!\\)<img", text) is None, "a student's name never reaches Markdown as HTML"
        assert not any(line.startswith(("# Forged", "**Model answer.** forged")) for line in text.splitlines())
    assert review.count("**Model answer.**") == 1, "one question, one model answer"
    latin = next(p for p in (output / "feedback").glob("k03_m_ller~*.md")).read_text()
    assert "(submitted as k03\\_m\\\\xfcller)" in latin, "the original name, escaped, beside the identifier"
    rows = list(csv.reader((output / "grades.csv").open()))
    assert ["''vic"] == [row[0] for row in rows if row[0].endswith("vic")], "an apostrophe kept, and one added"
    scores = {reports.restore(row["student"]) for row in csv.DictReader((output / "manual" / "scores.csv").open())}
    folded = {s for s in batch["fixtures"] if s.startswith(("kate~", "\u212aATE~"))}
    assert len(folded) == 2 and scores >= {"'vic", *folded}, "both names that fold together are graded, apart"


def test_what_used_to_stop_the_batch_costs_only_its_own_points(batch):
    feedback = {p.stem: p.read_text() for p in (batch["output"] / "feedback").glob("*.md")}
    assert "more than 2000000 lists and objects" not in feedback["many_lists"], "the reason is the grader's class name"
    assert "not a readable notebook (ValueError)" in feedback["many_lists"]
    assert "exceeded the time limit of 20 s" in feedback["vandal_printer"], \
        "a cell that ignores its interrupt and keeps printing is stopped at the cell limit, not the notebook's"
    assert "(an internal error" not in "".join(feedback.values()), "no submission made the grader itself fail"
    log = (batch["output"] / "logs" / "forge_huge_int.log").read_text()
    assert "judging this submission failed" not in log
