"""course_lib.notebook_runs: a headless Run All that never waits on a finished cell, timed from inside the kernel."""

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from queue import Empty

import nbformat
import pytest

from course_lib import notebook_runs
from course_lib.notebook_runs import in_slices, run_notebook


def run_in_own_loop(coroutine):
    """Run a coroutine to its end in a fresh event loop of its own thread (a test before may leave one running here)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


class MissedWakeUp:
    """A channel whose message is already there, but whose first poll sleeps to its timeout (a lost edge)."""

    def __init__(self):
        self.calls = []

    async def get_msg(self, timeout=None):
        self.calls.append(timeout)
        if len(self.calls) == 1:
            await asyncio.sleep(timeout)
            raise Empty
        return {"msg_type": "execute_reply"}


class Silent:
    async def get_msg(self, timeout=None):
        await asyncio.sleep(timeout)
        raise Empty


def test_a_missed_wake_up_costs_one_slice_not_the_whole_timeout():
    channel = MissedWakeUp()
    started = time.monotonic()
    message = run_in_own_loop(in_slices(channel.get_msg)(timeout=600))
    assert message == {"msg_type": "execute_reply"}
    assert time.monotonic() - started < 2 * notebook_runs.SLICE_S and channel.calls[0] == notebook_runs.SLICE_S


def test_a_silent_channel_still_times_out_at_the_deadline():
    started = time.monotonic()
    with pytest.raises(Empty):
        run_in_own_loop(in_slices(Silent().get_msg)(timeout=1.2))
    assert 1.2 <= time.monotonic() - started < 1.2 + notebook_runs.SLICE_S


CELLS = [
    "import time\nfrom course_lib.widgets import ExperimentPanel",
    "def slow(x=1):\n    time.sleep(0.3 * x)\n    return {'x': x}\npanel = ExperimentPanel(slow, x=[1, 2, 3])\npanel",
    "time.sleep(1.0)",
    "raise ValueError('on purpose')",
]


@pytest.mark.slow
def test_a_run_reports_kernel_times_errors_and_panel_moves(tmp_path):
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_markdown_cell("# a title")] + [nbformat.v4.new_code_cell(source) for source in CELLS]
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, tmp_path / "timed.ipynb")
    reported = []
    run = run_notebook(tmp_path / "timed.ipynb", timeout_s=120, sweep=True, on_cell=lambda entry: reported.append(dict(entry)))
    assert [entry["index"] for entry in reported] == [1, 2, 3, 4] and all(entry["kernel_s"] >= 0 for entry in reported)
    assert [cell["index"] for cell in run.cells] == [1, 2, 3, 4]  # the stored notebook's cell numbers
    seconds = {cell["index"]: cell["kernel_s"] for cell in run.cells}
    assert 0.3 <= seconds[2] < 1.0 and 1.0 <= seconds[3] < 1.5, seconds  # the panel's default run; the sleep
    cpu = {cell["index"]: cell["kernel_cpu_s"] for cell in run.cells}
    assert 0 <= cpu[3] < 0.5 and cpu[1] > 0, cpu  # sleeping costs no CPU time, importing does
    assert run.errors == ["cell 4: ValueError: on purpose"] and run.waits == []
    assert [(move["control"], move["value"], move["changed"]) for move in run.moves] == [("x", "3", True)]
    assert 0.9 <= run.moves[0]["seconds"] < 1.5
