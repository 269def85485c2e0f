"""The g_∞ paper's two experiments at the paper's scale, and the reference implementation's own logs.

    python maintainers/paper_results.py run --device cuda --budget-minutes 480     # the paper's runs, resumable
    python maintainers/paper_results.py import-reference ../shared/reference/ginfty_logs

``run`` trains XOR parity for n = 0 … 8 active bits (100 000 steps each, the reference's settings) and
the MNIST network for 5 000 epochs on 50 000 digits, as `course_lib.ginfty.experiments` does at the
``paper`` scale. Each run saves a checkpoint every few minutes under ``checkpoints/``; when the budget
is spent, or on Ctrl-C, the script stops after saving, and the same command later resumes where it
stopped. Finished runs are written, downsampled to a few kilobytes, to ``results/paper/``.

``import-reference`` converts the reference implementation's logged runs (its Keras histories, as JSON)
into the same small format under ``results/reference/``: XOR every 100 steps up to step 10 000 and every
1 000 after it, MNIST every 25 epochs,
with the full-resolution summary values (final w, best and final test accuracy) kept exactly.

Lecture 07 plots both beside the student's own run (`course_lib.ginfty.experiments.shipped_log`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

RESULTS = ROOT / "results"
XOR_EVERY, MNIST_EVERY = 1_000, 25  # downsampling: steps between XOR records, epochs between MNIST records
XOR_FULL_UNTIL = 10_000  # the XOR records are kept at full resolution (every 100 steps) up to this step


def every(values: list, stride: int) -> list:
    """Every ``stride``-th value, the last one always included."""
    picked = values[::stride]
    if (len(values) - 1) % stride:
        picked.append(values[-1])
    return picked


def xor_records(steps: list[int]) -> list[int]:
    """Indices of the XOR records kept: every one up to `XOR_FULL_UNTIL` (where the lecture's own runs end, so
    they can be compared step for step), every `XOR_EVERY` steps after it, and the last."""
    kept = [i for i, step in enumerate(steps) if step <= XOR_FULL_UNTIL or step % XOR_EVERY == 0]
    if kept[-1] != len(steps) - 1:
        kept.append(len(steps) - 1)
    return kept


def rounded(values: list[float], digits: int = 5) -> list[float]:
    return [round(float(v), digits) for v in values]


def write(path: Path, log: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(log, separators=(",", ":")) + "\n")
    print(f"wrote {path.relative_to(ROOT)} ({path.stat().st_size / 1024:.1f} KB)")


def import_reference(folder: Path) -> None:
    xor = json.loads((folder / "xor.json").read_text())
    kept = xor_records(xor["step"])
    write(RESULTS / "reference" / "ginfty_xor.json", {
        "source": xor["source"],
        "label": "reference implementation (Keras), 100 000 steps",
        "step": [xor["step"][i] for i in kept],
        "tasks": {n: {"w": rounded([task["w"][i] for i in kept]),
                      "val_accuracy": rounded([task["val_acc"][i] for i in kept], 4)}
                  for n, task in xor["tasks"].items()},
        "final_w": {n: task["w"][-1] for n, task in xor["tasks"].items()},
    })
    mnist = json.loads((folder / "mnist.json").read_text())
    write(RESULTS / "reference" / "ginfty_mnist.json", {
        "source": mnist["source"],
        "label": "reference implementation (Keras), 5 000 epochs",
        "epoch": every(mnist["epoch"], MNIST_EVERY),
        "w": {name: rounded(every(mnist[f"w_{name}"], MNIST_EVERY)) for name in ("cnn0", "cnn1", "fc0")},
        "test_accuracy": rounded(every(mnist["test_acc"], MNIST_EVERY), 4),
        "best_test_accuracy": max(mnist["test_acc"]),
        "final_test_accuracy": mnist["test_acc"][-1],
        "final_w": {name: mnist[f"w_{name}"][-1] for name in ("cnn0", "cnn1", "fc0")},
    })


def run(device: str | None, budget_minutes: float, only: list[str]) -> int:
    import torch

    from course_lib.checkpoints import checkpoint_path
    from course_lib.ginfty.experiments import format_duration, run_mnist, run_xor
    from course_lib.runtime import PAPER, choose_device, default_threads

    chosen = choose_device(device)
    torch.set_num_threads(default_threads())
    deadline = time.monotonic() + 60 * budget_minutes
    print(f"paper scale on {chosen}, budget {format_duration(60 * budget_minutes)}; checkpoints in "
          f"{checkpoint_path('x').parent}", flush=True)
    finished = True
    if "xor" in only:
        tasks = {}
        for n in range(9):
            if time.monotonic() > deadline:
                finished = False
                break
            try:
                tasks[str(n)] = run_xor(n, steps=PAPER.xor_steps, device=chosen, checkpoint=checkpoint_path(f"paper_xor_n{n}"),
                                        checkpoint_every_s=120, progress=True, deadline=deadline)
            except TimeoutError as stopped:
                print(stopped, flush=True)
                finished = False
                break
        if len(tasks) == 9:
            kept = xor_records(tasks["0"]["steps"])
            write(RESULTS / "paper" / "ginfty_xor.json", {
                "source": f"maintainers/paper_results.py on {chosen}", "label": f"course_lib, {PAPER.xor_steps} steps",
                "step": [tasks["0"]["steps"][i] for i in kept],
                "tasks": {n: {"w": rounded([t["w"][i] for i in kept]),
                              "val_accuracy": rounded([t["val_accuracy"][i] for i in kept], 4)} for n, t in tasks.items()},
                "final_w": {n: t["final_w"] for n, t in tasks.items()},
                "seconds": {n: round(t["seconds"]) for n, t in tasks.items()},
            })
    if "mnist" in only and time.monotonic() < deadline:
        try:
            log = run_mnist(widths=PAPER.ginfty_mnist_widths, epochs=PAPER.ginfty_mnist_epochs, batch_size=PAPER.ginfty_mnist_batch,
                            train_size=PAPER.ginfty_mnist_train, device=chosen, checkpoint=checkpoint_path("paper_mnist"),
                            checkpoint_every_s=120, progress=True, deadline=deadline)
        except TimeoutError as stopped:
            print(stopped, flush=True)
            log, finished = None, False
        if log is not None:
            write(RESULTS / "paper" / "ginfty_mnist.json", {
                "source": f"maintainers/paper_results.py on {chosen}; {log['source']}",
                "label": f"course_lib, {PAPER.ginfty_mnist_epochs} epochs",
                "epoch": every(list(range(len(log["test_accuracy"]))), MNIST_EVERY),
                "w": {name: rounded(every(values, MNIST_EVERY)) for name, values in log["w"].items()},
                "test_accuracy": rounded(every(log["test_accuracy"], MNIST_EVERY), 4),
                "best_test_accuracy": max(log["test_accuracy"]), "test_at_best_validation": log["test_at_best"],
                "final_test_accuracy": log["final_test"], "final_w": log["final_w"], "seconds": round(log["seconds"]),
            })
    elif "mnist" in only:
        finished = False
    if not finished:
        print("budget spent: the runs are checkpointed; run the same command again to go on", flush=True)
        return 3
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    running = commands.add_parser("run", help="the paper-scale runs (resumable)")
    running.add_argument("--device", default=None, help="cpu, cuda, cuda:N, mps (default: COURSE_DEVICE or auto)")
    running.add_argument("--budget-minutes", type=float, default=60.0, help="stop (checkpointed) after this long")
    running.add_argument("--only", nargs="+", choices=["xor", "mnist"], default=["xor", "mnist"])
    importing = commands.add_parser("import-reference", help="convert the reference implementation's logs")
    importing.add_argument("folder", type=Path, help="the folder holding xor.json and mnist.json")
    args = parser.parse_args(argv)
    if args.command == "import-reference":
        for name in ("xor.json", "mnist.json"):
            if not (args.folder / name).is_file():
                parser.error(f"folder: {args.folder / name} does not exist")
        import_reference(args.folder)
        return 0
    if args.budget_minutes <= 0:
        parser.error(f"--budget-minutes must be positive, got {args.budget_minutes}")
    return run(args.device, args.budget_minutes, args.only)


if __name__ == "__main__":
    sys.exit(main())
