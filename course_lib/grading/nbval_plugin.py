"""A pytest plugin for course-grade: nbval executes the notebook; this plugin writes down what happened.

Loaded with ``-p course_lib.grading.nbval_plugin`` in the pytest that runs one submission, outside the sandbox.
It changes three things about nbval's run:

- the kernel is reached over IPC sockets in ``--grading-ipc`` (a sandboxed kernel has no network at all), and
  started from the kernel spec the grader named (``--nbval-kernel-name``); while a cell runs, the kernel's
  process is checked every second, so a kernel that dies ends its cell at once instead of at the time limit;
- nbval's per-cell options are reset: no output comparison, no skip, no ``raises-exception``, whatever tags or
  comments a submission carries (nothing in the submission steers its own verdict);
- after each cell, one JSON line goes to ``--grading-results``: how nbval's run of the cell ended (``ran``,
  ``error``, ``timeout``, ``not run``), the name of the exception the kernel reported, and the evidence records
  among the cell's outputs (see `course_lib.grading.evidence`). Only nbval's own outcome and these records are
  kept; the grader decides from them, in its own process.

What a kernel sends is reduced as it arrives, so that this process' memory does not grow with a submission's
output: of a display only the evidence record is kept (no images, no text), of the printed text at most
`MAX_CELL_TEXT` characters a cell, of an error its name, the start of its message and no traceback; records past
`MAX_CELL_BYTES` a cell or `MAX_RUN_BYTES` a notebook are replaced by ``{"oversized": true}``. A kernel that is
still busy `KILL_GRACE` seconds after its cell's time limit (nbval interrupts it at the limit; a cell can ignore
the interrupt and keep printing) is shut down: that cell counts as timed out, and the cells after it as not run.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from queue import Empty

import pytest

from course_lib.grading.evidence import MIME

MAX_RECORD_BYTES = 5_000_000  # one record's JSON
MAX_CELL_BYTES = 40_000_000  # all records of one cell
MAX_RUN_BYTES = 60_000_000  # all records of one notebook (under runner.MAX_RUN_RECORDS with the lines around them)
MAX_CELL_TEXT = 100_000  # characters of printed text kept per cell (nothing compares them)
KILL_GRACE = 10  # seconds a kernel gets after its cell's time limit to answer the interrupt
_written = 0  # bytes of records written so far in this run


def pytest_addoption(parser):
    group = parser.getgroup("course-grade")
    group.addoption("--grading-results", default=None, help="file to write one JSON line per executed cell into")
    group.addoption("--grading-ipc", default=None, help="reach the kernel over IPC sockets in this folder")


def pytest_configure(config):
    ipc = config.getoption("grading_ipc")
    if not ipc:
        return
    import nbval.kernel
    from jupyter_client.manager import KernelManager

    class IpcKernelManager(KernelManager):
        """nbval's kernel manager, talking to the kernel over sockets in the sandbox's folder."""

        def __init__(self, **kwargs):
            super().__init__(transport="ipc", ip=f"{ipc}/kernel", **kwargs)

    nbval.kernel.KernelManager = IpcKernelManager
    global _nbval_await_reply, _nbval_get_message, _nbval_execute, _cell_timeout
    _nbval_await_reply = nbval.kernel.RunningKernel.await_reply
    nbval.kernel.RunningKernel.await_reply = _await_reply_while_alive
    _nbval_get_message = nbval.kernel.RunningKernel.get_message
    nbval.kernel.RunningKernel.get_message = _get_message_reduced
    _nbval_execute = nbval.kernel.RunningKernel.execute_cell_input
    nbval.kernel.RunningKernel.execute_cell_input = _execute_timed
    _cell_timeout = float(config.getoption("nbval_cell_timeout") or 0) or None


class KernelDied(RuntimeError):
    """The kernel's process ended while a cell ran."""


_nbval_await_reply = None


def _await_reply_while_alive(self, msg_id, timeout=None):
    """nbval's ``await_reply``, waiting in one-second slices and giving up as soon as the kernel is gone."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        left = 1.0 if deadline is None else min(1.0, deadline - time.monotonic())
        if left <= 0:
            raise Empty
        try:
            return _nbval_await_reply(self, msg_id, timeout=left)
        except Empty:
            if not self.is_alive():
                raise KernelDied("the kernel died while the cell ran") from None


_nbval_get_message = _nbval_execute = None
_cell_timeout: float | None = None


def _execute_timed(self, cell_input, allow_stdin=None):
    """nbval's ``execute_cell_input``, noting when the cell started and resetting its text budget."""
    self.course_cell_started, self.course_cell_text = time.monotonic(), 0
    return _nbval_execute(self, cell_input, allow_stdin=allow_stdin)


def _get_message_reduced(self, stream, timeout=None):
    """nbval's ``get_message``, with each iopub message reduced to what grading keeps; once the kernel is
    `KILL_GRACE` seconds past its cell's time limit, no more messages (nbval then stops the kernel and reports the
    cell as timed out)."""
    started = getattr(self, "course_cell_started", None)
    if stream == "iopub" and started is not None and _cell_timeout is not None:
        left = started + _cell_timeout + KILL_GRACE - time.monotonic()
        if left <= 0:
            raise Empty  # nbval stops the kernel (shutdown_kernel(now=True)) and reports the cell as timed out
        timeout = left if timeout is None else min(timeout, left)
    message = _nbval_get_message(self, stream, timeout=timeout)
    content = message.get("content") if isinstance(message, dict) else None
    kind = message.get("msg_type") if isinstance(message, dict) else None
    if stream != "iopub" or not isinstance(content, dict):
        return message
    if kind in ("display_data", "execute_result", "update_display_data"):
        data = content.get("data") if isinstance(content.get("data"), dict) else {}
        content["data"] = {MIME: data[MIME]} if MIME in data else {}
        content["metadata"] = {}
    elif kind == "stream":
        text = content.get("text") if isinstance(content.get("text"), str) else ""
        room = max(0, MAX_CELL_TEXT - getattr(self, "course_cell_text", 0))
        content["text"] = text[:room]
        self.course_cell_text = getattr(self, "course_cell_text", 0) + len(content["text"])
    elif kind == "error":
        content["ename"] = str(content.get("ename", ""))[:100]
        content["evalue"] = str(content.get("evalue", ""))[:2000]
        content["traceback"] = []
    return message


def pytest_collection_modifyitems(items):
    from nbval.plugin import IPyNbCell

    for item in items:
        if isinstance(item, IPyNbCell):
            item.options = defaultdict(bool, check=False)


def _records(outputs) -> list:
    """The evidence records among a cell's outputs, each checked to be plain JSON; past the size limits
    (one record, the cell, the whole run) a record is replaced by ``{"oversized": true}``."""
    global _written
    kept, size = [], 0
    for output in outputs or []:
        data = output.get("data") if isinstance(output, dict) else None
        record = data.get(MIME) if isinstance(data, dict) else None
        if not isinstance(record, dict):
            continue
        try:
            text = json.dumps(record, allow_nan=False)
        except (ValueError, TypeError, RecursionError):
            kept.append({"oversized": True})
            continue
        size += len(text)
        if len(text) > MAX_RECORD_BYTES or size > MAX_CELL_BYTES or _written + size > MAX_RUN_BYTES:
            kept.append({"oversized": True})
            continue
        kept.append(record)
    _written += size
    return kept


def _kernel_error(outputs) -> tuple[str | None, str | None]:
    """The first error output's exception name and message, as the kernel sent them (untrusted text)."""
    for output in outputs or []:
        if isinstance(output, dict) and output.get("output_type") == "error":
            return str(output.get("ename", ""))[:100], str(output.get("evalue", ""))[:2000]
    return None, None


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    yield
    path = item.config.getoption("grading_results")
    from nbval.plugin import IPyNbCell, NbCellError

    if not path or not isinstance(item, IPyNbCell) or call.when not in ("setup", "call"):
        return
    if call.when == "setup" and call.excinfo is None:
        return
    line = {"cell": item.cell_num, "seconds": round(call.duration, 3)}
    if call.when == "setup":
        line.update(status="not run", reason="the kernel could not be started")
    elif call.excinfo is None:
        line["status"] = "ran"
    elif call.excinfo.errisinstance(NbCellError):
        message = str(call.excinfo.value)
        line["status"] = "timeout" if message.startswith("Timeout") else "error"
    elif call.excinfo.errisinstance(KernelDied):
        line.update(status="not run", reason="the kernel died while this cell ran")
    elif call.excinfo.errisinstance(pytest.skip.Exception):
        line.update(status="not run", reason="skipped")
    else:
        line.update(status="not run", reason="the kernel died")
    outputs = getattr(item, "test_outputs", None)
    line["ename"], line["evalue"] = _kernel_error(outputs)
    line["records"] = _records(outputs)
    item.test_outputs = None  # nbval keeps every item alive: free a large output now
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(line, allow_nan=False) + "\n")
