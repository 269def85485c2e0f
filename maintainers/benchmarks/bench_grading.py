"""Time to grade 30 submissions of one exercise with course-grade, in the sandbox and without it, in one run.

    python maintainers/benchmarks/bench_grading.py [--students 30] [--workers 2] [--exercise 01_batch_sgd] [--rounds 1] [--device cuda]

The submissions are copies of the exercise's solution (every part runs to the end, the slowest case). Each round
grades the batch once sandboxed and once with --no-sandbox (alternating which goes first), and the script prints
each time, per submission, the ratio sandboxed / not sandboxed, and the grader's own peak memory (its resident
set, not counting the notebook runs it starts).
"""

from __future__ import annotations

import argparse
import resource
import shutil
import tempfile
import time
from pathlib import Path

from course_lib.grading.batch import grade

ROOT = Path(__file__).resolve().parents[2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--students", type=int, default=30)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--exercise", default="01_batch_sgd")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--device", default="cpu", help="the device the submissions' kernels compute on (default cpu)")
    args = parser.parse_args()
    solution = ROOT / "solutions" / f"{args.exercise}.ipynb"
    times: dict[bool, list[float]] = {True: [], False: []}
    with tempfile.TemporaryDirectory() as folder:
        submissions = Path(folder) / "submissions"
        submissions.mkdir()
        for k in range(args.students):
            shutil.copy(solution, submissions / f"student{k:03d}.ipynb")
        for round_ in range(args.rounds):
            for sandboxed in ((True, False) if round_ % 2 == 0 else (False, True)):
                output = Path(folder) / f"output-{round_}-{sandboxed}"
                start = time.perf_counter()
                batch = grade(solution, submissions, output, workers=args.workers, sandboxed=sandboxed, device=args.device)
                seconds = time.perf_counter() - start
                full = sum(r.total + r.pending == r.maximum for r in batch.results)  # written answers wait for the instructor
                times[sandboxed].append(seconds)
                print(f"{'sandboxed' if sandboxed else 'no sandbox'}: {args.students} submissions of {args.exercise}, "
                      f"{args.workers} workers, {args.device}: {seconds:.0f} s ({seconds / args.students:.1f} s per submission); "
                      f"{full} with every automatic point", flush=True)
    ratio = sum(times[True]) / sum(times[False])
    print(f"sandboxed / not sandboxed: {ratio:.2f}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"the grader's own peak memory: {peak:.0f} MiB (resident set of this process)")


if __name__ == "__main__":
    main()
