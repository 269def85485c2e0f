"""The two commands: ``course-grade`` (grade a batch, or one shard of it) and ``course-grade-merge``.

    course-grade SOLUTIONS SUBMISSIONS [-o OUTPUT] [-j WORKERS] [--cell-timeout S] [--timeout S]
                 [--threads N] [--device cpu|cuda] [--memory GIB] [--shard K/N] [--manual SCORES] [--no-sandbox]
    course-grade-merge -o OUTPUT SHARD_OUTPUT [SHARD_OUTPUT ...]

The exit status is 0 when the batch was graded (whatever the students' results), 2 when the grader could not
grade it (bad arguments, unusable solutions, no sandbox without ``--no-sandbox``).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path

from course_lib.grading import reports, runner, sandbox
from course_lib.grading.batch import grade, summary


def _shard(text: str) -> tuple[int, int]:
    try:
        index, count = (int(x) for x in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--shard must look like K/N (e.g. 2/8), got {text!r}") from None
    if not 1 <= index <= count:
        raise argparse.ArgumentTypeError(f"--shard K/N needs 1 ≤ K ≤ N, got {text!r}")
    return index, count


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")
    return value


def _stop_on_sigterm() -> None:
    """A terminated grader still removes its private folder (the ``finally`` blocks run)."""
    def stop(signum, frame):
        raise SystemExit(128 + signum)
    signal.signal(signal.SIGTERM, stop)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="course-grade", description="Grade exercise notebooks through nbval, each "
                                     "submission's kernel in its own sandbox.")
    parser.add_argument("solutions", type=Path, help="solutions/ or one solution notebook")
    parser.add_argument("submissions", type=Path, help="a folder of <student>.ipynb or <student>/<NN_topic>.ipynb")
    parser.add_argument("-o", "--output", type=Path, default=Path("grading"), help="where grades.csv and feedback/ go")
    parser.add_argument("-j", "--workers", type=_positive, default=2, help="notebooks run in parallel (default 2)")
    parser.add_argument("--cell-timeout", type=_positive, default=120, help="seconds allowed per cell (default 120)")
    parser.add_argument("--timeout", type=_positive, default=900, help="seconds allowed per notebook (default 900)")
    parser.add_argument("--threads", type=_positive, default=int(os.environ.get("COURSE_THREADS", "1") or 1),
                        help="torch threads of each kernel (default: COURSE_THREADS, else 1)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="device of each kernel (default cpu)")
    parser.add_argument("--memory", type=_positive, default=sandbox.Limits.memory // sandbox.GiB,
                        help="GiB of memory for each notebook run as a whole, kernel and all it starts (default 4; "
                        "less when the grader's own job limit leaves less per worker)")
    parser.add_argument("--shard", type=_shard, default=(1, 1), help="grade only the K-th of N slices of the students")
    parser.add_argument("--manual", type=Path, default=None, help="the filled-in manual/scores.csv: adds the points "
                        "of the written answers (reusing the earlier run in OUTPUT when nothing else changed)")
    parser.add_argument("--no-sandbox", action="store_true", help="run kernels without a sandbox (unsafe: a "
                        "submission can then read the solutions and other submissions)")
    args = parser.parse_args(argv)
    _stop_on_sigterm()
    settings = runner.RunSettings(cell_timeout=args.cell_timeout, timeout=args.timeout,
                                  limits=sandbox.Limits(memory=args.memory * sandbox.GiB))
    try:
        batch = grade(args.solutions, args.submissions, args.output, args.workers, settings, threads=args.threads,
                      device=args.device, shard_spec=args.shard, sandboxed=not args.no_sandbox, manual=args.manual)
    except ValueError as error:
        print(f"course-grade: {error}", file=sys.stderr)
        return 2
    print(summary(batch))
    print(f"grades: {args.output / 'grades.csv'}; feedback: {args.output / 'feedback'}; "
          f"manifest: {args.output / reports.MANIFEST}")
    return 0


def merge_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="course-grade-merge", description="Join the outputs of the N shards of "
                                     "one course-grade batch into one grades.csv, feedback folder and manifest.")
    parser.add_argument("shards", type=Path, nargs="+", help="the output folders of course-grade --shard K/N")
    parser.add_argument("-o", "--output", type=Path, required=True, help="the merged output folder")
    args = parser.parse_args(argv)
    try:
        merged = reports.merge(args.shards, args.output)
    except ValueError as error:
        print(f"course-grade-merge: {error}", file=sys.stderr)
        return 2
    print(f"merged {len(args.shards)} shards: {len(merged['students'])} students into {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
