"""Finding and reading the submissions: which student handed in which exercise, as bytes read once.

Two layouts, as the instructor collected them::

    submissions/<student>.ipynb                  one exercise (the solutions name exactly one)
    submissions/<student>/<NN_topic>.ipynb       any number of exercises

Each notebook is read once, before anything runs, through a descriptor that refuses to follow a symbolic link,
and graded from those bytes; grading never writes into the submissions folder. Entries that cannot be graded
fairly are refused with a reason that goes into the student's feedback and the summary:

- a symbolic link, or anything that is not a regular file or folder (a link could point at the solutions);
- a second submission of the same student (``alice.ipynb`` beside ``alice/``, or ``Alice`` beside ``alice``):
  both are refused, so that nobody's work is silently merged or dropped;
- a notebook larger than `MAX_BYTES`.

Entries whose names start with a dot (``.ipynb_checkpoints``, ``.DS_Store``) and files that are not notebooks
are ignored and listed in the summary.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

MAX_BYTES = 50 * 1024 * 1024


@dataclass
class Submission:
    """One student's notebook of one exercise, or the reason it cannot be graded."""

    student: str
    exercise: str
    path: Path
    label: str  # the entry as the instructor sees it: alice.ipynb or alice/01_batch_sgd.ipynb
    content: bytes | None = None
    refused: str = ""  # why it is not graded (the grader's words)


@dataclass
class Collection:
    submissions: list[Submission] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)  # entries skipped, with why

    @property
    def students(self) -> list[str]:
        return sorted({s.student for s in self.submissions})


def read_regular_file(path: Path) -> bytes:
    """The bytes of ``path``, refusing symbolic links and anything that is not a regular file."""
    descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    try:
        info = os.fstat(descriptor)
        if not stat.S_ISREG(info.st_mode):
            raise ValueError("not a regular file")
        if info.st_size > MAX_BYTES:
            raise ValueError(f"larger than {MAX_BYTES // (1024 * 1024)} MB")
        chunks, size = [], 0
        while chunk := os.read(descriptor, 1 << 20):
            size += len(chunk)
            if size > MAX_BYTES:
                raise ValueError(f"larger than {MAX_BYTES // (1024 * 1024)} MB")
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(descriptor)


def _kind(path: Path) -> str:
    """'link', 'dir', 'file' or 'other', without following a link."""
    mode = os.lstat(path).st_mode
    return "link" if stat.S_ISLNK(mode) else "dir" if stat.S_ISDIR(mode) else "file" if stat.S_ISREG(mode) else "other"


def collect(folder: Path, exercises: list[str]) -> Collection:
    """Every submission in ``folder`` for the given exercise names, read or refused."""
    if not folder.is_dir():
        raise ValueError(f"submissions folder {folder} does not exist or is not a folder")
    found = Collection()
    for entry in sorted(folder.iterdir()):
        name = entry.name
        if name.startswith("."):
            found.ignored.append(f"{name} (hidden)")
            continue
        kind = _kind(entry)
        if kind == "dir":
            for notebook in sorted(entry.iterdir()):
                if notebook.name.startswith(".") or notebook.suffix != ".ipynb":
                    found.ignored.append(f"{name}/{notebook.name} (not a notebook)")
                elif notebook.stem not in exercises:
                    found.ignored.append(f"{name}/{notebook.name} (no such exercise among the solutions)")
                else:
                    found.submissions.append(Submission(name, notebook.stem, notebook, f"{name}/{notebook.name}"))
        elif entry.suffix == ".ipynb":
            if len(exercises) != 1:
                raise ValueError(f"{name}: with several exercises, submissions must be <student>/<NN_topic>.ipynb")
            submission = Submission(entry.stem, exercises[0], entry, name)
            if kind != "file":
                submission.refused = "the submission is a symbolic link" if kind == "link" else \
                    "the submission is not a regular file"
            found.submissions.append(submission)
        elif kind == "link":
            found.ignored.append(f"{name} (a symbolic link)")
        else:
            found.ignored.append(f"{name} (not a notebook)")
    _refuse_duplicates(found.submissions)
    for submission in found.submissions:
        if not submission.refused:
            try:
                submission.content = read_regular_file(submission.path)
            except OSError as error:
                submission.refused = "the submission is a symbolic link" if os.path.islink(submission.path) \
                    else f"the submission could not be read ({error.__class__.__name__})"
            except ValueError as error:
                submission.refused = f"the submission is {error}"
    return found


def _refuse_duplicates(submissions: list[Submission]) -> None:
    """Refuse every submission of a student that two entries claim: the same name twice (``alice.ipynb`` and
    ``alice/``), or names that differ only in case (one file on a case-insensitive disk)."""
    spellings: dict[str, set[str]] = {}
    claims: dict[tuple[str, str], list[Submission]] = {}
    for submission in submissions:
        spellings.setdefault(submission.student.casefold(), set()).add(submission.student)
        claims.setdefault((submission.student.casefold(), submission.exercise), []).append(submission)
    for submission in submissions:
        rivals = claims[(submission.student.casefold(), submission.exercise)]
        if len(rivals) > 1:
            labels = " and ".join(sorted(s.label for s in rivals))
            submission.refused = f"two entries claim this student's exercise ({labels}); neither was graded"
        elif len(spellings[submission.student.casefold()]) > 1:
            names = ", ".join(sorted(spellings[submission.student.casefold()]))
            submission.refused = f"student names that differ only in case ({names}); not graded"


def shard(students: list[str], index: int, count: int) -> list[str]:
    """The students of shard ``index`` (1-based) of ``count``: every count-th name in sorted order."""
    if not (isinstance(count, int) and isinstance(index, int) and 1 <= index <= count):
        raise ValueError(f"shard must be K/N with 1 ≤ K ≤ N, got {index}/{count}")
    return [student for position, student in enumerate(sorted(students)) if position % count == index - 1]
