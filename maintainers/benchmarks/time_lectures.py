"""How long each lecture takes at a scale: top to bottom, cell by cell, and every panel move.

    python maintainers/benchmarks/time_lectures.py --scale lecture --moves            # every lecture, this machine
    python maintainers/benchmarks/time_lectures.py --scale lecture 03_dropout 07_ginfty
    python maintainers/benchmarks/time_lectures.py --scale quick --device cuda

Each lecture runs in a fresh kernel of this environment, as a student's Run All would, with
``COURSE_SCALE`` set (`course_lib.notebook_runs`). The time of a cell is measured inside the kernel,
from IPython's pre- to its post-run event; a cell the client waited on after the kernel had finished
it is reported. With ``--moves`` a last cell then moves every control of every experiment panel to
each end of its range that is not its current value, one after the other, and times each run of the
experiment: the slowest corner a student can reach one move at a time. The data are what the machine
has: with only MNIST's test split, 8 000 training and 2 000 held-out digits; ``--simulate-full-mnist``
repeats them to the full dataset's size, for its times (see `course_lib.data`).

The results are merged into ``results/lecture_times.json`` (one entry per lecture, scale and
machine), which the README's lecture table quotes. ``--annotate`` writes them into each lecture's
first cell as a "Run time" note (from the entries of this machine). The budget of the ``lecture``
scale is checked and printed: at most 5 minutes per lecture, 60 s per cell or move.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import nbformat  # noqa: E402

from course_lib.notebook_runs import WAIT_TOLERANCE_S, run_notebook  # noqa: E402

RESULTS = ROOT / "results" / "lecture_times.json"
LECTURE_BUDGET_S = 300.0  # a lecture, top to bottom
CELL_BUDGET_S = 60.0  # one cell, or one move of a panel's control

def time_lecture(path: Path, moves: bool, cell_timeout_s: int, keep: Path | None = None) -> dict:
    """Run one lecture top to bottom (and its panel moves) with `course_lib.notebook_runs`; its times as a dict."""
    def report(entry):
        if entry["kernel_s"] >= 5 or entry["client_s"] - (entry["reply_s"] or 0) > WAIT_TOLERANCE_S:
            print(f"    {path.stem} cell {entry['index']}: {entry['kernel_s']:.1f} s in the kernel, "
                  f"{entry['client_s']:.1f} s for the client", flush=True)

    run = run_notebook(path, timeout_s=cell_timeout_s, sweep=moves, on_cell=report)
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        nbformat.write(run.notebook, keep / path.name)
    return {
        "top_to_bottom_s": round(run.top_to_bottom_s, 1),
        "with_kernel_start_s": round(run.wall_s - sum(m["seconds"] for m in run.moves), 1),
        "slowest_cell": {"index": run.slowest_cell["index"], "seconds": round(run.slowest_cell["kernel_s"], 1)},
        "cells_s": {str(cell["index"]): round(cell["kernel_s"], 2) for cell in run.cells},
        "client_waits": [{"index": cell["index"], "kernel_s": round(cell["kernel_s"], 2), "client_s": round(cell["client_s"], 2)}
                         for cell in run.waits],
        "moves": run.moves,
        "errors": run.errors,
    }


RUN_TIME_MARK = "> **Run time**"


def seconds_in_words(seconds: float) -> str:
    if seconds < 1:
        return "under 1 s"
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"


def annotate(paths: list[Path], results: dict, where: str) -> None:
    """Write each lecture's measured times into the end of its first (markdown) cell."""
    for path in paths:
        lecture = results.get(f"{path.stem} | lecture | {where}")
        quick = results.get(f"{path.stem} | quick | {where}")
        if lecture is None:
            print(f"{path.stem}: no lecture-scale time measured on {where}; not annotated")
            continue
        worst_move = max((m["seconds"] for m in lecture["moves"]), default=None)
        note = (f"{RUN_TIME_MARK}, measured on a {where}: {seconds_in_words(lecture['top_to_bottom_s'])} top to bottom at the "
                f"lecture scale (the default; slowest cell {seconds_in_words(lecture['slowest_cell']['seconds'])}"
                + (f", slowest slider move {seconds_in_words(worst_move)}" if worst_move is not None else "") + ")"
                + (f", {seconds_in_words(quick['top_to_bottom_s'])} at the quick scale" if quick else "")
                + ". `COURSE_SCALE=paper` uses the sources' settings instead: far longer, meant for a GPU. "
                  "(Measured with `maintainers/benchmarks/time_lectures.py`.)")
        notebook = nbformat.read(path, as_version=4)
        first = notebook.cells[0]
        if first.cell_type != "markdown":
            raise ValueError(f"{path.name}: the first cell is not markdown; nowhere to put the run time")
        kept = [line for line in first.source.rstrip().split("\n") if not line.startswith(RUN_TIME_MARK)]
        while kept and not kept[-1].strip():
            kept.pop()
        first.source = "\n".join(kept) + "\n\n" + note
        nbformat.write(notebook, path)
        print(f"{path.stem}: {note}")


def machine() -> str:
    import torch

    from course_lib.runtime import choose_device, default_threads

    device = choose_device()
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (cuda)"
    return f"{os.cpu_count()}-core {platform.machine()} CPU, {default_threads()} torch thread(s)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("lectures", nargs="*", help="lecture names or number prefixes (default: all)")
    parser.add_argument("--scale", choices=["quick", "lecture", "paper"], default="lecture")
    parser.add_argument("--moves", action="store_true", help="also move every panel control to its ends")
    parser.add_argument("--device", default=None, help="cpu, cuda, mps (default: COURSE_DEVICE or auto)")
    parser.add_argument("--cell-timeout", type=int, default=600,
                        help="seconds one cell may take before the lecture is run again, once (default 600)")
    parser.add_argument("--simulate-full-mnist", action="store_true",
                        help="with only MNIST's test split, repeat it to the full dataset's size (the full dataset's times, "
                             "not its accuracies; see course_lib.data)")
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--keep", type=Path, default=None, help="save each executed notebook into this folder")
    parser.add_argument("--annotate", action="store_true",
                        help="measure nothing; write this machine's measured times into each lecture's first cell")
    args = parser.parse_args(argv)

    os.environ["COURSE_SCALE"] = args.scale
    os.environ.pop("COURSE_QUICK", None)
    if args.simulate_full_mnist:
        os.environ["COURSE_SIMULATE_FULL_MNIST"] = "1"
    os.environ.setdefault("COURSE_SIMULATE_FULL_MNIST", "0")
    if args.device:
        os.environ["COURSE_DEVICE"] = args.device
    os.environ.setdefault("MPLBACKEND", "Agg")
    paths = sorted((ROOT / "lectures").glob("[0-9][0-9]_*.ipynb"))
    if args.lectures:
        chosen = [p for p in paths if any(p.stem.startswith(name) for name in args.lectures)]
        unknown = [n for n in args.lectures if not any(p.stem.startswith(n) for p in paths)]
        if unknown:
            parser.error(f"no lecture matches {unknown}; the lectures are {[p.stem for p in paths]}")
        paths = chosen

    where = machine()
    results = json.loads(args.output.read_text()) if args.output.exists() else {}
    if args.annotate:
        annotate(paths, results, where)
        return 0
    print(f"{args.scale} scale on {where}" + (", panel moves included" if args.moves else ""), flush=True)
    over_budget, failed = [], []
    for path in paths:
        entry = time_lecture(path, args.moves, args.cell_timeout, args.keep)
        entry.update(lecture=path.stem, scale=args.scale, machine=where, measured=time.strftime("%Y-%m-%d"),
                     simulated_full_mnist=os.environ["COURSE_SIMULATE_FULL_MNIST"] == "1")
        # read again just before writing: a run of other lectures may have written its entries meanwhile
        results = json.loads(args.output.read_text()) if args.output.exists() else {}
        results[f"{path.stem} | {args.scale} | {where}"] = entry
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(dict(sorted(results.items())), indent=1) + "\n")
        slowest_move = max(entry["moves"], key=lambda m: m["seconds"], default=None)
        print(f"{path.stem:<22} {entry['top_to_bottom_s']:7.1f} s top to bottom, slowest cell {entry['slowest_cell']['index']}: "
              f"{entry['slowest_cell']['seconds']:.1f} s" + (f", slowest move {slowest_move['panel']}.{slowest_move['control']}="
                                                              f"{slowest_move['value']}: {slowest_move['seconds']:.1f} s" if slowest_move else ""),
              flush=True)
        for error in entry["errors"]:
            print(f"    error in {error}", flush=True)
        for wait in entry["client_waits"]:
            print(f"    the client waited on finished cell {wait['index']}: {wait['client_s']:.1f} s for "
                  f"{wait['kernel_s']:.1f} s in the kernel", flush=True)
        if entry["errors"]:
            failed.append(path.stem)
        if args.scale == "lecture":
            worst = max([entry["slowest_cell"]["seconds"]] + [m["seconds"] for m in entry["moves"]])
            if entry["top_to_bottom_s"] > LECTURE_BUDGET_S or worst > CELL_BUDGET_S:
                over_budget.append(path.stem)
    if failed:
        print(f"cells failed in: {', '.join(failed)} (the times of these lectures are not comparable)")
    if over_budget:
        print(f"over the lecture scale's budget ({LECTURE_BUDGET_S:.0f} s per lecture, {CELL_BUDGET_S:.0f} s per cell or move): "
              f"{', '.join(over_budget)}")
        return 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
