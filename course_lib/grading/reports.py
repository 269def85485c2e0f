"""What the grader writes: the grade table, each student's feedback, the written answers to review, the logs, and a
manifest of them all.

    OUTPUT/grades.csv              one row per student, one column per exercise:part, total, pending, maximum
    OUTPUT/feedback/<student>.md   each exercise handed in: each part, its points, why it failed; notes
    OUTPUT/manual/answers.md       every written answer, question by question, with the model answer (instructor)
    OUTPUT/manual/answers.ipynb    the same as a notebook: JupyterLab renders every answer's Markdown and formulas
    OUTPUT/manual/scores.csv       one row per written answer to fill in (points, comment): give it back with
                                   ``course-grade ... --manual OUTPUT/manual/scores.csv``
    OUTPUT/logs/<student>.log      pytest's output for each exercise, for the instructor
    OUTPUT/solution-logs/<NN>.log  the solution's reference run
    OUTPUT/results.json            every verdict, as data (what --manual and course-grade-merge start from)
    OUTPUT/manifest.json           how the grades were made (sandboxed or not, settings, the solutions' and the
                                   submissions' SHA-256) and the SHA-256 of every file above

Everything is written by the grader after the runs, into a folder no sandbox sees. An exercise a student did not
hand in is blank in ``grades.csv`` and counts neither in the total nor in the maximum, which equal the
feedback's. A written answer not graded yet reads ``pending`` and its points are in the ``pending`` column, not
lost. A cell of ``grades.csv`` that starts with ``= + - @`` (or a tab or carriage return) is prefixed with an
apostrophe, so a spreadsheet shows a name instead of running it as a formula; so is a cell that starts with an
apostrophe itself, so that reading a name back (`restore`) removes exactly what was added.

Every string a student controls (their name) is escaped where it appears in Markdown (`markdown_text`), so that a
name can neither add a heading nor carry HTML. A student whose feedback cannot be rendered still gets a feedback
file saying so; the others are not affected.

The outputs are written into a new folder beside ``OUTPUT`` and swapped in only when complete (`swap_in`): a run
that fails, or is killed, leaves the earlier output as it was.

`merge` joins the outputs of the shards of one batch (``--shard K/N``) into what one run would have written.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import shutil
import string
from pathlib import Path

import nbformat

from course_lib.grading.verdicts import (BY_HAND, FAILED, GRADED_BY_HAND, NOT_GRADABLE, PASSED, ExerciseResult, Part,
                                         PartResult, grade_by_hand)

MANIFEST = "manifest.json"
RESULTS = "results.json"
FORMAT = 2
MARKS = {PASSED: "passed", FAILED: "failed", NOT_GRADABLE: "not gradable", BY_HAND: "to be graded by hand",
         GRADED_BY_HAND: "graded by hand"}


def neutralize(cell: str) -> str:
    """A CSV cell that a spreadsheet will not run as a formula (OWASP's CSV-injection rule); a cell that starts
    with an apostrophe gets one too, so that `restore` can tell an added apostrophe from a name's own."""
    return "'" + cell if cell[:1] in ("=", "+", "-", "@", "\t", "\r", "'") else cell


def restore(cell: str) -> str:
    """The text `neutralize` was given: ``restore(neutralize(x)) == x`` for every ``x``."""
    return cell[1:] if cell.startswith("'") else cell


def markdown_text(text: str) -> str:
    """``text`` shown literally in Markdown: every ASCII punctuation character backslash-escaped (no heading, link,
    emphasis or HTML tag can start), line breaks and other control characters written as escapes."""
    out = []
    for character in text:
        if character in string.punctuation:
            out.append("\\" + character)
        elif not character.isprintable():
            out.append(repr(character)[1:-1].replace("\\", "\\\\"))
        else:
            out.append(character)
    return "".join(out)


def _number(x: float) -> str:
    return f"{x:g}"


def _csv(rows: list[list[str]]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue()


# ----------------------------------------------------------------------------------------------------------
# Rendering
# ----------------------------------------------------------------------------------------------------------

def grades_table(results: list[ExerciseResult], parts: dict[str, list[Part]], students: list[str]) -> str:
    """The CSV text of the grade table."""
    columns = [p for exercise in sorted(parts) for p in parts[exercise]]
    rows = [["student", *[p.column for p in columns], "total", "pending", "maximum"]]
    for student in students:
        mine = {r.exercise: r for r in results if r.student == student}
        verdicts = {pr.part.column: pr for r in mine.values() for pr in r.results}
        row = [neutralize(student)]
        for part in columns:
            verdict = verdicts.get(part.column)
            row.append("" if verdict is None else "pending" if verdict.status == BY_HAND else _number(verdict.score))
        row += [_number(sum(r.total for r in mine.values())), _number(sum(r.pending for r in mine.values())),
                _number(sum(r.maximum for r in mine.values()))]
        rows.append(row)
    return _csv(rows)


def feedback_text(student: str, results: list[ExerciseResult], original: str | None = None) -> str:
    """A student's feedback in Markdown: only the grader's and the instructor's words (and the student's name,
    escaped; ``original`` is the submitted name when the identifier differs from it)."""
    lines = [f"# Feedback for {markdown_text(student)}", ""]
    if original is not None:
        lines += [f"(submitted as {markdown_text(original)})", ""]
    for result in sorted(results, key=lambda r: r.exercise):
        pending = f" ({_number(result.pending)} more to be graded by hand)" if result.pending else ""
        lines += [f"## {result.exercise}: {_number(result.total)} / {_number(result.maximum)} points{pending}", ""]
        for pr in result.results:
            if pr.status == BY_HAND:
                lines.append(f"- **{pr.part.part_id}**: to be graded by hand, {_number(pr.part.points)} points")
                continue
            line = f"- **{pr.part.part_id}**: {MARKS[pr.status]}, {_number(pr.score)} / {_number(pr.part.points)} points"
            lines.append(line + (f". {pr.message}" if pr.message else ""))
        if result.notes:
            lines += ["", "Notes:", *[f"- {note}" for note in result.notes]]
        lines.append("")
    total, pending = sum(r.total for r in results), sum(r.pending for r in results)
    lines += [f"Total: {_number(total)} / {_number(sum(r.maximum for r in results))}"
              + (f" ({_number(pending)} more to be graded by hand)" if pending else ""), ""]
    return "\n".join(lines)


def _fenced(text: str) -> str:
    """``text`` in a code fence longer than any run of backticks inside it (a student cannot close it)."""
    ticks = 3
    while "`" * ticks in text:
        ticks += 1
    return f"{'`' * ticks}text\n{text}\n{'`' * ticks}"


def manual_files(results: list[ExerciseResult], parts: dict[str, list[Part]]) -> dict[str, bytes]:
    """The instructor's review of the written answers (Markdown, and a notebook that renders them) and the table to
    fill in (CSV), for the questions of the exercises handed in; empty when none of them has a written answer."""
    handed_in = {(r.exercise, pr.part.part_id) for r in results for pr in r.results}
    manual = [p for exercise in sorted(parts) for p in parts[exercise] if p.manual and (exercise, p.part_id) in handed_in]
    if not manual:
        return {}
    review = ["# Written answers to grade by hand", "",
              "Fill in `scores.csv` beside this file (points and a comment per row), then give it back with "
              "`course-grade SOLUTIONS SUBMISSIONS -o OUTPUT --manual OUTPUT/manual/scores.csv`.", ""]
    rows = [["student", "exercise", "part", "points", "maximum", "comment"]]
    for part, answers in _written_answers(results, manual):
        review += [f"## {part.exercise}: {part.part_id} ({_number(part.points)} points)", "",
                   "**Question.**", "", part.question.strip() or "(no question text)", "",
                   "**Model answer.**", "", part.model_answer or "(none)", ""]
        for result, verdict in answers:
            review += [f"### {markdown_text(result.student)}", ""]
            if verdict.status in (BY_HAND, GRADED_BY_HAND):
                review += [_fenced(verdict.answer), ""]
                given = "" if verdict.status == BY_HAND else _number(verdict.given)
                comment = verdict.message if verdict.status == GRADED_BY_HAND else ""
                rows.append([neutralize(result.student), part.exercise, part.part_id, given, _number(part.points),
                             neutralize(comment)])
            else:
                review += [f"({MARKS[verdict.status]}: {verdict.message})", ""]
    return {"manual/answers.md": "\n".join(review).encode("utf-8", "replace"),
            "manual/answers.ipynb": _review_notebook(results, manual).encode("utf-8", "replace"),
            "manual/scores.csv": _csv(rows).encode("utf-8", "replace")}


def _written_answers(results: list[ExerciseResult], manual: list[Part]):
    """Question by question, each student's verdict on it, by student name: ``(part, [(result, verdict), ...])``."""
    by_student = sorted(results, key=lambda r: r.student)
    for part in manual:
        verdicts = [(result, next((pr for pr in result.results if pr.part.column == part.column), None))
                    for result in by_student]
        yield part, [(result, verdict) for result, verdict in verdicts if verdict is not None]


def _review_notebook(results: list[ExerciseResult], manual: list[Part]) -> str:
    """The written answers as a notebook of Markdown cells, which JupyterLab renders (formulas included) where the
    Markdown file shows raw text: per question a heading, the question and the model answer, then per student a
    heading cell and their answer in a cell of its own.

    A student's answer is rendered but stays in its own cell: it cannot change the headings around it, and JupyterLab
    shows a notebook it has not signed as untrusted, so any HTML in an answer is sanitized (no script runs).
    """
    cells = [nbformat.v4.new_markdown_cell(
        "# Written answers to grade by hand\n\nThe students' answers rendered as Markdown with their formulas; "
        "`answers.md` beside this notebook shows them verbatim. Fill in `scores.csv` (points and a comment per row).")]
    for part, answers in _written_answers(results, manual):
        cells.append(nbformat.v4.new_markdown_cell(
            f"## {part.exercise}: {part.part_id} ({_number(part.points)} points)\n\n**Question.**\n\n"
            f"{part.question.strip() or '(no question text)'}\n\n**Model answer.**\n\n{part.model_answer or '(none)'}"))
        for result, verdict in answers:
            if verdict.status in (BY_HAND, GRADED_BY_HAND):
                cells += [nbformat.v4.new_markdown_cell(f"### {markdown_text(result.student)} ({part.part_id})"),
                          nbformat.v4.new_markdown_cell(verdict.answer or "(empty)")]
            else:
                cells.append(nbformat.v4.new_markdown_cell(
                    f"### {markdown_text(result.student)} ({part.part_id})\n\n({MARKS[verdict.status]}: "
                    f"{markdown_text(verdict.message)})"))
    for index, cell in enumerate(cells):  # ids by position, not at random: the same batch writes the same bytes
        cell.id = f"cell-{index}"
    return nbformat.writes(nbformat.v4.new_notebook(cells=cells))


# ----------------------------------------------------------------------------------------------------------
# Verdicts as data
# ----------------------------------------------------------------------------------------------------------

def results_data(results: list[ExerciseResult], parts: dict[str, list[Part]]) -> dict:
    """Every verdict as JSON-ready data, with the parts needed to render them again."""
    return {"parts": {exercise: [{"part_id": p.part_id, "points": p.points, "manual": p.manual,
                                  "question": p.question, "model_answer": p.model_answer} for p in listed]
                      for exercise, listed in sorted(parts.items())},
            "results": [{"student": r.student, "exercise": r.exercise, "notes": r.notes,
                         "parts": [{"part_id": pr.part.part_id, "status": pr.status, "message": pr.message,
                                    "given": pr.given, "answer": pr.answer} for pr in r.results]}
                        for r in sorted(results, key=lambda r: (r.student, r.exercise))]}


def load_results(data: dict, parts: dict[str, list[Part]] | None = None) -> tuple[list[ExerciseResult], dict]:
    """The verdicts of `results_data`; ``parts`` (from the solutions) when known, else rebuilt from the data."""
    if parts is None:
        parts = {exercise: [Part(exercise, p["part_id"], p["points"], "", (), frozenset(), p["manual"], p["question"],
                                 p["model_answer"]) for p in listed] for exercise, listed in data["parts"].items()}
    by_id = {(p.exercise, p.part_id): p for listed in parts.values() for p in listed}
    results = []
    for item in data["results"]:
        result = ExerciseResult(item["student"], item["exercise"], notes=list(item["notes"]))
        result.results = [PartResult(by_id[(item["exercise"], p["part_id"])], p["status"], p["message"], p["given"],
                                     p["answer"]) for p in item["parts"]]
        results.append(result)
    return results, parts


def read_manual_scores(path: Path) -> dict[tuple[str, str, str], tuple[float, str]]:
    """The instructor's filled-in scores.csv: (student, exercise, part) → (points, comment); blank rows skipped."""
    try:
        rows = list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"cannot read the manual scores {path}: {error}") from None
    scores = {}
    for number, row in enumerate(rows, start=2):
        if not {"student", "exercise", "part", "points"} <= set(row):
            raise ValueError(f"{path}: the columns must be student, exercise, part, points, maximum, comment")
        if not (row["points"] or "").strip():
            continue
        try:
            points = float(row["points"])
        except ValueError:
            raise ValueError(f"{path} line {number}: points must be a number, got {row['points']!r}") from None
        scores[(restore(row["student"]), row["exercise"], row["part"])] = (points, restore(row.get("comment") or ""))
    return scores


def apply_manual_scores(results: list[ExerciseResult], scores: dict) -> list[str]:
    """Give each written answer its instructor's points; return the rows that match no written answer."""
    used = set()
    for result in results:
        for verdict in result.results:
            key = (result.student, result.exercise, verdict.part.part_id)
            if key in scores and verdict.part.manual and verdict.status in (BY_HAND, GRADED_BY_HAND):
                grade_by_hand(verdict, *scores[key])
                used.add(key)
    return [f"{s} {e}:{p}" for s, e, p in sorted(set(scores) - used)]


# ----------------------------------------------------------------------------------------------------------
# The output folder
# ----------------------------------------------------------------------------------------------------------

def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _listed(output: Path) -> dict | None:
    try:
        listed = json.loads((output / MANIFEST).read_text())
        return listed if isinstance(listed.get("files"), dict) and isinstance(listed.get("logs"), dict) else None
    except (OSError, ValueError, AttributeError):
        return None


def previous_run(output: Path, inputs: dict) -> tuple[dict, dict[str, bytes]] | None:
    """The verdicts and logs of an earlier run in ``output`` made from exactly ``inputs`` (the same solutions,
    submissions, settings and shard), or None: with them, ``--manual`` does not run anything again."""
    listed = _listed(output)
    if listed is None or any(listed.get(key) != value for key, value in inputs.items()):
        return None
    try:
        data = json.loads((output / RESULTS).read_text())
        logs = {name: (output / name).read_bytes() for name in listed["logs"]}
    except (OSError, ValueError):
        return None
    return data, logs


def prepare_output(output: Path) -> None:
    """Check that ``output`` may be replaced: absent, an empty folder, or an earlier course-grade output that holds
    only the files its manifest lists (and their folders). Nothing is deleted here; see `swap_in`."""
    if output.is_symlink() or (output.exists() and not output.is_dir()):
        raise ValueError(f"output {output} exists and is not a folder")
    if not output.exists() or not any(output.iterdir()):
        return
    listed = _listed(output)
    if listed is None:
        raise ValueError(f"output folder {output} is not empty and holds no course-grade manifest: "
                         "choose an empty or new folder")
    known = {MANIFEST, *listed["files"], *listed["logs"]}
    for path in sorted(output.rglob("*")):
        name = path.relative_to(output).as_posix()
        if path.is_symlink() or (not path.is_dir() and name not in known):
            raise ValueError(f"output folder {output} holds {name}, which no course-grade run wrote: move it away "
                             "or choose another folder")


def swap_in(staged: Path, output: Path) -> None:
    """Put the complete new output ``staged`` (a folder beside ``output``) in the place of ``output``: the earlier
    output is renamed aside, the new one renamed in, and only then the earlier one deleted."""
    aside = output.with_name(f".{output.name}.old-{os.getpid()}")
    shutil.rmtree(aside, ignore_errors=True)
    if output.exists():
        os.rename(output, aside)
    os.rename(staged, output)
    shutil.rmtree(aside, ignore_errors=True)


def staging_folder(output: Path) -> Path:
    """A new, empty folder beside ``output`` (the same file system, so that `swap_in` only renames); what a killed
    run left beside it (``.NAME.new-PID``, ``.NAME.old-PID`` of a process that no longer runs) is removed."""
    from course_lib.grading.budget import process_alive

    output.parent.mkdir(parents=True, exist_ok=True)
    for left in output.parent.glob(f".{output.name}.*-*"):
        kind, _, pid = left.name[len(output.name) + 2:].partition("-")
        if kind in ("new", "old") and pid.isdigit() and not process_alive(int(pid)) and not left.is_symlink():
            shutil.rmtree(left, ignore_errors=True)
    staged = output.with_name(f".{output.name}.new-{os.getpid()}")
    shutil.rmtree(staged, ignore_errors=True)
    staged.mkdir()
    return staged


def _feedback_file(student: str, results: list[ExerciseResult], original: str | None) -> bytes:
    """A student's feedback; if rendering it fails, a feedback that says so (the batch goes on)."""
    try:
        return feedback_text(student, results, original).encode("utf-8", "replace")
    except Exception:  # noqa: BLE001 - one student's data must not stop the batch
        return (f"# Feedback for {markdown_text(student)}\n\nYour feedback could not be written; your instructor has "
                "the details.\n").encode("utf-8", "replace")


def write_outputs(output: Path, results: list[ExerciseResult], parts: dict[str, list[Part]], students: list[str],
                  logs: dict[str, bytes], manifest: dict) -> dict:
    """Write every output file into a new folder and swap it in for ``output`` (checked by `prepare_output`);
    ``logs`` maps file names (``logs/…``, ``solution-logs/…``) to their bytes. Return the manifest written."""
    renamed = manifest.get("renamed") or {}
    files: dict[str, bytes] = {"grades.csv": grades_table(results, parts, students).encode("utf-8", "replace"),
                               RESULTS: (json.dumps(results_data(results, parts), indent=1, sort_keys=True) + "\n")
                               .encode("utf-8"), **manual_files(results, parts)}
    for student in students:
        files[f"feedback/{student}.md"] = _feedback_file(student, [r for r in results if r.student == student],
                                                         renamed.get(student))
    staged = staging_folder(output)
    try:
        for name, data in {**files, **logs}.items():
            path = staged / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        manifest = dict(manifest, format=FORMAT, files={n: sha256(d) for n, d in sorted(files.items())},
                        logs={n: sha256(d) for n, d in sorted(logs.items())})
        (staged / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
        swap_in(staged, output)
    finally:
        shutil.rmtree(staged, ignore_errors=True)
    return manifest


def student_logs(results: list[ExerciseResult], students: list[str], solution_logs: dict[str, str]) -> dict[str, bytes]:
    """The log files of a batch: one per student (each exercise's pytest output) and one per solution run."""
    logs = {}
    for student in students:
        mine = sorted((r for r in results if r.student == student), key=lambda r: r.exercise)
        logs[f"logs/{student}.log"] = "".join(f"===== {r.exercise} =====\n{r.log}\n" for r in mine).encode(
            "utf-8", "replace")
    for exercise, log in solution_logs.items():
        logs[f"solution-logs/{exercise}.log"] = log.encode("utf-8", "replace")
    return logs


def merge(shards: list[Path], output: Path) -> dict:
    """Join the outputs of all N shards of one batch into ``output``: the files one run would have written."""
    manifests = []
    for folder in shards:
        listed = _listed(folder)
        if listed is None:
            raise ValueError(f"{folder} holds no readable course-grade manifest")
        manifests.append(listed)
    counts = {m.get("shard", {}).get("count") if isinstance(m.get("shard"), dict) else None for m in manifests}
    if len(counts) != 1 or None in counts:
        raise ValueError("every folder to merge must be a shard (--shard K/N) of the same N")
    count = counts.pop()
    indices = sorted(m["shard"]["index"] for m in manifests)
    if indices != list(range(1, count + 1)):
        raise ValueError(f"merging needs each of the {count} shards exactly once, got shards {indices}")
    same = ("solutions", "settings", "sandboxed", "sandbox", "budget", "all_students", "ignored", "renamed", "format")
    for key in same:
        if len({json.dumps(m.get(key), sort_keys=True) for m in manifests}) != 1:
            raise ValueError(f"the shards were not made from the same batch: their {key} differ")
    students = sorted(s for m in manifests for s in m["students"])
    if len(students) != len(set(students)) or students != sorted(manifests[0]["all_students"]):
        raise ValueError("the shards' students overlap or do not cover the whole batch")
    results, parts, logs = [], None, {}
    for folder, listed in zip(shards, manifests):
        for name, digest in {**listed["files"], **listed["logs"]}.items():
            if sha256((folder / name).read_bytes()) != digest:
                raise ValueError(f"{folder / name} does not match its shard's manifest")
        shard_results, parts = load_results(json.loads((folder / RESULTS).read_text()), parts)
        results += shard_results
        logs.update({name: (folder / name).read_bytes() for name in listed["logs"]})
    prepare_output(output)
    merged = {key: manifests[0].get(key) for key in same if key != "format"}
    merged.update(students=students, shard=None,
                  submissions=dict(sorted(kv for m in manifests for kv in m["submissions"].items())))
    return write_outputs(output, results, parts, students, logs, merged)
