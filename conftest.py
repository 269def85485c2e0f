"""Test-suite settings shared by the unit tests and the notebooks nbval executes.

The notebook kernels inherit this process's environment when they start, so setting the
variables here switches every notebook to the quick scale without touching its cells.
"""

import os
from pathlib import Path

os.environ.setdefault("COURSE_SCALE", "quick")  # small-scale experiments (course_lib.runtime.scale)
os.environ.setdefault("MPLBACKEND", "Agg")  # no window; notebooks switch to inline themselves

import torch  # noqa: E402

# The unit tests use tiny tensors, for which one thread is faster than several (see the README).
torch.set_num_threads(1)


# The grader's own tests grade a fixed copy of exercise 01 (see tests/grading_subject/README.md): data for those
# tests, not notebooks for nbval to run (its exercise stops at its first gap on purpose).
collect_ignore = ["tests/grading_subject"]


# Tests that only `python3 course.py test --complete` runs: the grading fixtures, which grade every
# exercise's solution, alternative and wrong answers at two thread counts, the adversarial
# submissions and nbgrader's autograde, every lecture at its default scale, and the book and slides built from a
# fresh checkout (each module names itself in COMPLETE_ONLY).
COMPLETE_ONLY = {"test_book.py", "test_exercise_fairness.py", "test_grading_batch.py", "test_grading_budget.py",
                 "test_grading_tricks.py", "test_lecture_scale.py", "test_nbgrader.py"}


def xdist_scope(nodeid: str) -> str:
    """The group of a test that one pytest-xdist worker runs, in order (``--dist loadscope``).

    A notebook's cells share one kernel (nbval), the browser tests one JupyterLab server, and a
    module's tests its module-scoped fixtures: each file is one group. But each exercise and thread
    count of the fairness fixtures is graded on its own, so those groups are finer and spread over
    the workers.
    """
    path, _, name = nodeid.partition("::")
    if path.endswith(("test_exercise_fairness.py", "test_lecture_scale.py")) and "[" in name:
        return f"{path}[{name.split('[', 1)[1]}"
    return path


# The groups that take minutes start first, in this order, so that the many short ones fill the end of a run evenly
# on every worker (course.py keeps the collection's order: ``--no-loadscope-reorder``). In a run of both suites: the
# book built from a fresh checkout (every lecture executed, about 8 minutes), the JupyterLab server's lectures, each lecture at its default scale, each exercise's graded fixtures, the grader's batch
# tests; then the notebooks under nbval; then the unit tests.
SLOWEST_FIRST = ("tests/test_book.py", "tests/test_browser.py", "tests/test_lecture_scale.py",
                 "tests/test_exercise_fairness.py", "tests/test_grading_batch.py", "tests/test_grading_tricks.py", "tests/test_nbgrader.py",
                 "tests/test_grading_budget.py", "lectures/", "solutions/", "exercises/")


def slowness_rank(nodeid: str) -> int:
    """The place of a test's group in SLOWEST_FIRST (the rest after it, in the order they were collected)."""
    return next((rank for rank, prefix in enumerate(SLOWEST_FIRST) if nodeid.startswith(prefix)), len(SLOWEST_FIRST))


import pytest  # noqa: E402


# Single tests that only the complete suite runs: the lectures run top to bottom in JupyterLab through Chromium (all
# but 01 and 02, which their slider tests run and check the same way). The everyday suite runs every lecture top to
# bottom under nbval, every panel swept, and keeps the browser tests of the sliders and of an exercise; these nine
# JupyterLab runs (6 min of one worker) would take it past 10 minutes. So would g_∞'s 30-epoch MNIST run (2 min of
# one worker; lecture 07 trains the same experiment at the quick scale under nbval and asserts the same directions).
COMPLETE_ONLY_TESTS = ("test_browser.py::test_lecture_runs_in_jupyterlab_without_errors",
                       "test_ginfty_experiments.py::test_mnist_quick_trains_and_moves_the_depths_as_the_reference")


def pytest_itemcollected(item):
    """Mark the grading fixtures' tests as they are collected, before ``-m`` selects."""
    if item.path.name in COMPLETE_ONLY or item.nodeid.split("tests/", 1)[-1].startswith(COMPLETE_ONLY_TESTS):
        item.add_marker(pytest.mark.complete)


@pytest.hookimpl(optionalhook=True)  # a hook of pytest-xdist: unknown, and unused, under -p no:xdist
def pytest_xdist_make_scheduler(config, log):
    """pytest-xdist's scope scheduling, with the scopes of `xdist_scope`."""
    if config.getvalue("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class CourseScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return xdist_scope(nodeid)

    return CourseScheduling(config, log)


# After a lecture's last cell, nbval runs one more cell in the same kernel: every control of every
# panel moved to each end of its range, one move at a time (`course_lib.widgets.sweep_panels`). A
# panel broken by a later cell (a name it looks up, shadowed) fails here, and so does a move that
# hands back the result the panel had before it.
LECTURES = Path(__file__).resolve().parent / "lectures"
PANEL_SWEEP = """\
from course_lib.widgets import sweep_panels as _sweep_panels

_moves = _sweep_panels(globals())
for _move in _moves:
    print(_move)
assert _moves, "this lecture has no panel to move"
_unchanged = [_move for _move in _moves if not _move["changed"]]
assert not _unchanged, f"moves that did not change what the panel returns: {_unchanged}"
"""


def pytest_collection_modifyitems(items):
    """Append the panel sweep to each lecture's cells (see PANEL_SWEEP); put the slowest groups first (see
    SLOWEST_FIRST)."""
    from collections import defaultdict

    import nbformat
    from nbval.plugin import IPyNbCell

    with_sweeps = []
    for index, item in enumerate(items):
        with_sweeps.append(item)
        last_of_its_notebook = index + 1 == len(items) or items[index + 1].parent is not item.parent
        if isinstance(item, IPyNbCell) and item.path.parent == LECTURES and last_of_its_notebook:
            with_sweeps.append(IPyNbCell.from_parent(
                item.parent, name="every panel after Run All", cell_num=item.cell_num + 1,
                cell=nbformat.v4.new_code_cell(PANEL_SWEEP), options=defaultdict(bool, check=False)))
    items[:] = sorted(with_sweeps, key=lambda item: slowness_rank(item.nodeid))  # stable: cells stay in order
