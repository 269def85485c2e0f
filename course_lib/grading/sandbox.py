"""The sandbox a submission's kernel runs in: bubblewrap namespaces, an unprivileged user, resource limits.

nbval stays outside, in the grader's trusted process; only the kernel (and everything it starts) is sandboxed.
nbval starts kernels through a kernel spec, so the spec's command is this module's launcher::

    python -m course_lib.grading.sandbox kernel CONFIG CONNECTION_FILE      (outside, the grader's user)
      -> sets the resource limits, copies the connection file into the socket folder, then execs
    bwrap [namespaces, read-only system, private /tmp and home, the socket folder] \\
          python -m course_lib.grading.sandbox enter [--uid U] -- python -m ipykernel_launcher -f ...
      -> inside: drops to the unprivileged user U (when the grader is root), forbids new privileges, execs the kernel

Inside, the kernel sees: the operating system and the Python environment read-only, ``course_lib`` and the data
folder read-only, its own ``/tmp`` and home (small tmpfs), and the folder of its IPC sockets; nothing else (not
the solutions, other submissions, the output folder or anyone's home). It has no network (its own empty network
namespace: the grader reaches it over IPC sockets), its own PID namespace (it sees and signals only its own
processes, and all of them are killed when its PID 1 ends, which ``--die-with-parent`` ties to nbval's run),
and limits on processes, file size and open files. It cannot make namespaces of its own (a seccomp filter refuses
``unshare``, ``clone`` and ``setns`` with ``CLONE_NEWUSER``, and ``clone3``, so no nested user namespace can mount a
``tmpfs`` outside the memory budget) and cannot watch files (``inotify`` and ``fanotify`` are refused: a watch on
the shared read-only folders would see other sandboxes open their files). Its memory, CPU and tasks are budgeted
for the whole run by the cgroup the grader put it in (`course_lib.grading.budget`); where no cgroup can be made,
each process gets ``Limits.memory`` of address space instead. Its kernel is the first victim of any
out-of-memory kill (``oom_score_adj`` 1000).

Without bubblewrap (macOS, Windows, no user namespaces) `available` says why; ``course-grade`` then refuses
unless ``--no-sandbox`` is given, and the kernel runs with the same limits (where the OS has them) and a clean
environment, but sees what the instructor's user sees.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

KERNEL_NAME = "course-sandbox"
HOME = "/home/student"  # the kernel's home and working folder inside the sandbox (a tmpfs)
GiB, MiB = 1 << 30, 1 << 20


@dataclass(frozen=True)
class Limits:
    """What one submission's kernel may use."""

    memory: int = 4 * GiB  # memory of the whole run (its cgroup); without a cgroup: address space per process
    processes: int = 512  # tasks (threads included) of the sandbox's user
    file_size: int = 256 * MiB  # largest file it may write
    open_files: int = 1024
    tmp_size: int = 512 * MiB  # size of its /tmp and of its home, each

    def __post_init__(self):
        for name, value in asdict(self).items():
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"limit {name} must be a positive whole number, got {value!r}")


@dataclass
class SandboxSpec:
    """Everything the launcher needs, written as JSON beside the kernel spec."""

    ipc_dir: str  # the kernel's sockets and connection file: the only host folder it can write to
    read_only: list[str]  # host folders visible read-only at the same path
    env: dict[str, str]  # the kernel's whole environment
    limits: Limits = field(default_factory=Limits)
    uid: int | None = None  # when the grader runs as root: the unprivileged user the kernel runs as
    sandboxed: bool = True
    devices: list[str] = field(default_factory=list)  # device nodes to pass through (a GPU)
    budgeted: bool = False  # the run is in a cgroup that budgets its memory (then no per-process address space limit)

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=1))

    @classmethod
    def read(cls, path: Path) -> "SandboxSpec":
        data = json.loads(Path(path).read_text())
        data["limits"] = Limits(**data["limits"])
        return cls(**data)


def available() -> tuple[bool, str]:
    """Whether a bubblewrap sandbox can be made here, and if not, why."""
    if not sys.platform.startswith("linux"):
        return False, f"sandboxing needs Linux namespaces; this is {sys.platform}"
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return False, "bubblewrap is not installed (Debian/Ubuntu: apt-get install bubblewrap)"
    probe = [bwrap, "--ro-bind", "/", "/", "--unshare-pid", "--unshare-net", "--die-with-parent", "true"]
    if os.geteuid() != 0:
        probe[1:1] = ["--unshare-user"]
    try:
        done = subprocess.run(probe, capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as error:
        return False, f"bubblewrap could not run: {error}"
    if done.returncode != 0:
        reason = done.stderr.decode("utf-8", "replace").strip() or f"exit status {done.returncode}"
        return False, f"bubblewrap cannot create namespaces here ({reason}); user namespaces may be disabled"
    return True, "bubblewrap"


def write_kernel_spec(folder: Path, spec_path: Path, env: dict[str, str]) -> None:
    """A kernel spec named `KERNEL_NAME` under ``folder/kernels`` whose command is the launcher.

    Interrupts go as messages (ipykernel interrupts itself): a signal would reach bubblewrap, not the kernel. On
    Windows, where a process cannot exec another, the spec starts ipykernel itself with ``env`` added to the
    environment (no sandbox and no limits are possible there).
    """
    kernel = folder / "kernels" / KERNEL_NAME
    kernel.mkdir(parents=True, exist_ok=True)
    if os.name == "nt":
        argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    else:
        argv = [sys.executable, "-m", "course_lib.grading.sandbox", "kernel", str(spec_path), "{connection_file}"]
    spec = {"argv": argv, "display_name": "course-grade sandbox", "language": "python", "interrupt_mode": "message"}
    if os.name == "nt":
        spec["env"] = env
    (kernel / "kernel.json").write_text(json.dumps(spec))


# ----------------------------------------------------------------------------------------------------------
# The launcher (outside) and the entry (inside)
# ----------------------------------------------------------------------------------------------------------

def _tasks_of(uid: int) -> int:
    """Threads currently running under ``uid`` (what RLIMIT_NPROC counts)."""
    count = 0
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":", 1) for line in status.read_text().splitlines() if ":" in line)
        except OSError:
            continue
        if fields.get("Uid", "").split()[:1] == [str(uid)]:
            count += int(fields.get("Threads", "1").strip() or 1)
    return count


def apply_limits(limits: Limits, own_user: bool, budgeted: bool = False) -> None:
    """Set the resource limits of this process (inherited by everything it execs and starts).

    RLIMIT_NPROC counts the tasks of the real user: with a user of its own (``own_user``) the sandbox gets the
    whole budget; sharing the grader's user, it gets the budget on top of what that user already runs. The
    address space is limited only when no cgroup budgets the run's memory (``budgeted``): it counts what a process
    maps, not what it uses. The process becomes the first choice of the out-of-memory killer.
    """
    import resource

    processes = limits.processes if own_user else _tasks_of(os.getuid()) + limits.processes
    chosen = [("RLIMIT_FSIZE", limits.file_size), ("RLIMIT_NOFILE", limits.open_files), ("RLIMIT_CORE", 0),
              ("RLIMIT_NPROC", processes)] + ([] if budgeted else [("RLIMIT_AS", limits.memory)])
    try:
        Path("/proc/self/oom_score_adj").write_text("1000\n")
    except OSError:
        pass
    if budgeted:  # the cgroup counts the memory: no address-space limit inherited from anywhere either
        try:
            resource.setrlimit(resource.RLIMIT_AS, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        except (ValueError, OSError):
            pass
    for name, value in chosen:
        which = getattr(resource, name, None)
        if which is None:
            continue
        _, hard = resource.getrlimit(which)
        value = value if hard == resource.RLIM_INFINITY else min(value, hard)
        resource.setrlimit(which, (value, value))


def _ancestors(path: str) -> list[str]:
    parts = Path(path).parts
    return [str(Path(*parts[: i + 1])) for i in range(1, len(parts) - 1)]


def bwrap_command(spec: SandboxSpec, connection: str, kernel: list[str]) -> list[str]:
    """The bubblewrap command line that runs ``kernel`` in the sandbox ``spec`` describes."""
    command = [shutil.which("bwrap") or "bwrap", "--die-with-parent", "--new-session", "--unshare-ipc",
               "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try", "--hostname", "sandbox"]
    if os.geteuid() != 0:
        command.append("--unshare-user")
    command.append("--clearenv")
    for key, value in spec.env.items():
        command += ["--setenv", key, value]
    for system in ("/usr", "/etc", "/bin", "/sbin", "/lib", "/lib32", "/lib64"):
        if os.path.islink(system):
            command += ["--symlink", os.readlink(system), system]
        elif os.path.isdir(system):
            command += ["--ro-bind", system, system]
    command += ["--proc", "/proc", "--dev", "/dev"]
    for device in spec.devices:
        command += ["--dev-bind-try", device, device]
    command += ["--perms", "1777", "--size", str(spec.limits.tmp_size), "--tmpfs", "/tmp",
                "--perms", "0777", "--size", str(spec.limits.tmp_size), "--tmpfs", HOME]
    made = set()
    for path, option in [*((p, "--ro-bind") for p in spec.read_only), (spec.ipc_dir, "--bind")]:
        for parent in _ancestors(path):
            if parent not in made and parent not in ("/tmp", HOME) and not parent.startswith(("/usr/", "/etc/")):
                command += ["--perms", "0755", "--dir", parent]
                made.add(parent)
        command += [option, path, path]
    command += ["--chdir", HOME, sys.executable, "-m", "course_lib.grading.sandbox", "enter"]
    if spec.uid is not None:
        command += ["--uid", str(spec.uid)]
    return [*command, "--", *kernel]


def launch_kernel(spec_path: str, connection_file: str) -> None:
    """The kernel spec's command: limits, the connection file where the kernel can read it, then the sandbox."""
    spec = SandboxSpec.read(Path(spec_path))
    ipc = Path(spec.ipc_dir)
    inside = ipc / "connection.json"
    inside.write_bytes(Path(connection_file).read_bytes())
    if spec.uid is not None:
        os.chown(ipc, spec.uid, spec.uid)
        os.chown(inside, spec.uid, spec.uid)
    kernel = [sys.executable, "-m", "ipykernel_launcher", "-f", str(inside)]
    apply_limits(spec.limits, own_user=spec.uid is not None, budgeted=spec.budgeted)
    if spec.sandboxed:
        command = bwrap_command(spec, str(inside), kernel)
        os.execv(command[0], command)
    home = ipc / "home"
    home.mkdir(exist_ok=True)
    env = dict(spec.env, HOME=str(home), TMPDIR=str(home), MPLCONFIGDIR=str(home / "matplotlib"))
    os.chdir(home)
    os.execve(kernel[0], kernel, env)


# ----------------------------------------------------------------------------------------------------------
# The seccomp filter: no namespaces of the sandbox's own, no file watches
# ----------------------------------------------------------------------------------------------------------

# Per architecture: the audit tag, then the numbers of clone, unshare, setns, clone3 and the watch calls.
SYSCALLS = {
    "x86_64": (0xC000003E, {"clone": 56, "unshare": 272, "setns": 308, "clone3": 435},
               (253, 294, 300)),  # inotify_init, inotify_init1, fanotify_init
    "aarch64": (0xC00000B7, {"clone": 220, "unshare": 97, "setns": 268, "clone3": 435}, (26, 262)),
}
CLONE_NEWUSER = 0x10000000
EPERM, ENOSYS = 1, 38
_LOAD, _JEQ, _JGE, _JSET, _RET = 0x20, 0x15, 0x35, 0x45, 0x06  # BPF_LD|W|ABS, BPF_JMP|JEQ/JGE/JSET|K, BPF_RET|K
_ALLOW, _ERRNO = 0x7FFF0000, 0x00050000


def seccomp_program(machine: str) -> list[tuple[int, int, int, int]]:
    """The classic-BPF program (code, jt, jf, k) run on every system call of the sandbox:

        a call of another architecture (32-bit or x32 entry points)       → EPERM
        clone or unshare with CLONE_NEWUSER in its flags (argument 0)      → EPERM
        setns                                                              → EPERM
        clone3 (its flags are in memory a filter cannot read)              → ENOSYS: the C library falls back to clone
        inotify_init, inotify_init1, fanotify_init                         → ENOSYS
        anything else                                                      → allowed
    """
    arch, numbers, watches = SYSCALLS[machine]
    program, jumps = [], []  # jumps: (index, field, label) resolved below

    def add(code, k, jt=0, jf=0):
        for which, target in (("jt", jt), ("jf", jf)):
            if isinstance(target, str):
                jumps.append((len(program), which, target))
        program.append([code, 0 if isinstance(jt, str) else jt, 0 if isinstance(jf, str) else jf, k])

    labels = {}
    add(_LOAD, 4)  # seccomp_data.arch
    add(_JEQ, arch, jt=1)
    add(_RET, _ERRNO | EPERM)
    add(_LOAD, 0)  # seccomp_data.nr
    add(_JGE, 0x40000000, jt="eperm")  # the x32 ABI's numbers on x86_64 (none on aarch64)
    add(_JEQ, numbers["clone"], jt="flags")
    add(_JEQ, numbers["unshare"], jt="flags")
    add(_JEQ, numbers["setns"], jt="eperm")
    add(_JEQ, numbers["clone3"], jt="enosys")
    for number in watches:
        add(_JEQ, number, jt="enosys")
    add(_RET, _ALLOW)
    labels["flags"] = len(program)
    add(_LOAD, 16)  # the low 32 bits of seccomp_data.args[0] (little-endian)
    add(_JSET, CLONE_NEWUSER, jt="eperm")
    add(_RET, _ALLOW)
    labels["eperm"] = len(program)
    add(_RET, _ERRNO | EPERM)
    labels["enosys"] = len(program)
    add(_RET, _ERRNO | ENOSYS)
    for index, which, label in jumps:
        program[index][1 if which == "jt" else 2] = labels[label] - index - 1
    return [tuple(instruction) for instruction in program]


def forbid_namespaces_and_watches(libc) -> bool:
    """Install `seccomp_program` on this process (inherited by everything it execs and starts); False on an
    architecture it does not know. Needs no_new_privs set first."""
    import ctypes

    machine = os.uname().machine
    if machine not in SYSCALLS:
        return False

    class Instruction(ctypes.Structure):
        _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8), ("k", ctypes.c_uint32)]

    class Program(ctypes.Structure):
        _fields_ = [("len", ctypes.c_uint16), ("filter", ctypes.POINTER(Instruction))]

    instructions = seccomp_program(machine)
    array = (Instruction * len(instructions))(*[Instruction(*i) for i in instructions])
    program = Program(len(instructions), array)
    if libc.prctl(22, 2, ctypes.byref(program), 0, 0) != 0:  # PR_SET_SECCOMP, SECCOMP_MODE_FILTER
        raise SystemExit(f"course-grade sandbox: could not install the seccomp filter (errno {ctypes.get_errno()})")
    return True


def enter(uid: int | None, command: list[str]) -> None:
    """Inside the sandbox, before any student code: become ``uid`` (root only), forbid gaining privileges, new
    namespaces and file watches, exec."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if uid is not None:
        for capability in range(64):  # empty the bounding set while still allowed to
            libc.prctl(24, capability, 0, 0, 0)  # PR_CAPBSET_DROP
        os.chown(HOME, uid, uid)
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
        if os.getuid() != uid or os.geteuid() != uid:
            raise SystemExit("course-grade sandbox: could not drop privileges")
    if libc.prctl(38, 1, 0, 0, 0) != 0:  # PR_SET_NO_NEW_PRIVS: setuid programs gain nothing
        raise SystemExit("course-grade sandbox: could not set no_new_privs")
    forbid_namespaces_and_watches(libc)
    os.execv(command[0], command)


def main(argv: list[str]) -> None:
    if argv[:1] == ["kernel"] and len(argv) == 3:
        launch_kernel(argv[1], argv[2])
    elif argv[:1] == ["enter"] and "--" in argv:
        split = argv.index("--")
        options, command = argv[1:split], argv[split + 1:]
        uid = int(options[options.index("--uid") + 1]) if "--uid" in options else None
        enter(uid, command)
    else:
        raise SystemExit("usage: python -m course_lib.grading.sandbox kernel SPEC CONNECTION_FILE | "
                         "enter [--uid U] -- COMMAND...")


if __name__ == "__main__":
    main(sys.argv[1:])
