#!/usr/bin/env python3
"""The course on a CUDA GPU, checked in one command, offline: tests, benchmarks and the paper's runs.

Where the internet works, gather the wheels once (for the GPU machine's Python version and platform):

    python3 maintainers/gpu_check.py prepare                      # pip download into wheels/

Copy the course with its ``wheels/`` folder to the GPU machine (no internet needed there), then:

    python3 maintainers/gpu_check.py run --budget-minutes 90      # writes gpu_report.md

``run`` does, in order, and records each step's command, exit code, duration and last lines of
output in one report file:

1. the set-up: ``.venv`` is created when absent and the course installed into it from ``wheels/``
   (``pip install --no-index --find-links wheels``) when a package is missing; the GPU is named;
2. the whole test suite (``course.py test --complete``'s selection) with ``COURSE_DEVICE=cuda``: the
   parity tests against PyTorch run on the GPU, and every notebook runs there at the quick scale;
3. every benchmark with ``--device cuda``, and the lectures timed at the lecture and quick scales;
4. the paper-scale g_∞ runs (``maintainers/paper_results.py run``) for what is left of the budget; they are
   checkpointed, so running the command again continues them.

Only the standard library is used here, so this file runs before anything is installed.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
WHEELS = ROOT / "wheels"
REPORT = ROOT / "gpu_report.md"
PYTHON = VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")

BENCHMARKS = [
    ["maintainers/benchmarks/bench_batches.py", "--device", "cuda"],
    ["maintainers/benchmarks/bench_layers.py", "--device", "cuda"],
    ["maintainers/benchmarks/bench_optim.py", "--device", "cuda"],
    ["maintainers/benchmarks/bench_ginfty.py", "--device", "cuda"],
    ["maintainers/benchmarks/bench_compression.py", "--device", "cuda"],
    ["maintainers/benchmarks/bench_grading.py", "--device", "cuda", "--students", "8"],
    ["maintainers/benchmarks/time_lectures.py", "--scale", "quick", "--device", "cuda"],
    ["maintainers/benchmarks/time_lectures.py", "--scale", "lecture", "--moves", "--device", "cuda"],
]


class Report:
    """One Markdown file: a line per step in a table, then each step's command and output tail."""

    def __init__(self, path: Path) -> None:
        self.path, self.rows, self.details = path, [], []

    def step(self, name: str, command: list[str], env: dict | None = None, timeout_s: float | None = None) -> int:
        print(f"== {name}: {' '.join(command)}", flush=True)
        started = time.monotonic()
        try:
            completed = subprocess.run(command, cwd=ROOT, env={**os.environ, **(env or {})}, timeout=timeout_s,
                                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace")
            code, output = completed.returncode, completed.stdout
        except subprocess.TimeoutExpired as expired:
            code, output = 124, (expired.stdout or b"").decode(errors="replace") if isinstance(expired.stdout, bytes) \
                else (expired.stdout or "")
            output += f"\n(stopped after {timeout_s:.0f} s)"
        seconds = time.monotonic() - started
        print(output[-3000:], flush=True)
        self.rows.append(f"| {name} | {code} | {seconds / 60:.1f} min |")
        tail = "\n".join(output.strip().splitlines()[-40:])
        self.details.append(f"### {name}\n\n`{' '.join(command)}` exited with {code} after {seconds:.0f} s\n\n```\n{tail}\n```\n")
        self.write()
        return code

    def note(self, name: str, text: str) -> None:
        self.rows.append(f"| {name} | — | {text} |")
        self.write()

    def write(self) -> None:
        head = (f"# The course on a GPU\n\n{time.strftime('%Y-%m-%d %H:%M')}, {platform.node()}, Python "
                f"{platform.python_version()}\n\n| step | exit code | time |\n|---|---|---|\n")
        self.path.write_text(head + "\n".join(self.rows) + "\n\n" + "\n".join(self.details))


def prepare(wheels: Path) -> int:
    """Download every wheel the course needs (with the CUDA build of PyTorch) into ``wheels``."""
    wheels.mkdir(exist_ok=True)
    command = [sys.executable, "-m", "pip", "download", "--dest", str(wheels), str(ROOT),
               "pytest-xdist", "setuptools", "wheel"]
    print(" ".join(command), flush=True)
    code = subprocess.run(command, cwd=ROOT).returncode
    if code == 0:
        size = sum(f.stat().st_size for f in wheels.iterdir()) / 2**30
        print(f"{len(list(wheels.iterdir()))} files, {size:.1f} GiB in {wheels}: copy them with the course to the GPU machine")
    return code


def missing_packages() -> list[str]:
    if not PYTHON.exists():
        return ["(no .venv)"]
    probe = ("import importlib.util, sys; names = ['torch', 'torchvision', 'nbval', 'xdist', 'course_lib', 'nbclient', "
             "'ipywidgets', 'tqdm', 'nbgrader']; print(' '.join(n for n in names if importlib.util.find_spec(n) is None))")
    result = subprocess.run([str(PYTHON), "-c", probe], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    return result.stdout.split()


def run(wheels: Path, budget_minutes: float, report_path: Path) -> int:
    deadline = time.monotonic() + 60 * budget_minutes
    report = Report(report_path)
    missing = missing_packages()
    if missing:
        if not PYTHON.exists():
            report.step("create .venv", [sys.executable, "-m", "venv", str(VENV)])
        if not wheels.is_dir():
            report.note("install", f"missing {' '.join(missing)} and no {wheels}: run `python3 maintainers/gpu_check.py prepare` where "
                                   "the internet works and copy the wheels here")
            return 2
        code = report.step("install from wheels", [str(PYTHON), "-m", "pip", "install", "--no-index", "--find-links",
                                                   str(wheels), "--editable", str(ROOT), "pytest-xdist"])
        if code:
            return code
    else:
        report.note("install", "every package already in .venv")
    code = report.step("the GPU", [str(PYTHON), "-c", "import torch; assert torch.cuda.is_available(), 'torch sees no CUDA "
                                   "device'; print(torch.__version__, torch.version.cuda, torch.cuda.get_device_name(0))"])
    if code:
        return code
    if shutil.which("nvidia-smi"):
        report.step("nvidia-smi", ["nvidia-smi"])
    cuda = {"COURSE_DEVICE": "cuda"}
    workers = str(max(1, min(os.cpu_count() or 1, 4)))
    failures = report.step("tests on CUDA (complete suite)", [str(PYTHON), "-m", "pytest", "-q", "-n", workers, "--dist",
                                                              "loadscope", "--durations=20"], env=cuda)
    for benchmark in BENCHMARKS:
        if time.monotonic() > deadline:
            report.note(benchmark[0], "left out: the budget was spent")
            continue
        failures |= report.step(" ".join(benchmark), [str(PYTHON), *benchmark], env=cuda)
    left = (deadline - time.monotonic()) / 60
    if left > 5:
        code = report.step(f"paper-scale g_∞ runs ({left:.0f} min budget)",
                           [str(PYTHON), "maintainers/paper_results.py", "run", "--device", "cuda", "--budget-minutes", f"{left:.0f}"],
                           env=cuda)
        if code == 3:
            report.note("paper-scale g_∞ runs", "budget spent, checkpointed: run `python3 maintainers/gpu_check.py run` again to go on")
        else:
            failures |= code
    else:
        report.note("paper-scale g_∞ runs", "left out: the budget was spent")
    print(f"report: {report_path}")
    return 1 if failures else 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    getting = commands.add_parser("prepare", help="download the wheels (where the internet works)")
    getting.add_argument("--wheels", type=Path, default=WHEELS)
    running = commands.add_parser("run", help="install from the wheels, test, benchmark, run the paper's scale")
    running.add_argument("--wheels", type=Path, default=WHEELS)
    running.add_argument("--budget-minutes", type=float, default=90.0,
                         help="the time for the whole check; the paper-scale runs get what is left (default 90)")
    running.add_argument("--report", type=Path, default=REPORT)
    args = parser.parse_args(argv)
    if args.command == "prepare":
        return prepare(args.wheels)
    if args.budget_minutes <= 0:
        parser.error(f"--budget-minutes must be positive, got {args.budget_minutes}")
    return run(args.wheels, args.budget_minutes, args.report)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
