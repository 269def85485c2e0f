"""Mutation testing of course_lib: how many planted bugs each core module's own unit tests catch.

    python3 maintainers/mutation.py                  every core module (12 to 20 minutes on a 2-core machine)
    python3 maintainers/mutation.py optim ginfty     some of them
    python3 maintainers/mutation.py --list           the modules and the tests each is measured with

For maintainers, not part of CI. mutmut (3.x, from PyPI, installed into .venv on first use) plants one small bug at a
time in a module — an operator, a constant, a comparison, an argument or a return value changed, a call removed — and
runs that module's unit tests against each mutant: a mutant the tests fail on is *killed*, one they pass is a
*survivor*, either a gap in the tests or an *equivalent* mutant (a change no test could see, such as a different but
equally valid tqdm description). Every survivor no test kills is recorded in ``maintainers/mutation_survivors/<module>.toml``
with the reason: ``equivalent = true`` when no program could tell it from the original, ``equivalent = false`` when a
test could but not on this machine (a mutant that only breaks on a GPU). The score is killed / (killed + survived −
equivalent): the share of the mutants a test could catch that the tests do catch. An entry names the function
(mutmut's key without the number) and the changed code (the original lines and the mutant's, stripped), so it still
finds its mutant when mutmut renumbers them; an entry that matches no survivor any more is reported as stale.

Each module runs in a scratch copy of the repository (mutmut writes its mutants into the working folder) with one
torch thread: mutmut forks one process per mutant, and a forked child of a process whose OpenMP thread pool is running
hangs. Results: ``results/mutation.json`` (counts; the survivors with their changes, split into the
recorded ones with their reasons and the unexplained ones; stale entries; per module) and a table on standard output. ``--keep DIR`` keeps each module's scratch copy in DIR/<module> for
reading a survivor (``.venv/bin/python -m mutmut show NAME`` there) or re-running some (``mutmut run NAME…``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "results" / "mutation.json"
RECORDED = ROOT / "maintainers" / "mutation_survivors"
MUTMUT = "mutmut>=3.8,<4"

# module: (the files mutated, the unit tests that measure them); a package's experiments (the lectures' training
# runs, tested by running them) are not mutated
MODULES = {
    "optim": (["course_lib/optim/*"], ["tests/test_optim.py"]),
    "layers": ([f"course_lib/layers/{name}.py" for name in ("__init__", "batchnorm", "dropout", "layernorm",
                                                              "residual")],
               ["tests/test_batchnorm.py", "tests/test_dropout.py", "tests/test_layernorm.py", "tests/test_residual.py"]),
    "ginfty": (["course_lib/ginfty/layer.py"], ["tests/test_ginfty.py"]),
    "compression": ([f"course_lib/compression/{name}.py" for name in ("activations", "blocks", "counting", "distillation",
                                                                      "factorization", "pruning", "quantization",
                                                                      "sharing")],
                    ["tests/test_compression.py", "tests/test_quantization.py", "tests/test_distillation.py"]),
    "visualization": ([f"course_lib/visualization/{name}.py" for name in ("attribution", "capture", "checkerboard",
                                                                          "deconvnet", "maximize", "sanity")] + ["course_lib/rank_correlation.py"],
                      ["tests/test_visualization.py", "tests/test_attribution.py"]),
    "training": (["course_lib/training.py"], ["tests/test_training.py"]),
    "data": (["course_lib/data.py", "course_lib/augmentation.py"], ["tests/test_data.py", "tests/test_augmentation.py"]),
    "grading verdicts": (["course_lib/grading/verdicts.py"], ["tests/test_grading.py", "tests/test_grading_verdicts.py"]),
}
SINGLE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "COURSE_THREADS": "1"}

# Run by the virtual environment's Python in a scratch copy after `mutmut run`: each survivor's diff, as JSON.
SURVIVOR_DIFFS = """
import json
from mutmut.__main__ import status_by_exit_code
from mutmut.mutation.data import SourceFileMutationData
from mutmut.mutation.diff_apply import get_diff_for_mutant
from mutmut.utils.file_utils import walk_mutatable_files

diffs = {}
for path in walk_mutatable_files():
    data = SourceFileMutationData(path=path)
    data.load()
    for name, exit_code in data.exit_code_by_key.items():
        if status_by_exit_code[exit_code] == "survived":
            diffs[name] = get_diff_for_mutant(name, path=path)
print(json.dumps(diffs))
"""


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


def file_name(name: str) -> str:
    """A core module's name as a file or folder name ("grading verdicts" → "grading_verdicts")."""
    return name.replace(" ", "_")


def recorded_file(name: str) -> Path:
    return RECORDED / f"{file_name(name)}.toml"


def changed_code(diff: str) -> dict[str, str]:
    """The lines a mutant's unified diff removes and adds, each stripped, joined by newlines."""
    lines = diff.splitlines()[2:]  # after the ---/+++ header
    return {"removed": "\n".join(line[1:].strip() for line in lines if line.startswith("-")),
            "added": "\n".join(line[1:].strip() for line in lines if line.startswith("+"))}


def load_recorded(name: str) -> list[dict]:
    """The recorded survivors of one module: dicts with function, removed, added, equivalent and reason."""
    path = recorded_file(name)
    if not path.exists():
        return []
    entries = tomllib.loads(path.read_text()).get("survivor", [])
    for number, entry in enumerate(entries, 1):
        missing = sorted({"function", "removed", "added", "equivalent", "reason"} - set(entry))
        if missing or not isinstance(entry["equivalent"], bool) or not entry["reason"].strip():
            raise SystemExit(f"{path}: survivor entry {number} needs function, removed, added, equivalent "
                             f"(true or false) and a reason; missing: {missing or 'none'}")
    return entries


def match_recorded(survivors: dict[str, dict], entries: list[dict]) -> tuple[dict[str, dict], list[dict]]:
    """Which survivors are recorded (name → its entry), and the entries that match no survivor."""
    matched, used = {}, set()
    for name, change in survivors.items():
        function = name.rsplit("__mutmut_", 1)[0]
        for number, entry in enumerate(entries):
            if (entry["function"], entry["removed"], entry["added"]) == (function, change["removed"], change["added"]):
                matched[name] = entry
                used.add(number)
                break
    stale = [entry for number, entry in enumerate(entries) if number not in used]
    return matched, stale


@contextlib.contextmanager
def scratch_folder(name: str, keep: Path | None):
    """An empty folder for one module's run: a temporary one, or ``keep``/<module>, emptied first and kept after."""
    if keep is None:
        with tempfile.TemporaryDirectory(prefix="course-mutation-") as scratch:
            yield Path(scratch)
        return
    work = keep / file_name(name)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    yield work


def measure(name: str, python: Path, workers: int, keep: Path | None) -> dict:
    """Run mutmut on one module in a scratch copy; its counts, survivors (recorded or not) and run time."""
    mutated, tests = MODULES[name]
    with scratch_folder(name, keep) as work:
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
        diffs = subprocess.run([str(python), "-c", SURVIVOR_DIFFS], cwd=work, env=environment, check=True,
                               capture_output=True, text=True).stdout
    survivors = {mutant: changed_code(diff) for mutant, diff in sorted(json.loads(diffs).items())}
    recorded, stale = match_recorded(survivors, load_recorded(name))
    equivalent = sum(entry["equivalent"] for entry in recorded.values())
    judged = counts["killed"] + counts["survived"] - equivalent
    return {"files": mutated, "tests": tests, "mutants": counts["total"], "killed": counts["killed"],
            "survived": counts["survived"], "equivalent": equivalent, "timeout": counts["timeout"],
            "no_tests": counts["no_tests"], "score": round(counts["killed"] / judged, 4) if judged else None,
            "seconds": round(seconds, 1),
            "unexplained": {n: c for n, c in survivors.items() if n not in recorded},
            "recorded": {n: {**survivors[n], "equivalent": e["equivalent"], "reason": e["reason"]}
                         for n, e in recorded.items()},
            "stale_entries": stale}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="*", help=f"core modules (default: all of {', '.join(MODULES)})")
    parser.add_argument("--workers", type=int, default=max(1, min(os.cpu_count() or 1, 4)),
                        help="mutants tested at once (default: one per core, at most 4)")
    parser.add_argument("--list", action="store_true", help="print the modules and their tests, measure nothing")
    parser.add_argument("--keep", type=Path, metavar="DIR",
                        help="keep each module's scratch copy in DIR/<module> (to show or re-run survivors)")
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
    print(f"{'module':>17} {'mutants':>8} {'killed':>7} {'survived':>9} {'equivalent':>11} {'unexplained':>12} "
          f"{'score':>7} {'time':>7}", flush=True)
    for name in args.modules or list(MODULES):
        entry = measure(name, python, args.workers, args.keep.resolve() if args.keep else None)
        results[name] = entry
        RESULTS.parent.mkdir(exist_ok=True)
        RESULTS.write_text(json.dumps(results, indent=1, ensure_ascii=False) + "\n")
        score = f"{100 * entry['score']:.1f} %" if entry["score"] is not None else "-"
        print(f"{name:>17} {entry['mutants']:>8} {entry['killed']:>7} {entry['survived']:>9} {entry['equivalent']:>11} "
              f"{len(entry['unexplained']):>12} {score:>7} {entry['seconds']:>6.0f}s", flush=True)
        for stale in entry["stale_entries"]:
            print(f"{'':>17} stale entry in {recorded_file(name).name} (no survivor matches it): "
                  f"{stale['function']}: {stale['removed']!r} → {stale['added']!r}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
