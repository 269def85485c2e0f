#!/usr/bin/env python3
"""Set up the course and run it: the two commands of the README.

    python3 course.py lab     create .venv if absent, install the course into it, open JupyterLab on lectures/
    python3 course.py test    the same set-up (and Debian's chromium for the browser tests and bubblewrap for
                              the grading sandbox, when they are missing and apt-get may install them), then
                              the everyday suite in parallel workers: unit tests, all notebooks through nbval,
                              the exercise checks, the grader's engine, the browser tests (quick mode)
    python3 course.py test --complete
                              the everyday suite plus the grading fixtures: every exercise's solution,
                              alternative and wrong answers graded at one and two threads, the adversarial
                              submissions, nbgrader's autograde, the book built from a fresh checkout (what CI runs)
    python3 course.py book    the same set-up, then the website of the executed lectures into build/book/
    python3 course.py slides NN | all
                              the same set-up, then reveal.js slides of lecture NN (or of all) into build/slides/

Both are safe to run again: the virtual environment is created once, and the install step runs
again only when pyproject.toml has changed since the last successful install. Arguments after
the command go to JupyterLab or pytest, e.g. ``python3 course.py test -k lecture01 -x``.

Only the standard library is used here, so this file runs with any Python 3.10+ before anything
is installed.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import shutil
import subprocess
import sys
import tarfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
STAMP = VENV / "course-install.stamp"
MIN_PYTHON = (3, 10)
# What the book and the slides load in the browser, kept in .venv so that they work without a network: reveal.js
# (the version nbconvert's slides are written for; its dist/ and speaker-notes plugin) and MathJax 3 (its SVG
# output needs no web fonts, which browsers refuse to load from file:// pages). From the npm registry, each
# checked against the registry's published sha512 digest: (url, digest, the folders kept).
WEB_ASSETS = VENV / "share" / "going-deeper"
WEB_PACKAGES = {
    "reveal.js": ("https://registry.npmjs.org/reveal.js/-/reveal.js-4.0.2.tgz",
                  "LWZSUenufF1gpD7npxJ7KfoQQFKgc1D6XrLTFgKlwWNP1BQ74hT48KONFWMAw+8R/QUeaScCLCLrBVHDfFIEiw==",
                  ("dist/", "plugin/notes/")),
    "mathjax": ("https://registry.npmjs.org/mathjax/-/mathjax-3.2.2.tgz",
                "Bt+SSVU8eBG27zChVewOicYs7Xsdt40qm4+UpHyX7k0/O9NliPc+x77k1/FEsPsjKPZGJvtRZM1vO+geW0OhGw==",
                ("es5/tex-svg-full.js", "es5/ui/", "es5/input/tex/extensions/", "es5/output/svg/")),
}


def venv_executable(name: str) -> Path:
    """Path of an executable inside .venv (bin/ on Linux and macOS, Scripts/ on Windows)."""
    folder = "Scripts" if os.name == "nt" else "bin"
    suffix = ".exe" if os.name == "nt" else ""
    return VENV / folder / f"{name}{suffix}"


def install_fingerprint() -> str:
    """What the environment was built from: the package's metadata and dependencies."""
    return hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()


def ensure_environment() -> Path:
    """Create .venv if needed and install the course into it; return its python."""
    if sys.version_info < MIN_PYTHON:
        sys.exit(f"course.py needs Python {MIN_PYTHON[0]}.{MIN_PYTHON[1]} or newer; this is {sys.version.split()[0]}.")
    python = venv_executable("python")
    if not python.exists():
        print(f"Creating the virtual environment {VENV} ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True)
    if STAMP.exists() and STAMP.read_text().strip() == install_fingerprint():
        ensure_web_assets()
        return python
    print(
        "Installing the course and its dependencies into .venv.\n"
        "The first install downloads PyTorch with its CUDA libraries (about 5 GB); "
        "later runs reuse it.",
        flush=True,
    )
    start = time.perf_counter()
    subprocess.run([str(python), "-m", "pip", "install", "--upgrade", "pip"], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "--editable", str(ROOT)], check=True)
    STAMP.write_text(install_fingerprint() + "\n")
    print(f"Installed in {time.perf_counter() - start:.0f} s.", flush=True)
    ensure_web_assets()
    return python


def ensure_web_assets() -> None:
    """Fetch reveal.js and MathJax into .venv once; when one cannot be had, say that the pages will use a CDN."""
    for name, (url, sha512, kept) in WEB_PACKAGES.items():
        folder = WEB_ASSETS / name
        if (folder / "complete").exists():
            continue
        try:
            with urllib.request.urlopen(url, timeout=120) as response:
                archive = response.read()
        except OSError as error:
            print(f"Could not fetch {name} ({error}): the book and slides will load it from a CDN.", flush=True)
            continue
        if base64.b64encode(hashlib.sha512(archive).digest()).decode() != sha512:
            print(f"{name} from {url} does not match its published digest; not installed.", flush=True)
            continue
        staging = folder.with_name(f"{name}.partial")
        shutil.rmtree(staging, ignore_errors=True)
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            for member in tar.getmembers():
                path = member.name.removeprefix("package/")
                if member.isfile() and path.startswith(kept) and ".." not in path.split("/"):
                    target = staging / path
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(tar.extractfile(member).read())
        (staging / "complete").write_text(url + "\n")
        shutil.rmtree(folder, ignore_errors=True)
        staging.rename(folder)
        print(f"Installed {name} for the book and the slides in {folder}.", flush=True)


def run_lab(python: Path, extra: list[str]) -> int:
    """Start JupyterLab with the repository as its root, showing lectures/."""
    command = [
        str(python), "-m", "jupyter", "lab",
        f"--ServerApp.root_dir={ROOT}",
        "--LabApp.default_url=/lab/tree/lectures",
        *extra,
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0 and "--allow-root" not in extra:
        command.append("--allow-root")  # containers often run as root; JupyterLab refuses without it
    return subprocess.run(command, cwd=ROOT).returncode


BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def apt_install(packages: list[str], purpose: str) -> bool:
    """Install Debian packages with apt-get when it may run here (as root, or through sudo without a password);
    say why not otherwise. Returns whether apt-get ran successfully."""
    apt = shutil.which("apt-get")
    is_root = hasattr(os, "geteuid") and os.geteuid() == 0
    prefix = [] if is_root else (["sudo", "-n"] if shutil.which("sudo") else None)
    if apt is None or prefix is None:
        reason = "there is no apt-get" if apt is None else "it needs root (or sudo without a password)"
        print(f"Cannot install {' '.join(packages)} for {purpose}: {reason}.", flush=True)
        return False
    print(f"Installing {' '.join(packages)} for {purpose} (apt-get install) ...", flush=True)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    install = [*prefix, apt, "install", "-y", "--no-install-recommends", *packages]
    if subprocess.run(install, env=env).returncode == 0:
        return True
    subprocess.run([*prefix, apt, "update"], env=env)
    return subprocess.run(install, env=env).returncode == 0


def ensure_chromium() -> None:
    """The browser tests drive a system Chromium: install Debian's package when none is found; without one those
    tests are skipped with the reason."""
    if os.environ.get("COURSE_CHROMIUM") or any(shutil.which(name) for name in BROWSERS):
        return
    apt_install(["chromium", "fonts-dejavu-core"], "the browser tests")
    if not any(shutil.which(name) for name in BROWSERS):
        print("No Chromium: the browser tests will be skipped. Install one (Debian: apt-get install chromium) or "
              "set COURSE_CHROMIUM to one.", flush=True)


def ensure_bubblewrap() -> None:
    """course-grade runs each submission's kernel under bubblewrap (Linux only): install Debian's package when it
    is missing; without it the sandboxed grading tests are skipped with the reason."""
    if not sys.platform.startswith("linux") or shutil.which("bwrap"):
        return
    apt_install(["bubblewrap"], "the grading sandbox")
    if not shutil.which("bwrap"):
        print("No bubblewrap: the sandboxed grading tests will be skipped. Install it (Debian/Ubuntu: "
              "apt-get install bubblewrap).", flush=True)


def test_workers() -> int:
    """Parallel pytest workers: one per core, at most 4 (each notebook kernel is itself a process)."""
    return max(1, min(os.cpu_count() or 1, 4))


def run_tests(python: Path, extra: list[str]) -> int:
    """Run the suite in quick mode (conftest.py switches it on), in parallel workers.

    The grading fixtures (tests marked ``complete``) run only with ``--complete``. conftest.py puts
    each test in a group that one worker runs in order (``--dist loadscope``): a notebook's cells,
    which nbval runs in one kernel; a test module, whose fixtures its tests share. The groups start in the
    order conftest.py gives them (the slowest first), not sorted by their number of tests.
    """
    ensure_chromium()
    ensure_bubblewrap()
    complete = "--complete" in extra
    extra = [arg for arg in extra if arg != "--complete"]
    if not complete:  # the caller's own -m selection, if any, narrowed to the everyday tests
        chosen = next((i for i, arg in enumerate(extra) if arg == "-m"), None)
        if chosen is not None and chosen + 1 < len(extra):
            extra[chosen + 1] = f"({extra[chosen + 1]}) and not complete"
        else:
            extra = ["-m", "not complete", *extra]
    workers = [] if any(arg == "-n" or arg.startswith("--numprocesses") for arg in extra) \
        else ["-n", str(test_workers()), "--dist", "loadscope", "--no-loadscope-reorder"]
    started = time.monotonic()
    code = subprocess.run([str(python), "-m", "pytest", *workers, *extra], cwd=ROOT).returncode
    print(f"course.py test{' --complete' if complete else ''}: {(time.monotonic() - started) / 60:.1f} minutes", flush=True)
    return code


def run_book(python: Path, extra: list[str]) -> int:
    """Build the book (book/build.py): python3 course.py book [--scale quick|lecture] [--force]."""
    return subprocess.run([str(python), "-m", "book.build", "book", *extra], cwd=ROOT).returncode


def run_slides(python: Path, extra: list[str]) -> int:
    """Build slides (book/build.py): python3 course.py slides NN|all [--scale quick|lecture] [--force]."""
    return subprocess.run([str(python), "-m", "book.build", "slides", *extra], cwd=ROOT).returncode


COMMANDS = {"lab": run_lab, "test": run_tests, "book": run_book, "slides": run_slides}


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in COMMANDS:
        print(__doc__)
        print(f"usage: python3 course.py {{{','.join(COMMANDS)}}} [arguments for JupyterLab or pytest]")
        return 2
    python = ensure_environment()
    return COMMANDS[argv[0]](python, argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
