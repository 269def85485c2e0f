"""What the grader writes: the grade table, each student's feedback, the logs, and a manifest of them all.

    OUTPUT/grades.csv              one row per student, one column per exercise:part, the total and the maximum
    OUTPUT/feedback/<student>.md   each exercise handed in: each part, its points, why it failed; notes
    OUTPUT/logs/<student>.log      pytest's output for each exercise, for the instructor
    OUTPUT/solution-logs/<NN>.log  the solution's reference run
    OUTPUT/manifest.json           how the grades were made (sandboxed or not, settings, the solutions' and the
                                   submissions' SHA-256) and the SHA-256 of every file above

Everything is written by the grader after the runs, into a folder no sandbox sees. An exercise a student did not
hand in is blank in ``grades.csv`` and counts neither in the total nor in the maximum, which equal the
feedback's. A cell of ``grades.csv`` that starts with ``= + - @`` (or a tab or carriage return) is prefixed with
an apostrophe, so a spreadsheet shows a name instead of running it as a formula.

`merge` joins the outputs of the shards of one batch (``--shard K/N``) into what one run would have written.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from pathlib import Path

from course_lib.grading.verdicts import FAILED, NOT_GRADABLE, PASSED, ExerciseResult, Part

MANIFEST = "manifest.json"
FORMAT = 1


def neutralize(cell: str) -> str:
    """A CSV cell that a spreadsheet will not run as a formula (OWASP's CSV-injection rule)."""
    return "'" + cell if cell[:1] in ("=", "+", "-", "@", "\t", "\r") else cell


def _number(x: float) -> str:
    return f"{x:g}"


def grades_table(results: list[ExerciseResult], parts: dict[str, list[Part]], students: list[str]) -> str:
    """The CSV text of the grade table."""
    columns = [p for exercise in sorted(parts) for p in parts[exercise]]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["student", *[p.column for p in columns], "total", "maximum"])
    for student in students:
        mine = {r.exercise: r for r in results if r.student == student}
        scores = {pr.part.column: pr.score for r in mine.values() for pr in r.results}
        row = [neutralize(student)]
        for part in columns:
            row.append(_number(scores[part.column]) if part.exercise in mine else "")
        row += [_number(sum(r.total for r in mine.values())), _number(sum(r.maximum for r in mine.values()))]
        writer.writerow(row)
    return out.getvalue()


def feedback_text(student: str, results: list[ExerciseResult]) -> str:
    """A student's feedback in Markdown: only the grader's and the instructor's words."""
    lines = [f"# Feedback for {student}", ""]
    for result in sorted(results, key=lambda r: r.exercise):
        lines += [f"## {result.exercise}: {_number(result.total)} / {_number(result.maximum)} points", ""]
        for pr in result.results:
            mark = {PASSED: "passed", FAILED: "failed", NOT_GRADABLE: "not gradable"}[pr.status]
            line = f"- **{pr.part.part_id}**: {mark}, {_number(pr.score)} / {_number(pr.part.points)} points"
            lines.append(line + (f". {pr.message}" if pr.message else ""))
        if result.notes:
            lines += ["", "Notes:", *[f"- {note}" for note in result.notes]]
        lines.append("")
    total = sum(r.total for r in results)
    maximum = sum(r.maximum for r in results)
    lines += [f"Total: {_number(total)} / {_number(maximum)}", ""]
    return "\n".join(lines)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def prepare_output(output: Path) -> None:
    """Make ``output`` ready: created if absent; if it exists it must be empty or hold an earlier course-grade
    output, whose files (listed in its manifest) are removed. Nothing else in it is ever deleted."""
    if output.is_symlink() or (output.exists() and not output.is_dir()):
        raise ValueError(f"output {output} exists and is not a folder")
    output.mkdir(parents=True, exist_ok=True)
    entries = [p for p in output.iterdir()]
    if not entries:
        return
    manifest = output / MANIFEST
    if not manifest.is_file():
        raise ValueError(f"output folder {output} is not empty and holds no course-grade manifest: "
                         "choose an empty or new folder")
    try:
        listed = json.loads(manifest.read_text())
        files = [*listed.get("files", {}), *listed.get("logs", {})]
    except (ValueError, AttributeError):
        raise ValueError(f"{manifest} is not a course-grade manifest; choose an empty or new folder") from None
    for name in files:
        target = (output / name)
        if target.resolve().parent.is_relative_to(output.resolve()) and target.is_file() and not target.is_symlink():
            target.unlink()
    manifest.unlink()


def write_outputs(output: Path, results: list[ExerciseResult], parts: dict[str, list[Part]], students: list[str],
                  solution_logs: dict[str, str], manifest: dict) -> dict:
    """Write every output file into ``output`` (already prepared); return the manifest written."""
    files: dict[str, bytes] = {"grades.csv": grades_table(results, parts, students).encode("utf-8")}
    logs: dict[str, bytes] = {}
    for student in students:
        mine = [r for r in results if r.student == student]
        files[f"feedback/{student}.md"] = feedback_text(student, mine).encode("utf-8")
        logs[f"logs/{student}.log"] = "".join(
            f"===== {r.exercise} =====\n{r.log}\n" for r in sorted(mine, key=lambda r: r.exercise)).encode("utf-8")
    for exercise, log in solution_logs.items():
        logs[f"solution-logs/{exercise}.log"] = log.encode("utf-8")
    for name, data in {**files, **logs}.items():
        path = output / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    manifest = dict(manifest, format=FORMAT, files={n: sha256(d) for n, d in sorted(files.items())},
                    logs={n: sha256(d) for n, d in sorted(logs.items())})
    (output / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return manifest


def merge(shards: list[Path], output: Path) -> dict:
    """Join the outputs of all N shards of one batch into ``output``; return the merged manifest."""
    manifests = []
    for folder in shards:
        try:
            manifests.append(json.loads((folder / MANIFEST).read_text()))
        except (OSError, ValueError):
            raise ValueError(f"{folder} holds no readable course-grade manifest") from None
    counts = {m.get("shard", {}).get("count") if isinstance(m.get("shard"), dict) else None for m in manifests}
    if len(counts) != 1 or None in counts:
        raise ValueError("every folder to merge must be a shard (--shard K/N) of the same N")
    count = counts.pop()
    indices = sorted(m["shard"]["index"] for m in manifests)
    if indices != list(range(1, count + 1)):
        raise ValueError(f"merging needs each of the {count} shards exactly once, got shards {indices}")
    same = ("solutions", "settings", "sandboxed", "sandbox", "all_students", "ignored", "format")
    for key in same:
        if len({json.dumps(m.get(key), sort_keys=True) for m in manifests}) != 1:
            raise ValueError(f"the shards were not made from the same batch: their {key} differ")
    students = sorted(s for m in manifests for s in m["students"])
    if len(students) != len(set(students)) or students != sorted(manifests[0]["all_students"]):
        raise ValueError("the shards' students overlap or do not cover the whole batch")
    prepare_output(output)
    rows, header = {}, None
    for folder, m in zip(shards, manifests):
        for name, digest in {**m["files"], **m["logs"]}.items():
            data = (folder / name).read_bytes()
            if sha256(data) != digest:
                raise ValueError(f"{folder / name} does not match its shard's manifest")
            if name != "grades.csv":
                target = output / name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
        table = list(csv.reader(io.StringIO((folder / "grades.csv").read_text(encoding="utf-8"))))
        header = header or table[0]
        if table[0] != header:
            raise ValueError("the shards' grade tables have different columns")
        for row in table[1:]:
            rows[row[0]] = row
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for student in students:
        writer.writerow(rows[neutralize(student)])
    (output / "grades.csv").write_text(out.getvalue(), encoding="utf-8")
    merged = {key: manifests[0][key] for key in same}
    merged.update(students=students, shard=None,
                  submissions=dict(sorted(kv for m in manifests for kv in m["submissions"].items())),
                  files=dict(sorted(kv for m in manifests for kv in m["files"].items() if kv[0] != "grades.csv")),
                  logs=dict(sorted(kv for m in manifests for kv in m["logs"].items())))
    merged["files"]["grades.csv"] = sha256((output / "grades.csv").read_bytes())
    merged["files"] = dict(sorted(merged["files"].items()))
    (output / MANIFEST).write_text(json.dumps(merged, indent=1, sort_keys=True) + "\n")
    return merged
