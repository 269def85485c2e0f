"""Test-suite settings shared by the unit tests and the notebooks nbval executes.

The notebook kernels inherit this process's environment when they start, so setting the
variables here switches every notebook to the quick scale without touching its cells.
"""

import os

os.environ.setdefault("COURSE_SCALE", "quick")  # small-scale experiments (course_lib.runtime.scale)
os.environ.setdefault("MPLBACKEND", "Agg")  # no window; notebooks switch to inline themselves

import torch  # noqa: E402

# The unit tests use tiny tensors, for which one thread is faster than several (see the README).
torch.set_num_threads(1)


# Tests that only `python3 course.py test --complete` runs: the grading fixtures, which grade every
# exercise's solution, alternative and wrong answers at two thread counts, the adversarial
# submissions and nbgrader's autograde (each module names itself in COMPLETE_ONLY).
COMPLETE_ONLY = {"test_exercise_fairness.py", "test_grading_batch.py", "test_grading_budget.py", "test_grading_tricks.py",
                 "test_nbgrader.py"}


def xdist_scope(nodeid: str) -> str:
    """The group of a test that one pytest-xdist worker runs, in order (``--dist loadscope``).

    A notebook's cells share one kernel (nbval), the browser tests one JupyterLab server, and a
    module's tests its module-scoped fixtures: each file is one group. But each exercise and thread
    count of the fairness fixtures is graded on its own, so those groups are finer and spread over
    the workers.
    """
    path, _, name = nodeid.partition("::")
    if path.endswith("test_exercise_fairness.py") and "[" in name:
        return f"{path}[{name.split('[', 1)[1]}"
    return path


import pytest  # noqa: E402


def pytest_itemcollected(item):
    """Mark the grading fixtures' tests as they are collected, before ``-m`` selects."""
    if item.path.name in COMPLETE_ONLY:
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
