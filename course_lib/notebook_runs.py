"""A notebook run headless, top to bottom, as a student's Run All would, timed from inside the kernel.

`run_notebook` executes a notebook in a fresh kernel of this environment through nbclient, optionally moves
every panel's controls to their ends afterwards (`course_lib.widgets.sweep_panels`), and returns, for each
code cell, three times:

- ``kernel_s``: from IPython's ``pre_run_cell`` to its ``post_run_cell`` event, measured inside the kernel;
  ``kernel_cpu_s`` is the kernel process's CPU time over the same span, which other processes on the machine do
  not inflate (with one torch thread it is the cell's time on a quiet machine);
- ``reply_s``: from the kernel's ``execute_input`` message to its ``execute_reply`` (the kernel's clock,
  messages included);
- ``client_s``: what the client waited, from sending the cell to having its reply and all its output.

A cell whose ``client_s`` exceeds its ``reply_s`` by more than `WAIT_TOLERANCE_S` is a *wait on a finished
cell*, listed in ``waits``.

**Why the client waits in slices.** nbclient waits for a reply with zmq.asyncio's ``poll``, which sleeps
until ZeroMQ's file descriptor for the socket signals. That descriptor is *edge*-triggered: it signals
when the socket's internal mailbox receives a command, and an operation that processes the mailbox first
consumes the edge. When that happens the poll sleeps to its timeout although the reply is already in the
socket; at the timeout the poll's final non-blocking check finds the message and the run goes on as if
nothing happened. Measured on lecture 04 at the quick scale: a panel cell whose reply the kernel sent
3.6 s after starting it held the client for 600.0 s, exactly the cell timeout, and then completed
without an error (2 of 6 runs). `PromptClient` waits on each channel in slices of at most `SLICE_S`
seconds: every slice ends with a real ``zmq_poll``, which sees a message that is there, so a lost
wake-up costs at most one slice. (nbval is not affected: its blocking client calls ``zmq_poll`` directly.)
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from queue import Empty
from typing import Any, Callable

import nbformat
from nbclient import NotebookClient

SLICE_S = 0.5  # the longest a client sleeps on a socket before looking again
WAIT_TOLERANCE_S = 2.0  # client time beyond the kernel's reply time that counts as a wait on a finished cell

# Injected as the first cell: records each cell's run time with IPython's events, inside the kernel.
KERNEL_CLOCK = """\
import time as _clock_time
_kernel_seconds = []
_clock_started = (_clock_time.perf_counter(), _clock_time.process_time())
def _clock_start(info):
    globals()["_clock_started"] = (_clock_time.perf_counter(), _clock_time.process_time())
def _clock_stop(result):
    _kernel_seconds.append((_clock_time.perf_counter() - _clock_started[0], _clock_time.process_time() - _clock_started[1]))
get_ipython().events.register("pre_run_cell", _clock_start)
get_ipython().events.register("post_run_cell", _clock_stop)
"""
# Appended after the lecture (and after the sweep): prints the recorded times.
KERNEL_CLOCK_REPORT = 'import json as _json\nprint("KERNEL_SECONDS", _json.dumps(_kernel_seconds))'
SWEEP = ('import json as _json\nfrom course_lib.widgets import sweep_panels as _sweep_panels\n'
         'print("PANEL_MOVES", _json.dumps(_sweep_panels(globals())))')


def in_slices(get_msg: Callable[..., Any]) -> Callable[..., Any]:
    """``get_msg(timeout)`` of an async channel, waiting at most `SLICE_S` seconds at a time (see above)."""

    async def get_msg_in_slices(timeout: float | None = None) -> Any:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                return await get_msg(timeout=SLICE_S if left is None else min(SLICE_S, left))
            except Empty:
                if deadline is not None and time.monotonic() >= deadline:
                    raise

    return get_msg_in_slices


class PromptClient(NotebookClient):
    """nbclient's client, waiting on the shell and IOPub channels in slices of `SLICE_S` seconds."""

    async def async_start_new_kernel_client(self):
        client = await super().async_start_new_kernel_client()
        client.shell_channel.get_msg = in_slices(client.shell_channel.get_msg)
        client.iopub_channel.get_msg = in_slices(client.iopub_channel.get_msg)
        return client


@dataclass
class NotebookRun:
    """What `run_notebook` measured; cell indices are those of the notebook as stored."""

    notebook: Any
    cells: list[dict] = field(default_factory=list)  # index, kernel_s, kernel_cpu_s, reply_s, client_s
    moves: list[dict] = field(default_factory=list)  # from sweep_panels
    errors: list[str] = field(default_factory=list)
    waits: list[dict] = field(default_factory=list)  # cells the client waited on after the kernel had finished
    wall_s: float = 0.0

    @property
    def top_to_bottom_s(self) -> float:
        return sum(cell["kernel_s"] for cell in self.cells)

    @property
    def slowest_cell(self) -> dict:
        return max(self.cells, key=lambda cell: cell["kernel_s"])

    @property
    def top_to_bottom_cpu_s(self) -> float:
        """The kernel's CPU time over all cells: the lecture's time on a quiet machine with one torch thread."""
        return sum(cell["kernel_cpu_s"] or 0.0 for cell in self.cells)


def _stamp_seconds(cell) -> float | None:
    timing = cell.metadata.get("execution", {})
    start, end = timing.get("iopub.execute_input"), timing.get("shell.execute_reply")
    if not start or not end:
        return None
    parse = lambda stamp: datetime.fromisoformat(stamp.replace("Z", "+00:00"))  # noqa: E731
    return (parse(end) - parse(start)).total_seconds()


def _printed(cell, mark: str) -> Any:
    text = "".join(output.get("text", "") for output in cell.get("outputs", []) if output.get("output_type") == "stream")
    for line in text.splitlines():
        if line.startswith(mark + " "):
            return json.loads(line[len(mark) + 1:])
    return None


def run_notebook(path: str | Path, timeout_s: int = 600, sweep: bool = False,
                 on_cell: Callable[[dict], None] | None = None) -> NotebookRun:
    """Execute the notebook at ``path`` in a fresh kernel (its folder as working directory) and time it.

    ``timeout_s`` bounds each cell; ``sweep`` moves every panel's controls to their ends after the last
    cell; ``on_cell`` is called with each cell's times as it finishes (its ``kernel_s`` there is still the
    reply's time: the events' times are read at the end). Errors in cells do not stop the run:
    they are collected in ``errors`` as ``"cell N: Name: message"``.
    """
    path = Path(path)
    stored = nbformat.read(path, as_version=4)
    notebook = nbformat.v4.new_notebook(metadata=stored.metadata)
    code_cells = [index for index, cell in enumerate(stored.cells) if cell.cell_type == "code"]
    extra_after = [SWEEP] if sweep else []
    notebook.cells = ([nbformat.v4.new_code_cell(KERNEL_CLOCK)] + [stored.cells[index] for index in code_cells]
                      + [nbformat.v4.new_code_cell(source) for source in extra_after + [KERNEL_CLOCK_REPORT]])
    run = NotebookRun(notebook=notebook)
    sent: dict[int, float] = {}

    def started(cell, cell_index):
        sent[cell_index] = time.perf_counter()

    def finished(cell, cell_index, execute_reply):
        if 1 <= cell_index <= len(code_cells):
            reply_s = _stamp_seconds(cell)
            entry = {"index": code_cells[cell_index - 1], "client_s": time.perf_counter() - sent[cell_index],
                     "reply_s": reply_s, "kernel_s": reply_s}  # kernel_s: the events' time once the run is over
            run.cells.append(entry)
            if on_cell is not None:
                on_cell(entry)

    client = PromptClient(notebook, timeout=timeout_s, kernel_name="python3", allow_errors=True,
                          resources={"metadata": {"path": str(path.parent)}}, on_cell_execute=started,
                          on_cell_executed=finished)
    began = time.perf_counter()
    client.execute()
    run.wall_s = time.perf_counter() - began
    kernel_seconds = _printed(notebook.cells[-1], "KERNEL_SECONDS") or []
    # kernel_seconds[0] is the clock cell's own end; then one entry per cell that ran after it
    for entry, (seconds, cpu_seconds) in zip(run.cells, kernel_seconds[1:]):
        entry["kernel_s"], entry["kernel_cpu_s"] = seconds, cpu_seconds
    for entry in run.cells:
        if entry["kernel_s"] is None:
            entry["kernel_s"] = entry["client_s"]
        entry.setdefault("kernel_cpu_s", None)
        if entry["reply_s"] is not None and entry["client_s"] - entry["reply_s"] > WAIT_TOLERANCE_S:
            run.waits.append(entry)
    if sweep:
        run.moves = _printed(notebook.cells[-2], "PANEL_MOVES") or []
    where = {position: code_cells[position - 1] if 1 <= position <= len(code_cells) else "after the last"
             for position in range(len(notebook.cells))}
    run.errors = [f"cell {where[position]}: {output.get('ename')}: {output.get('evalue')}"
                  for position, cell in enumerate(notebook.cells) for output in cell.get("outputs", [])
                  if output.get("output_type") == "error"]
    return run
