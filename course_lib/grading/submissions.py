"""Finding and reading the submissions: which student handed in which exercise, as bytes read once.

Two layouts, as the instructor collected them::

    submissions/<student>.ipynb                  one exercise (the solutions name exactly one)
    submissions/<student>/<NN_topic>.ipynb       any number of exercises

Each notebook is read once, before anything runs, through a descriptor that refuses to follow a symbolic link,
and graded from those bytes; grading never writes into the submissions folder. Entries that cannot be graded
fairly are refused with a reason that goes into the student's feedback and the summary:

- a symbolic link, or anything that is not a regular file or folder (a link could point at the solutions);
- a second submission of the same student (``alice.ipynb`` beside ``alice/``): both are refused, so that nobody's
  work is silently merged or dropped;
- a notebook larger than `MAX_BYTES`.

**Names.** A student is known by an identifier made from the file or folder name (`student_id`): the name itself
when it is printable UTF-8 of at most `MAX_NAME_BYTES` bytes, otherwise (bytes that are not UTF-8, as unzipping a
Windows archive gives, control characters, newlines, a name too long for ``feedback/<name>.md``) a safe spelling of
it followed by ``~`` and ten hexadecimal digits of its SHA-256: unique and the same in every run. Names that differ
only in case or Unicode form (``Kate``, ``kate``, ``\u212aATE``: one file on a case-insensitive disk) are all graded,
each under its name followed by ``~`` and its digest, and flagged. The original name, escaped, stays in `shown`.

Entries whose names start with a dot (``.ipynb_checkpoints``, ``.DS_Store``) and files that are not notebooks
are ignored and listed in the summary.
"""

from __future__ import annotations

import hashlib
import os
import stat
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

MAX_BYTES = 50 * 1024 * 1024
MAX_NAME_BYTES = 100  # longer names are shortened (a file name has at most 255 bytes, with ".md" or ".log" added)


@dataclass
class Submission:
    """One student's notebook of one exercise, or the reason it cannot be graded."""

    student: str  # the identifier (see `student_id`)
    exercise: str
    path: Path
    label: str  # the entry as the instructor sees it, escaped: alice.ipynb or alice/01_batch_sgd.ipynb
    content: bytes | None = None  # the bytes read, when they are kept in memory
    refused: str = ""  # why it is not graded (the grader's words)
    copy: Path | None = None  # where the bytes read were copied to (in the grader's private folder)
    digest: str = ""  # SHA-256 of the bytes read

    def data(self) -> bytes:
        """The bytes read once, from memory or from the grader's private copy."""
        return self.content if self.content is not None else self.copy.read_bytes()


@dataclass
class Collection:
    submissions: list[Submission] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)  # entries skipped, with why
    renamed: dict[str, str] = field(default_factory=dict)  # identifier → the original name, escaped, where they differ
    flagged: list[str] = field(default_factory=list)  # for the instructor: names graded under a changed identifier

    @property
    def students(self) -> list[str]:
        return sorted({s.student for s in self.submissions})


def shown(name: str) -> str:
    """``name`` as the instructor can read it: printable characters as they are, anything else escaped
    (``\\xfc`` for a byte that is not UTF-8, ``\\n``, ``\\u202e``)."""
    out = []
    for character in name:
        if 0xDC80 <= ord(character) <= 0xDCFF:  # a byte that was not UTF-8 (Python's surrogateescape)
            out.append(f"\\x{ord(character) - 0xDC00:02x}")
        elif character.isprintable() and character != "\\":
            out.append(character)
        else:
            out.append(repr(character)[1:-1] if character != "\\" else "\\\\")
    return "".join(out)


def _digest(name: str, digits: int = 10) -> str:
    undecodable_bytes = all(0xDC80 <= ord(c) <= 0xDCFF for c in name if 0xD800 <= ord(c) <= 0xDFFF)
    data = name.encode("utf-8", "surrogateescape" if undecodable_bytes else "surrogatepass")  # the name's own bytes
    return hashlib.sha256(data).hexdigest()[:digits]


def student_id(name: str) -> str:
    """The identifier of the student whose file or folder is called ``name`` (see the module's text)."""
    kept = name.isprintable() and "/" not in name and "\\" not in name \
        and len(name.encode("utf-8", "surrogatepass")) <= MAX_NAME_BYTES \
        and not any(0xD800 <= ord(c) <= 0xDFFF for c in name)
    if kept:
        return name
    safe = "".join(c if c.isprintable() and c not in "/\\" and not 0xD800 <= ord(c) <= 0xDFFF else "_" for c in name)
    return f"{safe[:40]}~{_digest(name)}"


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


def collect(folder: Path, exercises: list[str], copies: Path | None = None) -> Collection:
    """Every submission in ``folder`` for the given exercise names, read or refused. With ``copies`` (a private
    folder), the bytes read are written there instead of being kept in memory."""
    if not folder.is_dir():
        raise ValueError(f"submissions folder {folder} does not exist or is not a folder")
    found = Collection()
    originals: list[tuple[Submission, str]] = []  # each submission with its student's original name
    for entry in sorted(folder.iterdir()):
        name = entry.name
        if name.startswith("."):
            found.ignored.append(f"{shown(name)} (hidden)")
            continue
        kind = _kind(entry)
        if kind == "dir":
            for notebook in sorted(entry.iterdir()):
                label = f"{shown(name)}/{shown(notebook.name)}"
                if notebook.name.startswith(".") or notebook.suffix != ".ipynb":
                    found.ignored.append(f"{label} (not a notebook)")
                elif notebook.stem not in exercises:
                    found.ignored.append(f"{label} (no such exercise among the solutions)")
                else:
                    originals.append((Submission(name, notebook.stem, notebook, label), name))
        elif entry.suffix == ".ipynb":
            if len(exercises) != 1:
                raise ValueError(f"{shown(name)}: with several exercises, submissions must be "
                                 "<student>/<NN_topic>.ipynb")
            submission = Submission(entry.stem, exercises[0], entry, shown(name))
            if kind != "file":
                submission.refused = "the submission is a symbolic link" if kind == "link" else \
                    "the submission is not a regular file"
            originals.append((submission, entry.stem))
        elif kind == "link":
            found.ignored.append(f"{shown(name)} (a symbolic link)")
        else:
            found.ignored.append(f"{shown(name)} (not a notebook)")
    _name_students(originals, found)
    found.submissions = [submission for submission, _ in originals]
    _refuse_duplicates(found.submissions)
    for number, submission in enumerate(found.submissions):
        if not submission.refused:
            try:
                data = read_regular_file(submission.path)
            except OSError as error:
                submission.refused = "the submission is a symbolic link" if os.path.islink(submission.path) \
                    else f"the submission could not be read ({error.__class__.__name__})"
                continue
            except ValueError as error:
                submission.refused = f"the submission is {error}"
                continue
            submission.digest = hashlib.sha256(data).hexdigest()
            if copies is None:
                submission.content = data
            else:
                submission.copy = copies / f"{number}.ipynb"
                submission.copy.parent.mkdir(parents=True, exist_ok=True)
                submission.copy.write_bytes(data)
    return found


def _name_students(originals: list[tuple[Submission, str]], found: Collection) -> None:
    """Give each submission its student's identifier (`student_id`); names that differ only in case or Unicode
    form, and identifiers that two names would share, get each name's digest, and are flagged."""
    names = sorted({name for _, name in originals})
    folded: dict[str, set[str]] = {}
    for name in names:
        folded.setdefault(unicodedata.normalize("NFKC", name).casefold(), set()).add(name)
    identifiers = {name: student_id(name) for name in names}
    taken: dict[str, set[str]] = {}
    for name, identifier in identifiers.items():
        taken.setdefault(identifier.casefold(), set()).add(name)
    for name in names:
        rivals = folded[unicodedata.normalize("NFKC", name).casefold()] | taken[identifiers[name].casefold()]
        if len(rivals) > 1:
            safe = student_id(name)
            identifiers[name] = f"{safe.split('~')[0][:40]}~{_digest(name, 16)}"
            found.flagged.append(f"{shown(name)} is graded as {identifiers[name]}: other names differ from it only "
                                 f"in case or Unicode form ({', '.join(shown(r) for r in sorted(rivals - {name}))})")
    for submission, name in originals:
        submission.student = identifiers[name]
        if identifiers[name] != name:
            found.renamed[identifiers[name]] = shown(name)


def _refuse_duplicates(submissions: list[Submission]) -> None:
    """Refuse every submission of a student that two entries claim: the same name twice (``alice.ipynb`` and
    ``alice/``)."""
    claims: dict[tuple[str, str], list[Submission]] = {}
    for submission in submissions:
        claims.setdefault((submission.student, submission.exercise), []).append(submission)
    for submission in submissions:
        rivals = claims[(submission.student, submission.exercise)]
        if len(rivals) > 1:
            labels = " and ".join(sorted(s.label for s in rivals))
            submission.refused = f"two entries claim this student's exercise ({labels}); neither was graded"


def shard(students: list[str], index: int, count: int) -> list[str]:
    """The students of shard ``index`` (1-based) of ``count``: every count-th name in sorted order."""
    if not (isinstance(count, int) and isinstance(index, int) and 1 <= index <= count):
        raise ValueError(f"shard must be K/N with 1 ≤ K ≤ N, got {index}/{count}")
    return [student for position, student in enumerate(sorted(students)) if position % count == index - 1]
