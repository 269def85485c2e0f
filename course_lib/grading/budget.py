"""One resource budget for each sandbox as a whole: a control group (cgroup) under the grader's own.

Per-process limits (``RLIMIT_AS``, ``RLIMIT_NPROC``) are the wrong tool against a submission: they count address
space, not memory (torch maps about 4 GiB before it does any work, so a correct answer that keeps one 3 GB tensor
alive is killed), each of a submission's processes gets the whole allowance again, and a file written to a
``tmpfs`` belongs to no process at all. A cgroup counts what the kernel charges to the group: every page its
processes touch, the files they write to a memory file system, their threads and their CPU time. So each notebook
run (nbval's pytest, the sandbox's launcher, the kernel and everything they start) goes into a group of its own,
made under the grader's own group, with

    memory  ≤ Budget.memory bytes     memory.max (v2)          memory.limit_in_bytes (v1); no swap
    CPU     ≤ Budget.cpus cores       cpu.max (v2)             cpu.cfs_quota_us / cpu.cfs_period_us (v1)
    tasks   ≤ Budget.tasks            pids.max                 pids.max

and the same CPU weight as every other run, so that a run of 128 busy processes gets the same share of the cores
as an honest run beside it. A group that reaches its memory has a victim chosen *inside the group* by the kernel's
OOM killer (the sandboxed kernel, whose ``oom_score_adj`` is 1000), never the grader. Because the groups sit
under the grader's own, they count against the grader's job limit (a Slurm allocation, a Kubernetes pod), and
`fit_memory` shrinks each run's memory so that the runs at once and the grader itself fit inside that limit.

Both versions of the cgroup interface are handled: v2 (one unified tree; the grader's own group must have no
other process for its controllers to be handed down, so the grader first moves itself into a leaf of its own)
and v1 (one tree per controller: memory, cpu, pids). Where no group can be made (not Linux, no cgroup file
system, no permission to write it), `create` returns None with the reason, and the sandbox keeps its per-process
limits only; the manifest says which budget was applied.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

CONTROLLERS = ("memory", "cpu", "pids")
PREFIX = "course-grade-"  # every group this module makes is named course-grade-<pid of its grader>-...
CPU_PERIOD = 100_000  # microseconds
GRADER_RESERVE = 1 << 30  # bytes of a job's memory limit kept for the grader itself when the runs' shares are fitted


@dataclass(frozen=True)
class Budget:
    """What one notebook run may use, all of its processes together."""

    memory: int  # bytes
    cpus: float  # cores
    tasks: int  # processes and threads

    def __post_init__(self):
        if not (isinstance(self.memory, int) and self.memory > 0):
            raise ValueError(f"memory must be a positive number of bytes, got {self.memory!r}")
        if not (isinstance(self.cpus, (int, float)) and self.cpus > 0):
            raise ValueError(f"cpus must be a positive number of cores, got {self.cpus!r}")
        if not (isinstance(self.tasks, int) and self.tasks > 0):
            raise ValueError(f"tasks must be a positive whole number, got {self.tasks!r}")


# ----------------------------------------------------------------------------------------------------------
# Where this process' groups are
# ----------------------------------------------------------------------------------------------------------

def _mounts() -> list[tuple[str, str, str, set[str]]]:
    """(root inside the hierarchy, mount point, file system type, super options) of each cgroup file system."""
    found = []
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return found
    for line in lines:
        head, _, tail = line.partition(" - ")
        fields, rest = head.split(), tail.split()
        if len(fields) >= 5 and len(rest) >= 3 and rest[0] in ("cgroup", "cgroup2"):
            found.append((fields[3], fields[4].replace("\\040", " "), rest[0], set(rest[2].split(","))))
    return found


def own_groups() -> tuple[int, dict[str, Path]]:
    """The cgroup version in use for the three controllers (2 or 1; 0 when none) and, for each controller, the
    folder of this process' own group."""
    try:
        membership = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return 0, {}
    mounts = _mounts()
    v1, v2_path = {}, None
    for line in membership:
        number, _, rest = line.partition(":")
        names, _, path = rest.partition(":")
        if number == "0" and names == "":
            v2_path = path
        for name in names.split(","):
            if name in CONTROLLERS:
                v1[name] = path

    def located(path: str, root: str, point: str) -> Path | None:
        if path != root and not path.startswith(root.rstrip("/") + "/"):
            return None
        return Path(point) / path[len(root.rstrip("/")):].lstrip("/")

    folders = {}
    for name, path in v1.items():
        for root, point, kind, options in mounts:
            if kind == "cgroup" and name in options and (folder := located(path, root, point)) is not None:
                folders[name] = folder
    if set(folders) == set(CONTROLLERS):
        return 1, folders
    if v2_path is not None:
        for root, point, kind, _ in mounts:
            if kind == "cgroup2" and (folder := located(v2_path, root, point)) is not None:
                available = (folder / "cgroup.controllers").read_text().split() \
                    if (folder / "cgroup.controllers").exists() else []
                if set(CONTROLLERS) <= set(available):
                    return 2, {name: folder for name in CONTROLLERS}
    return 0, {}


def _limit(text: str) -> int | None:
    text = text.strip()
    if not text or text == "max":
        return None
    value = int(text)
    return None if value >= (1 << 62) else value


def memory_limit() -> int | None:
    """The smallest memory limit on this process' group and its ancestors (a job's limit), or None."""
    version, folders = own_groups()
    if not version:
        return None
    name = "memory.max" if version == 2 else "memory.limit_in_bytes"
    folder, smallest = folders["memory"], None
    while True:
        try:
            value = _limit((folder / name).read_text())
        except (OSError, ValueError):
            value = None
        if value is not None:
            smallest = value if smallest is None else min(smallest, value)
        if folder.parent == folder or not (folder.parent / name).exists():
            return smallest
        folder = folder.parent


def fit_memory(wanted: int, runs: int, limit: int | None, reserve: int = GRADER_RESERVE) -> int:
    """Each run's memory: ``wanted``, or less so that ``runs`` runs at once and ``reserve`` bytes for the grader
    fit in ``limit`` (the job's limit; None when there is none). At least 256 MiB."""
    if limit is None:
        return wanted
    return max(256 << 20, min(wanted, (limit - reserve) // max(1, runs)))


# ----------------------------------------------------------------------------------------------------------
# A group
# ----------------------------------------------------------------------------------------------------------

@dataclass
class Group:
    """A cgroup made by `create`: its folder in each controller's tree (one folder for all in v2)."""

    name: str
    version: int
    folders: dict[str, Path]

    def _all(self) -> list[Path]:
        return sorted(set(self.folders.values()))

    def add(self, pid: int) -> None:
        """Move process ``pid`` (and what it starts from then on) into the group."""
        for folder in self._all():
            (folder / "cgroup.procs").write_text(f"{pid}\n")

    def pids(self) -> list[int]:
        found = set()
        for folder in self._all():
            try:
                found.update(int(x) for x in (folder / "cgroup.procs").read_text().split())
            except (OSError, ValueError):
                pass
        return sorted(found)

    def peak_memory(self) -> int | None:
        """The most memory the group held at once (bytes), where the kernel says."""
        for name in ("memory.peak", "memory.max_usage_in_bytes"):
            try:
                return int((self.folders["memory"] / name).read_text())
            except (OSError, ValueError):
                continue
        return None

    def kill(self, timeout: float = 10.0) -> None:
        """SIGKILL every process of the group, until none is left (or ``timeout`` seconds pass)."""
        deadline = time.monotonic() + timeout
        kill_file = self.folders["memory"] / "cgroup.kill"
        while (left := self.pids()) and time.monotonic() < deadline:
            if self.version == 2 and kill_file.exists():
                try:
                    kill_file.write_text("1\n")
                except OSError:
                    pass
            for pid in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            time.sleep(0.02)

    def remove(self) -> None:
        """Kill what is left, then delete the group's folders."""
        self.kill()
        for folder in self._all():
            for _ in range(50):
                try:
                    folder.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.02)


def _write(path: Path, text: str) -> None:
    with open(path, "w") as handle:
        handle.write(text)


def _delegate_v2(own: Path) -> None:
    """Hand the memory, cpu and pids controllers down from the grader's own v2 group. A group with processes in it
    cannot hand controllers down, so when this process is the group's only one it moves into a leaf of its own
    first (what systemd asks of a delegated scope)."""
    wanted = " ".join(f"+{c}" for c in CONTROLLERS)
    try:
        _write(own / "cgroup.subtree_control", wanted)
        return
    except OSError:
        pass
    members = (own / "cgroup.procs").read_text().split()
    if members != [str(os.getpid())]:
        raise OSError(f"the grader's cgroup {own} holds other processes, so its controllers cannot be handed down "
                      "(start course-grade in a scope of its own, e.g. systemd-run --scope -p Delegate=yes)")
    leaf = own / f"{PREFIX}{os.getpid()}-grader"
    leaf.mkdir(exist_ok=True)
    _write(leaf / "cgroup.procs", str(os.getpid()))
    _write(own / "cgroup.subtree_control", wanted)


def create(name: str, budget: Budget) -> tuple[Group | None, str]:
    """A new group ``course-grade-<pid>-<name>`` under this process' own, with ``budget`` applied; or None and the
    reason when no group can be made here."""
    version, own = own_groups()
    if not version:
        return None, "no cgroup file system with the memory, cpu and pids controllers is visible"
    full = f"{PREFIX}{os.getpid()}-{name}"
    try:
        if version == 2:
            _delegate_v2(own["memory"])
            folder = own["memory"] / full
            folder.mkdir()
            group = Group(full, 2, {c: folder for c in CONTROLLERS})
            _write(folder / "memory.max", str(budget.memory))
            if (folder / "memory.swap.max").exists():
                _write(folder / "memory.swap.max", "0")
            _write(folder / "cpu.max", f"{max(1000, int(budget.cpus * CPU_PERIOD))} {CPU_PERIOD}")
            _write(folder / "pids.max", str(budget.tasks))
        else:
            group = Group(full, 1, {c: own[c] / full for c in CONTROLLERS})
            for folder in group._all():
                folder.mkdir()
            memory = group.folders["memory"]
            _write(memory / "memory.limit_in_bytes", str(budget.memory))
            if (memory / "memory.memsw.limit_in_bytes").exists():
                try:
                    _write(memory / "memory.memsw.limit_in_bytes", str(budget.memory))
                except OSError:
                    pass
            cpu = group.folders["cpu"]
            _write(cpu / "cpu.cfs_period_us", str(CPU_PERIOD))
            _write(cpu / "cpu.cfs_quota_us", str(max(1000, int(budget.cpus * CPU_PERIOD))))
            _write(group.folders["pids"] / "pids.max", str(budget.tasks))
    except OSError as error:
        if "group" in locals():
            group.remove()
        return None, f"cannot make a cgroup under {own['memory']}: {error}"
    return group, f"cgroup v{version}"


def process_alive(pid: int) -> bool:
    """Whether a process ``pid`` runs (signal 0 reaches it, or it exists under another user)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale() -> list[str]:
    """Remove the groups an earlier grader left behind when it was killed (its pid no longer runs), killing what
    is still in them; return their names."""
    version, own = own_groups()
    removed = []
    for controller, folder in own.items() if version else ():
        try:
            entries = list(folder.iterdir())
        except OSError:
            continue
        for entry in entries:
            pid_text = entry.name[len(PREFIX):].split("-", 1)[0]
            if not (entry.is_dir() and entry.name.startswith(PREFIX) and pid_text.isdigit()):
                continue
            if process_alive(int(pid_text)):
                continue
            stale = Group(entry.name, version, {"memory": entry})
            stale.remove()
            removed.append(entry.name)
    return sorted(set(removed))
