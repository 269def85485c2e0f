"""Mutation testing of course_lib: how many planted bugs each core module's own unit tests catch.

    python3 mutation.py                  every core module (about 15 minutes on a 2-core machine)
    python3 mutation.py optim ginfty     some of them
    python3 mutation.py --list           the modules and the tests each is measured with

For maintainers, not part of CI. mutmut (3.x, from PyPI, installed into .venv on first use) plants one small bug at a
time in a module — an operator, a constant, a comparison, an argument or a return value changed, a call removed — and
runs that module's unit tests against each mutant: a mutant the tests fail on is *killed*, one they pass is a
*survivor*, either a gap in the tests or an *equivalent* mutant (a change no test could see, such as a different but
equally valid tqdm description). The score is killed / (killed + survived), and the survivors are listed so that each
can be killed by a new test or recorded as equivalent.

Each module runs in a scratch copy of the repository (mutmut writes its mutants into the working folder) with one
torch thread: mutmut forks one process per mutant, and a forked child of a process whose OpenMP thread pool is running
hangs. Results: ``results/mutation.json`` (counts and survivors per module) and a table on standard output.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results" / "mutation.json"
MUTMUT = "mutmut>=3.8,<4"

# module: (the files mutated, the unit tests that measure them)
MODULES = {
    "optim": (["course_lib/optim.py"], ["tests/test_optim.py"]),
    "layers": (["course_lib/layers/*"], ["tests/test_batchnorm.py", "tests/test_dropout.py", "tests/test_residual.py"]),
    "ginfty": (["course_lib/ginfty.py"], ["tests/test_ginfty.py"]),
    "compression": (["course_lib/compression/*"], ["tests/test_compression.py"]),
    "visualization": (["course_lib/visualization/*"], ["tests/test_visualization.py"]),
    "training": (["course_lib/training.py"], ["tests/test_training.py"]),
    "data": (["course_lib/data.py", "course_lib/augmentation.py"], ["tests/test_data.py", "tests/test_augmentation.py"]),
    "grading verdicts": (["course_lib/grading/verdicts.py"], ["tests/test_grading.py"]),
}
SINGLE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "COURSE_THREADS": "1"}


def venv_python() -> Path:
    python = ROOT / ".venv" / "bin" / "python"
    if not python.exists():
        raise SystemExit("no .venv: run `python3 course.py test` once first, which creates it")
    return python


def ensure_mutmut(python: Path) -> None:
    if subprocess.run([str(python), "-c", "import mutmut"], capture_output=True).returncode != 0:
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", MUTMUT], check=True)


def toml_list(values: list[str]) -> str:
    return "[" + ", ".join(json.dumps(v) for v in values) + "]"


def measure(name: str, python: Path, workers: int) -> dict:
    """Run mutmut on one module in a scratch copy; its counts, survivors and run time."""
    mutated, tests = MODULES[name]
    with tempfile.TemporaryDirectory(prefix="course-mutation-") as scratch:
        work = Path(scratch)
        for item in ("course_lib", "tests", "solutions", "exercises", "conftest.py", "pyproject.toml"):
            source = ROOT / item
            (shutil.copytree if source.is_dir() else shutil.copy2)(source, work / item)
        with (work / "pyproject.toml").open("a") as config:
            config.write("\n[tool.mutmut]\n"
                         'source_paths = ["course_lib/"]\n'
                         f"only_mutate = {toml_list(mutated)}\n"
                         f"pytest_add_cli_args_test_selection = {toml_list(tests)}\n"
                         'also_copy = ["solutions/", "exercises/", "conftest.py"]\n'
                         # the sandboxed grading batches run whole notebooks: too slow to repeat per mutant
                         'pytest_add_cli_args = ["-m", "not grading and not complete"]\n')
        mutmut = [str(python), "-m", "mutmut"]
        environment = {**os.environ, **SINGLE_THREAD}
        started = time.monotonic()
        run = subprocess.run([*mutmut, "run", "--max-children", str(workers)], cwd=work, env=environment,
                             capture_output=True, text=True)
        seconds = time.monotonic() - started
        if run.returncode != 0:
            raise SystemExit(f"mutmut failed on {name}:\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}")
        subprocess.run([*mutmut, "export-cicd-stats"], cwd=work, env=environment, check=True, capture_output=True)
        counts = json.loads((work / "mutants" / "mutmut-cicd-stats.json").read_text())
        listed = subprocess.run([*mutmut, "results"], cwd=work, env=environment, capture_output=True, text=True).stdout
    survivors = sorted(line.split(":")[0].strip() for line in listed.splitlines() if line.strip().endswith(": survived"))
    judged = counts["killed"] + counts["survived"]
    return {"files": mutated, "tests": tests, "mutants": counts["total"], "killed": counts["killed"],
            "survived": counts["survived"], "timeout": counts["timeout"], "no_tests": counts["no_tests"],
            "score": round(counts["killed"] / judged, 4) if judged else None, "seconds": round(seconds, 1),
            "survivors": survivors}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="*", help=f"core modules (default: all of {', '.join(MODULES)})")
    parser.add_argument("--workers", type=int, default=max(1, min(os.cpu_count() or 1, 4)),
                        help="mutants tested at once (default: one per core, at most 4)")
    parser.add_argument("--list", action="store_true", help="print the modules and their tests, measure nothing")
    args = parser.parse_args(argv)
    unknown = [m for m in args.modules if m not in MODULES]
    if unknown:
        parser.error(f"unknown module(s) {unknown}; the core modules are {list(MODULES)}")
    if args.workers < 1:
        parser.error(f"--workers must be a positive whole number, got {args.workers}")
    if args.list:
        for name, (mutated, tests) in MODULES.items():
            print(f"{name:>17}: {' '.join(mutated)}  ←  {' '.join(tests)}")
        return 0
    python = venv_python()
    ensure_mutmut(python)
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    print(f"{'module':>17} {'mutants':>8} {'killed':>7} {'survived':>9} {'score':>7} {'time':>7}", flush=True)
    for name in args.modules or list(MODULES):
        entry = measure(name, python, args.workers)
        results[name] = entry
        RESULTS.parent.mkdir(exist_ok=True)
        RESULTS.write_text(json.dumps(results, indent=1, ensure_ascii=False) + "\n")
        score = f"{100 * entry['score']:.1f} %" if entry["score"] is not None else "-"
        print(f"{name:>17} {entry['mutants']:>8} {entry['killed']:>7} {entry['survived']:>9} {score:>7} "
              f"{entry['seconds']:>6.0f}s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
