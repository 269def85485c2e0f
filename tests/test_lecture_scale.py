"""Every lecture at its default (lecture) scale, on the data this machine has, within the lecture scale's budget.

The everyday suite runs the lectures at the quick scale through nbval. This module, part of the complete
suite, runs each one as a student's Run All would at the default scale (`course_lib.notebook_runs`),
then moves every panel's controls to their ends, and checks: no cell fails, the client never waits on
a cell the kernel has finished, and the work measured inside the kernel stays within the budget the
README promises: 5 minutes a lecture, 60 s a cell or a move. The budget is checked on the kernel's CPU
time, which the suite's other worker does not inflate: with one torch thread it is the time on a quiet
machine (the wall times are printed beside it). Where only MNIST's test split is on the machine (8 000
training, 2 000 held-out digits), that is what the lectures run on.
"""

from pathlib import Path

import pytest

from course_lib.notebook_runs import run_notebook

LECTURES = sorted((Path(__file__).resolve().parent.parent / "lectures").glob("[0-9][0-9]_*.ipynb"))
LECTURE_BUDGET_S = 300.0
CELL_BUDGET_S = 60.0


@pytest.mark.slow
@pytest.mark.parametrize("path", LECTURES, ids=[path.stem for path in LECTURES])
def test_the_lecture_runs_at_its_default_scale_within_budget(path, monkeypatch):
    monkeypatch.setenv("COURSE_SCALE", "lecture")  # the kernel inherits this process's environment
    monkeypatch.delenv("COURSE_QUICK", raising=False)
    monkeypatch.delenv("COURSE_SIMULATE_FULL_MNIST", raising=False)
    run = run_notebook(path, timeout_s=600, sweep=True)
    slowest_cell = max(run.cells, key=lambda cell: cell["kernel_cpu_s"])
    slowest_move = max(run.moves, key=lambda move: move["cpu_seconds"], default={"cpu_seconds": 0.0})
    print(f"{path.stem}: {run.top_to_bottom_cpu_s:.1f} s of CPU top to bottom ({run.top_to_bottom_s:.1f} s of wall "
          f"time), slowest cell {slowest_cell}, slowest move {slowest_move}")
    assert run.errors == []
    assert run.waits == [], "the client waited on cells the kernel had finished"
    assert run.moves and all(move["changed"] for move in run.moves)
    assert run.top_to_bottom_cpu_s <= LECTURE_BUDGET_S
    assert slowest_cell["kernel_cpu_s"] <= CELL_BUDGET_S, slowest_cell
    assert slowest_move["cpu_seconds"] <= CELL_BUDGET_S, slowest_move
