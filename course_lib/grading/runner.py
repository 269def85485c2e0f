"""Running one notebook for the grader: nbval in a trusted pytest, the kernel in the sandbox, results as data.

`run_notebook` writes the notebook into a private folder, starts ``pytest --nbval-lax`` there with the
course-grade plugin (`course_lib.grading.nbval_plugin`) and a kernel spec whose kernel runs in the sandbox
(`course_lib.grading.sandbox`), waits at most the submission's time limit, and returns, for each code cell, how
nbval's run of it ended and the evidence records among its outputs. pytest's own output is kept (capped) for
the instructor's log. When the run ends, by itself or by the time limit, nothing it started is left running.

Each run (pytest, the launcher, the sandboxed kernel and all they start) is one cgroup with its own memory, CPU
and task budget (`course_lib.grading.budget`) when the machine allows one: a run that floods its output, fills its
``/tmp`` or forks away ends inside its own budget, never in the grader. The grader keeps at most `MAX_RUN_RECORDS`
bytes of a run's evidence, read line by line.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from course_lib.grading import budget, sandbox

LOG_LIMIT = 200_000  # characters of pytest's output kept per run
# pytest with nbval and the course's plugin only (no other installed plugin is loaded: hypothesis's alone takes
# 0.9 s of every run), started so that jsonschema (imported by nbformat, imported by nbval) finds no IRI-format
# checker: its module, rfc3987_syntax, builds a grammar on import, 1.5 s of every run, and no notebook schema has an
# IRI format
PYTEST = "import sys; sys.modules['rfc3987_syntax'] = None; import pytest; sys.exit(pytest.main(sys.argv[1:]))"
RUNNER_MEMORY = 6 * sandbox.GiB  # address space of the trusted pytest (a flood of output ends it, not the grader)
MAX_RUN_RECORDS = 64_000_000  # bytes of results.jsonl the grader reads from one run; the rest counts as not run
UID_BASE = 2_000_000_000  # when the grader is root, each sandbox runs as its own user above this


@dataclass(frozen=True)
class RunSettings:
    """How every notebook of a batch is run."""

    cell_timeout: int = 120  # seconds per cell
    timeout: int = 900  # seconds per notebook
    sandboxed: bool = True
    limits: sandbox.Limits = field(default_factory=sandbox.Limits)
    env: tuple[tuple[str, str], ...] = ()  # the kernel's environment
    read_only: tuple[str, ...] = ()  # host folders the kernel sees, read-only
    devices: tuple[str, ...] = ()
    cpus: float = 2.0  # cores each run may use at most (its cgroup's CPU quota)
    budgeted: bool = True  # put each run into a cgroup of its own, where one can be made

    def __post_init__(self):
        for name in ("cell_timeout", "timeout"):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")


@dataclass
class CellOutcome:
    """How nbval's run of one code cell ended, as the trusted runner saw it."""

    status: str  # "ran", "error", "timeout" or "not run"
    ename: str | None = None  # the exception name the kernel reported (untrusted text: never shown as is)
    evalue: str | None = None  # its message, likewise (only compared with the instructor's own messages)
    records: list = field(default_factory=list)  # evidence records among the cell's outputs (untrusted data)
    reason: str = ""  # for "not run": why, in the grader's words


@dataclass
class NotebookRun:
    cells: dict[int, CellOutcome]
    log: str
    stopped: str = ""  # the grader's reason when the whole run was cut short (the time limit)
    peak_memory: int | None = None  # the most memory the run's cgroup held (bytes), when it had one


def _encodable(source) -> str:
    """A cell's source that UTF-8 can write: text as it is, with lone surrogates (which a JSON file can hold as
    ``\\udcff`` escapes) replaced by U+FFFD; anything that is not text, empty."""
    if isinstance(source, list):
        source = "".join(part for part in source if isinstance(part, str))
    return source.encode("utf-8", "surrogatepass").decode("utf-8", "replace") if isinstance(source, str) else ""


def graded_copy(notebook: nbformat.NotebookNode, replacements: dict[str, str]) -> nbformat.NotebookNode:
    """The notebook nbval runs: outputs and tags dropped, every source made writable (`_encodable`), and the
    source of every cell whose part id is in ``replacements`` (``nbgrader.grade_id``) replaced by the instructor's
    check cell."""
    for cell in notebook.cells:
        metadata = cell.setdefault("metadata", {})
        metadata.pop("tags", None)
        cell["source"] = _encodable(cell.get("source"))
        if cell.get("cell_type") != "code":
            continue
        part_id = metadata.get("nbgrader", {}).get("grade_id") if isinstance(metadata.get("nbgrader"), dict) else None
        if part_id in replacements:
            cell.source = replacements[part_id]
        cell.outputs, cell.execution_count = [], None
    return notebook


def _read_capped(stream, keep: bytearray) -> None:
    """Read ``stream`` to its end, keeping the first LOG_LIMIT bytes."""
    while True:
        chunk = stream.read(65536)
        if not chunk:
            return
        room = LOG_LIMIT - len(keep)
        if room > 0:
            keep.extend(chunk[:room])


def _leftovers(uid: int) -> list[int]:
    """Processes still running as ``uid``."""
    found = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            uid_line = next(line for line in status.read_text().splitlines() if line.startswith("Uid:"))
        except (OSError, StopIteration):
            continue
        if uid_line.split()[1] == str(uid):
            found.append(int(status.parent.name))
    return found


def _results(path: Path, limit: int = MAX_RUN_RECORDS) -> dict[int, CellOutcome]:
    """The cell outcomes of ``results.jsonl``, read a line at a time; lines past ``limit`` bytes, and lines that
    are not a cell's outcome, are left out (those cells count as not run)."""
    cells = {}
    if not path.exists():
        return cells
    read = 0
    with open(path, "rb") as handle:
        for raw in handle:
            read += len(raw)
            if read > limit:
                break
            try:
                data = json.loads(raw.decode("utf-8", errors="replace"))
                cell = int(data["cell"])
            except (ValueError, KeyError, TypeError, OverflowError, RecursionError):
                continue
            if not isinstance(data, dict):
                continue
            text = {key: data.get(key) if isinstance(data.get(key), str) else None for key in ("ename", "evalue")}
            cells[cell] = CellOutcome(status=str(data.get("status")), ename=text["ename"], evalue=text["evalue"],
                                      records=data.get("records") if isinstance(data.get("records"), list) else [],
                                      reason=str(data.get("reason", "")))
    return cells


def run_notebook(notebook: nbformat.NotebookNode, workdir: Path, settings: RunSettings, slot: int = 0) -> NotebookRun:
    """Execute ``notebook`` through nbval with its kernel in the sandbox; ``workdir`` is private to this run
    (the caller removes it); ``slot`` numbers concurrent runs (each gets its own user when the grader is root)."""
    workdir.mkdir(mode=0o700, parents=True, exist_ok=True)
    ipc = workdir / "ipc"
    ipc.mkdir(mode=0o755)
    nbformat.write(notebook, workdir / "notebook.ipynb")
    (workdir / "pytest.ini").write_text("[pytest]\n")  # keeps any other pytest settings away
    uid = UID_BASE + (os.getpid() % 100_000) * 10_000 + slot % 10_000 if os.geteuid() == 0 else None
    spec = sandbox.SandboxSpec(ipc_dir=str(ipc), read_only=list(settings.read_only), env=dict(settings.env),
                               limits=settings.limits, uid=uid, sandboxed=settings.sandboxed,
                               devices=list(settings.devices))
    sandbox.write_kernel_spec(workdir / "jupyter", workdir / "sandbox.json", spec.env)
    results = workdir / "results.jsonl"
    environment = {key: value for key, value in os.environ.items() if not key.startswith(("PYTEST_", "JUPYTER_"))}
    environment.update(JUPYTER_PATH=str(workdir / "jupyter"), JUPYTER_RUNTIME_DIR=str(workdir / "runtime"),
                       JUPYTER_CONFIG_DIR=str(workdir / "config"), JUPYTER_DATA_DIR=str(workdir / "data"),
                       PYTHONDONTWRITEBYTECODE="1", JUPYTER_PLATFORM_DIRS="1", PYTEST_DISABLE_PLUGIN_AUTOLOAD="1")
    command = [sys.executable, "-c", PYTEST, "notebook.ipynb", "--nbval-lax",
               f"--nbval-kernel-name={sandbox.KERNEL_NAME}", f"--nbval-cell-timeout={settings.cell_timeout}",
               "--nbval-kernel-startup-timeout=120", "-p", "nbval.plugin", "-p", "no:cacheprovider",
               "-p", "course_lib.grading.nbval_plugin",
               f"--grading-results={results}", "-q", "-c", "pytest.ini", "--rootdir", str(workdir)]
    if os.name == "posix":  # IPC sockets (a sandboxed kernel has no network); Windows has only TCP
        command.append(f"--grading-ipc={ipc}")
    output = bytearray()
    group = None
    if settings.budgeted and sys.platform.startswith("linux"):
        group, why = budget.create(f"{slot}-{workdir.name}", budget.Budget(
            memory=settings.limits.memory, cpus=settings.cpus, tasks=settings.limits.processes))
        if group is None:
            output.extend(f"[grader] no cgroup for this run ({why}): per-process limits only\n".encode())
    spec.budgeted = group is not None
    spec.write(workdir / "sandbox.json")
    process = subprocess.Popen(command, cwd=workdir, env=environment, stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=os.name == "posix")
    if group is not None:
        try:
            group.add(process.pid)
        except OSError as error:
            output.extend(f"[grader] could not enter the run's cgroup ({error})\n".encode())
    try:  # without a cgroup: an address-space limit, inherited by the kernel unless the launcher sets its own
        import resource

        if group is None:
            resource.prlimit(process.pid, resource.RLIMIT_AS, (RUNNER_MEMORY, RUNNER_MEMORY))
    except (ImportError, AttributeError, OSError, ValueError):
        pass
    reader = threading.Thread(target=_read_capped, args=(process.stdout, output), daemon=True)
    reader.start()
    stopped = ""
    try:
        process.wait(timeout=settings.timeout)
    except subprocess.TimeoutExpired:
        stopped = f"the notebook exceeded the time limit of {settings.timeout} s and was stopped"
    finally:
        try:  # pytest and the launcher; the sandbox dies with its parent
            os.killpg(process.pid, signal.SIGKILL) if os.name == "posix" else process.kill()
        except ProcessLookupError:
            pass
        process.wait()
        peak = None
        if group is not None:
            peak = group.peak_memory()
            group.remove()
        reader.join(timeout=10)
    if uid is not None:  # the sandbox's PID namespace ends with its parent; make sure, and say so if not
        deadline = time.monotonic() + 10
        while _leftovers(uid) and time.monotonic() < deadline:
            time.sleep(0.05)
        for pid in _leftovers(uid):
            try:
                os.kill(pid, signal.SIGKILL)
                output.extend(f"\n[grader] killed process {pid} left by the sandbox\n".encode())
            except ProcessLookupError:
                pass
    log = output.decode("utf-8", "replace")
    if len(output) >= LOG_LIMIT:
        log += "\n[grader] output truncated\n"
    if stopped:
        log += f"\n[grader] {stopped}\n"
    if peak is not None:
        log += f"\n[grader] the run's peak memory (its cgroup): {peak / sandbox.MiB:.0f} MiB\n"
    return NotebookRun(_results(results), log, stopped, peak)
