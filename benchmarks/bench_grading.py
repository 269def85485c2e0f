"""Time to grade 30 submissions of one exercise with course-grade.

    python benchmarks/bench_grading.py [--students 30] [--workers 2] [--exercise 01_batch_sgd]

The submissions are copies of the exercise's solution (every part runs to the end, the slowest case).
Prints the wall-clock time of the whole batch and per submission.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from course_lib import grading

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--students", type=int, default=30)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--exercise", default="01_batch_sgd")
    args = parser.parse_args()
    solution = ROOT / "solutions" / f"{args.exercise}.ipynb"
    with tempfile.TemporaryDirectory() as folder:
        submissions = Path(folder) / "submissions"
        submissions.mkdir()
        for k in range(args.students):
            shutil.copy(solution, submissions / f"student{k:03d}.ipynb")
        start = time.perf_counter()
        results = grading.grade(solution, submissions, Path(folder) / "output", workers=args.workers)
        seconds = time.perf_counter() - start
    full = sum(r.total == sum(p.part.points for p in r.results) for r in results)
    print(f"{args.students} submissions of {args.exercise}, {args.workers} workers: {seconds:.0f} s "
          f"({seconds / args.students:.1f} s per submission); {full} with full marks")


if __name__ == "__main__":
    main()
