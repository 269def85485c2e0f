"""Grading a batch: the solutions' reference runs, every submission in its sandbox, the verdicts, the outputs.

`grade` is what ``course-grade`` runs:

1. read the solutions (their parts, see `course_lib.grading.verdicts`) and every submission's bytes (see
   `course_lib.grading.submissions`), before anything runs;
2. run, ``workers`` at a time, each exercise's solution notebook once and each submission, every one through
   nbval with its kernel in its own sandbox (`course_lib.grading.runner`); a submission's graded copy has each
   check cell, found by its part id, replaced by the solution's whole check cell, its expected values withheld
   (`course_lib.grading.evidence.withhold_references`);
3. decide each part in this process from the records (the solution's are the reference), and write the grade
   table, the feedback, the logs and the manifest (`course_lib.grading.reports`).

A submission can only cost its own points: whatever happens while grading it (a crash, a time limit, an error in
the grader itself while running, reading, comparing or reporting it) becomes "not gradable" with a reason, the
traceback goes to the instructor's log, and the batch goes on. Only a problem with the instructor's side stops the
batch (exit status 2): unreadable solutions, a solution that fails its own checks or records no evidence, an
output folder that is not the grader's, no sandbox without ``--no-sandbox``.

The grader's own memory does not grow with the submissions: each submission's bytes go to a copy in the grader's
private folder, each run's records are judged as soon as the run ends and then dropped (only the verdicts stay),
and a notebook is parsed only when its JSON holds at most `MAX_CONTAINERS` lists and objects. The private folder
is ``course-grade-<pid>-…`` in the temporary folder; a run that finds one whose grader no longer runs (it was
killed) removes it, and the cgroups it left (`course_lib.grading.budget.remove_stale`).
"""

from __future__ import annotations

import concurrent.futures
import os
import shutil
import site
import sys
import tempfile
import threading
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

import course_lib
from course_lib.grading import budget, evidence, reports, runner, sandbox
from course_lib.grading.submissions import Collection, Submission, collect, read_regular_file, shard
from course_lib.grading.verdicts import (NOT_GRADABLE, ExerciseResult, Part, PartResult, exercise_parts, judge,
                                         reference_records, ungraded_notes, written_answer)

SYSTEM = ("/usr", "/etc", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/proc", "/dev")
GRADER_ATTEMPTS = 2  # a notebook the grader itself fails on (not the student's code) is run once more
MAX_CONTAINERS = 2_000_000  # "[" and "{" bytes a notebook may hold before it is parsed (each list costs ~60 bytes)
MAX_NOTES = 8  # notes per exercise in a student's feedback
PRIVATE_PREFIX = "course-grade-"


@dataclass
class Exercise:
    name: str
    notebook: nbformat.NotebookNode
    parts: list[Part]
    sha256: str


@dataclass
class Batch:
    """What a batch produced: the verdicts, and what the summary says about it."""

    results: list[ExerciseResult] = field(default_factory=list)
    sandboxed: bool = True
    collection: Collection = field(default_factory=Collection)
    students: list[str] = field(default_factory=list)
    remarks: list[str] = field(default_factory=list)  # for the instructor: duplicated check cells, changed files
    budget: str = ""  # the resources each run was given (the manifest's "budget")


def load_exercises(solutions: Path) -> dict[str, Exercise]:
    """The exercises of ``solutions`` (a folder of solution notebooks, or one)."""
    files = sorted(solutions.glob("*.ipynb")) if solutions.is_dir() else [solutions] if solutions.is_file() else []
    if not files:
        raise ValueError(f"no solution notebook in {solutions}")
    exercises = {}
    for path in files:
        try:
            data = read_regular_file(path)
            notebook = nbformat.reads(data.decode("utf-8"), as_version=4)
        except (OSError, ValueError, UnicodeDecodeError, nbformat.ValidationError) as error:
            raise ValueError(f"cannot read the solution {path}: {error}") from None
        exercises[path.stem] = Exercise(path.stem, notebook, exercise_parts(notebook, path.stem), reports.sha256(data))
    return exercises


def _inside(path: Path, folder: Path) -> bool:
    path, folder = path.resolve(), folder.resolve()
    return path == folder or path.is_relative_to(folder)


def visible_paths(data: Path | None, private: list[Path]) -> list[str]:
    """The host folders a sandboxed kernel sees read-only: the Python installation, course_lib and the data.

    None of them may contain a folder the kernel must not see (``private``: the solutions, the submissions, the
    output, the grader's work folder)."""
    candidates = [sys.base_prefix, sys.prefix, sys.exec_prefix, *site.getsitepackages(),
                  str(Path(course_lib.__file__).resolve().parent)]
    if data is not None and data.is_dir():
        candidates.append(str(data))
    real = sorted({os.path.realpath(c) for c in candidates if os.path.isdir(c)})
    real = [p for p in real if not any(p == s or p.startswith(s + "/") for s in SYSTEM)]
    kept = [p for p in real if not any(p != other and p.startswith(other + "/") for other in real)]
    for path in kept:
        for secret in private:
            if _inside(secret, Path(path)):
                raise ValueError(f"the sandbox would show {path}, which contains {secret}: move one of them")
    return kept


def kernel_environment(threads: int, device: str, data: Path | None) -> dict[str, str]:
    """The whole environment of a submission's kernel (nothing of the instructor's own)."""
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin", "HOME": sandbox.HOME,
           "USER": "student", "LANG": "C.UTF-8", "TMPDIR": "/tmp", "MPLBACKEND": "Agg",
           "MPLCONFIGDIR": "/tmp/matplotlib", "PYTHONDONTWRITEBYTECODE": "1", "PYTHONHASHSEED": "0",
           evidence.GRADING_ENV: "1", "COURSE_SCALE": "quick", "COURSE_DEVICE": device, "COURSE_THREADS": str(threads),
           "OMP_NUM_THREADS": str(threads), "OMP_WAIT_POLICY": "PASSIVE", "COURSE_OFFLINE": "1"}
    if data is not None:
        env["COURSE_DATA_DIR"] = str(data)
    return env


def _code_cells(notebook) -> list:
    return [cell for cell in notebook.cells if cell.get("cell_type") == "code"]


def _grade_id(cell) -> str | None:
    meta = cell.get("metadata", {}).get("nbgrader") if isinstance(cell.get("metadata"), dict) else None
    return meta.get("grade_id") if isinstance(meta, dict) and isinstance(meta.get("grade_id"), str) else None


def run_solution(exercise: Exercise, workdir: Path, settings: runner.RunSettings, slot: int) -> runner.NotebookRun:
    marked = {p.part_id: evidence.mark_visible_end(p.test_source) for p in exercise.parts if not p.manual}
    notebook = runner.graded_copy(nbformat.from_dict(exercise.notebook), marked)
    return runner.run_notebook(notebook, workdir, settings, slot)


def reference_of(exercise: Exercise, run: runner.NotebookRun) -> dict[str, list[dict]]:
    """Each part's reference records from the solution's run; a ValueError when the solution is not usable."""
    index = {_grade_id(cell): i for i, cell in enumerate(_code_cells(exercise.notebook))}
    return {part.part_id: reference_records(part, run.cells.get(index[part.part_id]))
            for part in exercise.parts if not part.manual}


def read_notebook(data: bytes) -> nbformat.NotebookNode:
    """A submission's notebook from its bytes; a ValueError when it holds more than `MAX_CONTAINERS` lists and
    objects (parsing 16 million empty lists takes gigabytes), or anything else that makes it unreadable."""
    if data.count(b"[") + data.count(b"{") > MAX_CONTAINERS:
        raise ValueError(f"more than {MAX_CONTAINERS} lists and objects")
    notebook = nbformat.reads(data.decode("utf-8"), as_version=4)
    if not isinstance(notebook.get("cells"), list) or not all(isinstance(c, dict) for c in notebook.cells):
        raise ValueError("no list of cells")
    return notebook


def grade_submission(submission: Submission, exercise: Exercise, reference, workdir: Path,
                     settings: runner.RunSettings, slot: int, remarks: list[str]) -> ExerciseResult:
    """Run one submission and judge it: its verdicts (the run's records are dropped once they are judged).
    ``reference()`` gives the solution's reference records, waiting for the solution's run if it has not ended."""
    result = ExerciseResult(submission.student, submission.exercise)
    if submission.refused:
        result.results = [PartResult(p, NOT_GRADABLE, submission.refused) for p in exercise.parts]
        return result
    try:
        notebook = read_notebook(submission.data())
    except Exception as error:  # any malformed file: the student's parts, never the batch
        reason = f"not a readable notebook ({error.__class__.__name__})"
        result.results = [PartResult(p, NOT_GRADABLE, reason) for p in exercise.parts]
        return result
    # The instructor's check cells, with their expected values withheld: only the solution's run computes them.
    runner.graded_copy(notebook, {p.part_id: evidence.mark_visible_end(evidence.withhold_references(p.test_source))
                                  for p in exercise.parts if not p.manual})
    run = runner.run_notebook(notebook, workdir, settings, slot)
    result.log = run.log
    judged(result, exercise, reference(), notebook, run, settings, remarks)
    return result


def judged(result: ExerciseResult, exercise: Exercise, reference: dict[str, list[dict]], notebook, run,
           settings: runner.RunSettings, remarks: list[str]) -> None:
    """`decide`, with anything that goes wrong while judging one submission (a value no comparison foresaw, a
    broken cell) turned into "not gradable" for that student, the traceback in the instructor's log."""
    try:
        decide(result, exercise, reference, notebook, run, settings, remarks)
    except Exception:  # noqa: BLE001 - one submission's data must never stop the batch
        result.log += f"\n[grader] judging this submission failed:\n{traceback.format_exc()}"
        result.results = [PartResult(p, NOT_GRADABLE, "the grader could not judge this submission (an internal "
                                     "error, in the instructor's log)") for p in exercise.parts]
        result.notes = []


def decide(result: ExerciseResult, exercise: Exercise, reference: dict[str, list[dict]], notebook, run,
           settings: runner.RunSettings, remarks: list[str]) -> None:
    """The verdict on each part of a run submission, and the notes on the cells that are not graded."""
    ids = [_grade_id(cell) for cell in _code_cells(notebook)]
    graded = set()
    for part in exercise.parts:
        if part.manual:
            result.results.append(written_answer(part, notebook.cells))
            continue
        copies = [i for i, cell_id in enumerate(ids) if cell_id == part.part_id]
        if not copies:
            result.results.append(PartResult(part, NOT_GRADABLE, f"the graded cell '{part.part_id}' is missing "
                                                                 "(deleted, or its metadata changed)"))
            continue
        answers = [i for i, cell_id in enumerate(ids) if cell_id in part.answer_ids]
        after = [i for i in copies if answers and i > max(answers)]
        chosen = after[0] if after else copies[-1]
        graded.add(chosen)
        if len(copies) > 1:
            count = str(len(copies)) if len(copies) <= 10 else "more than 10"
            which = "the copy after your answer" if after else "the last copy"
            result.note(f"the check cell '{part.part_id}' appears {count} times; {which} (code cell {chosen + 1}) "
                        "was graded")
            remarks.append(f"{result.student} {result.exercise}: check cell '{part.part_id}' appears {len(copies)} "
                           f"times; graded code cell {chosen + 1}")
        outcome = run.cells.get(chosen)
        verdict = judge(part, reference[part.part_id], outcome, settings.cell_timeout)
        if outcome is None and run.stopped:
            verdict.message = f"not run: {run.stopped}"
        result.results.append(verdict)
    for note in ungraded_notes([(i, o) for i, o in run.cells.items() if i not in graded], settings.cell_timeout):
        result.note(note)
    if run.stopped:
        result.note(run.stopped)
    del result.notes[MAX_NOTES:]


def run_batch(exercises: dict[str, Exercise], chosen: list[Submission], settings: runner.RunSettings, workers: int,
              private: Path, remarks: list[str]) -> tuple[list[ExerciseResult], dict[str, str]]:
    """Run each needed solution once and every submission, ``workers`` at a time (the solutions first); each
    submission is judged as soon as its run and its solution's have ended. Return the verdicts and the solutions'
    logs. A ValueError when a solution cannot serve as the reference."""
    needed = sorted({s.exercise for s in chosen if not s.refused})
    references: dict[str, dict[str, list[dict]]] = {}
    problems: dict[str, str] = {}  # exercise → why its solution cannot serve as the reference
    ready = {name: threading.Event() for name in needed}

    def attempts(slot: int, job) -> object:
        """``job(workdir)``, or, when the grader itself fails on it twice, the two tracebacks (a text)."""
        failures = []
        for attempt in range(GRADER_ATTEMPTS):
            workdir = private / f"run{slot}-{attempt}"
            try:
                return job(workdir)
            except Exception:  # the grader's own failure on one notebook: tried again, then that notebook's parts
                failures.append(f"[grader] attempt {attempt + 1} failed:\n{traceback.format_exc()}")
            finally:
                shutil.rmtree(workdir, ignore_errors=True)
        return "\n".join(failures)

    def solution(slot: int, name: str):
        try:
            outcome = attempts(slot, lambda workdir: run_solution(exercises[name], workdir, settings, slot))
            if isinstance(outcome, str):
                problems[name] = f"the solution {name} could not be run:\n{outcome}"
                return None
            try:
                references[name] = reference_of(exercises[name], outcome)
            except ValueError as error:
                problems[name] = f"{error}\n--- the solution's run ---\n{outcome.log[-4000:]}"
            return outcome.log
        finally:
            ready[name].set()

    def reference(name: str) -> dict[str, list[dict]]:
        ready[name].wait()
        if name not in references:
            raise RuntimeError(f"no reference for {name}: its solution failed")  # the batch stops below
        return references[name]

    def submission(slot: int, item: Submission):
        if item.exercise in problems:  # its solution failed: the batch stops, no need to run it
            return None
        exercise = exercises[item.exercise]
        outcome = attempts(slot, lambda workdir: grade_submission(
            item, exercise, lambda: reference(item.exercise), workdir, settings, slot, remarks))
        if isinstance(outcome, str):
            outcome = ExerciseResult(item.student, item.exercise, log=outcome)
            outcome.results = [PartResult(p, NOT_GRADABLE, "the grader could not run this submission (an internal "
                                          "error, in the instructor's log)") for p in exercise.parts]
        return outcome

    unique, seen = [], set()
    for item in chosen:
        if (item.student, item.exercise) not in seen:  # two refused entries of one student's exercise: one result
            seen.add((item.student, item.exercise))
            unique.append(item)
    # Solutions come first in the queue, so every solution has started before any submission waits for one.
    jobs = [(solution, name) for name in needed] + [(submission, item) for item in unique]
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        outcomes = list(pool.map(lambda numbered: numbered[1][0](numbered[0], numbered[1][1]), enumerate(jobs)))
    for name in needed:
        if name in problems:
            raise ValueError(problems[name])
    solution_logs = dict(zip(needed, outcomes[:len(needed)]))
    return outcomes[len(needed):], solution_logs


def grade(solutions: Path, submissions: Path, output: Path, workers: int = 2,
          settings: runner.RunSettings | None = None, threads: int = 1, device: str = "cpu",
          shard_spec: tuple[int, int] = (1, 1), sandboxed: bool = True, manual: Path | None = None) -> Batch:
    """Grade every submission (of shard K of N); write the outputs into ``output``; return the batch.

    With ``manual`` (the instructor's filled-in ``manual/scores.csv``), the written answers get their points; when
    ``output`` already holds a run made from the same solutions, submissions and settings, its verdicts are reused
    instead of running every notebook again.
    """
    if not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive whole number, got {workers!r}")
    exercises = load_exercises(solutions)
    scores = reports.read_manual_scores(manual) if manual is not None else {}
    if sandboxed:
        possible, why = sandbox.available()
        if not possible:
            raise ValueError(f"no sandbox can be made here: {why}. Grading without one lets a submission read the "
                             "solutions and other submissions; pass --no-sandbox to do it anyway")
    for folder, name in ((submissions, "submissions"), (solutions, "solutions")):
        if folder.is_dir() and _inside(output, folder):
            raise ValueError(f"the output folder {output} must not be inside the {name} folder")
    base = settings or runner.RunSettings()
    clean_stale_runs()
    private = Path(tempfile.mkdtemp(prefix=f"{PRIVATE_PREFIX}{os.getpid()}-"))
    try:
        found = collect(submissions, sorted(exercises), copies=private / "submissions")
        return _grade_collected(found, exercises, solutions, submissions, output, workers, base, threads, device,
                                shard_spec, sandboxed, manual, scores, private)
    finally:
        shutil.rmtree(private, ignore_errors=True)


def run_budget(limits: sandbox.Limits, workers: int, threads: int) -> tuple[sandbox.Limits, float, str]:
    """Each run's limits with its memory fitted to the grader's job limit (`course_lib.grading.budget`), its CPU
    quota, and a description of the budget for the manifest."""
    job = budget.memory_limit()
    memory = budget.fit_memory(limits.memory, workers, job)
    cpus = float(threads + 1)  # the kernel's torch threads, and one for nbval and the kernel's own threads
    fitted = sandbox.Limits(memory=memory, processes=limits.processes, file_size=limits.file_size,
                            open_files=limits.open_files, tmp_size=limits.tmp_size)
    probe, why = budget.create("probe", budget.Budget(memory=memory, cpus=cpus, tasks=limits.processes))
    if probe is None:
        return fitted, cpus, f"per-process limits only ({why}): {memory / sandbox.GiB:g} GiB of address space each"
    probe.remove()
    shrunk = f", fitted to the job's limit of {job / sandbox.GiB:.3g} GiB" if memory < limits.memory else ""
    return fitted, cpus, (f"{why} per run: {memory / sandbox.GiB:.3g} GiB of memory{shrunk}, {cpus:g} cores, "
                          f"{limits.processes} tasks")


def clean_stale_runs() -> list[str]:
    """Remove what graders that were killed left behind: their private folders (whose grader's pid no longer
    runs) and their cgroups; return what was removed."""
    removed = budget.remove_stale()
    for folder in Path(tempfile.gettempdir()).glob(f"{PRIVATE_PREFIX}*"):
        pid = folder.name[len(PRIVATE_PREFIX):].split("-", 1)[0]
        if folder.is_dir() and not folder.is_symlink() and pid.isdigit() and not budget.process_alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(str(folder))
    return removed


def _grade_collected(found: Collection, exercises: dict[str, Exercise], solutions: Path, submissions: Path,
                     output: Path, workers: int, base: runner.RunSettings, threads: int, device: str,
                     shard_spec: tuple[int, int], sandboxed: bool, manual: Path | None, scores: dict,
                     private: Path) -> Batch:
    students = shard(found.students, *shard_spec) if found.students else []
    chosen = [s for s in found.submissions if s.student in set(students)]
    limits, cpus, described = run_budget(base.limits, workers, threads)
    inputs = {
        "sandboxed": sandboxed, "sandbox": "bubblewrap" if sandboxed else "none: graded with --no-sandbox",
        "settings": {"cell_timeout": base.cell_timeout, "timeout": base.timeout, "threads": threads,
                     "device": device, "scale": "quick", "limits": vars(base.limits)},
        "budget": described,
        "solutions": {name: exercises[name].sha256 for name in sorted(exercises)},
        "all_students": found.students, "students": students, "ignored": found.ignored, "renamed": found.renamed,
        "submissions": {s.label: (s.digest if not s.refused else f"refused: {s.refused}")
                        for s in sorted(chosen, key=lambda s: s.label)},
        "shard": None if shard_spec == (1, 1) else {"index": shard_spec[0], "count": shard_spec[1]},
    }
    parts = {name: e.parts for name, e in exercises.items()}
    batch = Batch(sandboxed=sandboxed, collection=found, students=students, budget=described)
    batch.remarks += found.flagged
    earlier = reports.previous_run(output, inputs) if manual is not None else None
    if earlier is not None:
        batch.results = reports.load_results(earlier[0], parts)[0]
        logs = earlier[1]
        batch.remarks.append("verdicts reused from the earlier run in the output folder (same solutions, submissions "
                             "and settings); only the hand-graded points were added")
    reports.prepare_output(output)
    if earlier is None:
        data = _data_dir()
        settings = runner.RunSettings(
            cell_timeout=base.cell_timeout, timeout=base.timeout, sandboxed=sandboxed, limits=limits, cpus=cpus,
            budgeted=base.budgeted, env=tuple(kernel_environment(threads, device, data).items()),
            read_only=tuple(visible_paths(data, [solutions, submissions, output, private])),
            devices=tuple(sorted(str(p) for p in Path("/dev").glob("nvidia*"))) if device.startswith("cuda") else ())
        batch.results, solution_logs = run_batch(exercises, chosen, settings, workers, private, batch.remarks)
        logs = reports.student_logs(batch.results, students, solution_logs)
    unmatched = reports.apply_manual_scores(batch.results, scores)
    if unmatched:
        batch.remarks.append("manual scores that match no written answer (ignored): " + ", ".join(unmatched))
    reports.write_outputs(output, batch.results, parts, students, logs, inputs)
    for s in chosen:  # grading never writes into the submissions: say so loudly if a file changed anyway
        try:
            changed = not s.refused and s.path.is_file() and reports.sha256(read_regular_file(s.path)) != s.digest
        except (OSError, ValueError):
            changed = True
        if changed:
            batch.remarks.append(f"{s.label} changed on disk while it was graded (graded from the bytes read first)")
    return batch


def _data_dir() -> Path | None:
    """The course's data folder, as the kernel will look for it (it reads, never downloads, in the sandbox)."""
    from course_lib.data import data_dir

    folder = data_dir()
    return folder if folder.is_dir() else None


def summary(batch: Batch) -> str:
    """The lines course-grade prints at the end."""
    lines = []
    if not batch.sandboxed:
        lines.append("WARNING: graded WITHOUT a sandbox (--no-sandbox): submissions could read the solutions and "
                     "each other; manifest.json records it")
    if not batch.students:
        lines.append("no submission found")
    else:
        totals = {s: sum(r.total for r in batch.results if r.student == s) for s in batch.students}
        maxima = {s: sum(r.maximum for r in batch.results if r.student == s) for s in batch.students}
        mean = sum(totals[s] / maxima[s] for s in batch.students if maxima[s]) / max(1, len(batch.students))
        lines.append(f"graded {len(batch.students)} student(s), {len(batch.results)} notebook(s)"
                     f"{' in sandboxes' if batch.sandboxed else ''}; mean score {100 * mean:.0f} % of the maximum")
        if batch.budget:
            lines.append(f"each run's resources: {batch.budget}")
        pending = sum(r.pending for r in batch.results)
        if pending:
            answers = sum(pr.pending > 0 for r in batch.results for pr in r.results)
            lines.append(f"{answers} written answer(s), {pending:g} points, to be graded by hand: fill in "
                         "manual/scores.csv in the output folder and give it back with --manual")
        failures: dict[str, int] = {}
        for r in batch.results:
            for pr in r.results:
                if pr.score == 0 and not pr.pending:
                    failures[pr.part.column] = failures.get(pr.part.column, 0) + 1
        worst = sorted(failures.items(), key=lambda item: (-item[1], item[0]))[:5]
        if worst:
            lines.append("parts most often not passed: " + ", ".join(f"{name} ({count})" for name, count in worst))
    refused = [f"{s.label}: {s.refused}" for s in batch.collection.submissions if s.refused and s.student in batch.students]
    if refused:
        lines.append("refused: " + "; ".join(refused))
    if batch.collection.ignored:
        lines.append("ignored: " + ", ".join(batch.collection.ignored))
    lines += batch.remarks
    return "\n".join(lines)
