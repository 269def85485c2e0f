"""The grader inside a job's memory limit (what a Slurm allocation or a Kubernetes pod gives it): a 5 GiB cgroup holds
``course-grade`` and everything it starts. A submission that fills memory file systems, floods the grader with
evidence records, or allocates more than its share costs only its own points; the two honest bystanders get theirs,
the batch writes its grades, and the grader's own memory stays small.

Needs a cgroup file system this process may write (root, on Linux) and bubblewrap; skipped with the reason elsewhere.
"""

from __future__ import annotations

import csv
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from course_lib.grading import budget, sandbox
from course_lib.grading.verdicts import exercise_parts
from grading_fixtures import LATER, NONE, SOLUTION, robustness_fixtures, solution_with

SANDBOX, WHY = sandbox.available()
JOB_MEMORY = 5 * sandbox.GiB


def _cgroups() -> tuple[bool, str]:
    group, why = budget.create("probe-test", budget.Budget(memory=JOB_MEMORY, cpus=2.0, tasks=4096))
    if group is None:
        return False, why
    group.remove()
    return True, why


CGROUPS, CGROUPS_WHY = _cgroups() if sys.platform.startswith("linux") else (False, "not Linux")
pytestmark = [pytest.mark.grading, pytest.mark.complete,
              pytest.mark.skipif(not SANDBOX, reason=f"no sandbox here: {WHY}"),
              pytest.mark.skipif(not CGROUPS, reason=f"no cgroup can be made here: {CGROUPS_WHY}")]
PARTS = {p.part_id: p.points for p in exercise_parts(nbformat.read(SOLUTION, as_version=4), SOLUTION.stem)
         if not p.manual}


def test_a_job_memory_limit_costs_the_attackers_only_their_own_points(tmp_path):
    submissions, output = tmp_path / "submissions", tmp_path / "output"
    (tmp_path / "solutions").mkdir()
    submissions.mkdir()
    shutil.copy(SOLUTION, tmp_path / "solutions" / SOLUTION.name)
    attacks = {f.student: f for f in robustness_fixtures() if f.student in ("vandal_records", "vandal_namespaces")}
    expected = {"alice": NONE, "bob": NONE, **{name: f.loses for name, f in attacks.items()}, "hog": LATER}
    for name in ("alice", "bob"):
        shutil.copy(SOLUTION, submissions / f"{name}.ipynb")
    for name, fixture in attacks.items():
        (submissions / f"{name}.ipynb").write_text(fixture.text)
    hog = nbformat.reads(solution_with("x = torch.ones(1_600_000_000)"), as_version=4)  # 6.4 GB, more than the job
    check = next(i for i, c in enumerate(hog.cells) if c.get("metadata", {}).get("nbgrader", {}).get("grade_id")
                 == "train-mnist")
    hog.cells.insert(check - 1, hog.cells.pop())  # just before the training parts
    nbformat.write(hog, submissions / "hog.ipynb")

    job, _ = budget.create("job-test", budget.Budget(memory=JOB_MEMORY, cpus=2.0, tasks=4096))
    try:
        command = [sys.executable, "-c", "import resource, sys\nfrom course_lib.grading import cli\ncode = cli.main("
                   "sys.argv[1:])\nprint('grader peak', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
                   "sys.exit(code)", str(tmp_path / "solutions"), str(submissions), "-o", str(output), "-j", "2",
                   "--cell-timeout", "60", "--timeout", "400"]
        done = subprocess.run(command, capture_output=True, text=True, timeout=1500,
                              preexec_fn=lambda: job.add(os.getpid()))
        job_peak = job.peak_memory()
    finally:
        job.remove()
    print(done.stdout[-3000:], done.stderr[-3000:])
    assert done.returncode == 0, "the grader survived its job's memory limit and graded the batch"
    assert "fitted to the job's limit of 5 GiB" in done.stdout and "2 GiB of memory" in done.stdout
    with open(output / "grades.csv", newline="") as handle:
        rows = {row["student"]: row for row in csv.DictReader(handle)}
    lost = {name: {p for p in PARTS if rows[name][f"01_batch_sgd:{p}"] != f"{PARTS[p]:g}"} for name in rows}
    assert lost == {name: set(parts) for name, parts in expected.items()}
    grader_peak = int(re.search(r"grader peak (\d+)", done.stdout).group(1)) * 1024
    print(f"peak memory: the grader {grader_peak / 2**20:.0f} MiB, the whole job {job_peak / 2**20:.0f} MiB")
    # Importing torch (for the trained models it evaluates) takes the grader to about 0.7 GiB; a records flood once
    # took it to 5.2 GB and a notebook of 16.5 million empty lists to 6.4 GiB.
    assert grader_peak < 1.5 * sandbox.GiB, "the grader's own memory does not grow with what submissions send"
    assert job_peak is None or job_peak <= JOB_MEMORY
