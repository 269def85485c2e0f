"""Submissions of exercise 01 that break in honest ways or try to cheat, each with the grade it deserves.

Each fixture is a notebook (or a file-system entry) built from the committed solution or exercise, a line saying
which mechanism it exercises, and the parts it deserves to lose (``ALL``: every part). They are graded in one
batch by ``tests/test_grading_batch.py``, inside the sandbox; every other student in the batch is a bystander
that the attacks must not touch.

Three kinds of cheats:

- **forgers** keep wrong answers (`WRONG`) and try to make the checks pass anyway (patched comparisons, silenced
  errors, tags, fake reports, forged records): they deserve 0;
- **spies** try to reach something the sandbox must hide (the solutions, another submission, the instructor's
  environment or files, the grader's processes) and answer correctly *only if they succeed* (`IF_FOUND`): they
  deserve 0, so a leak shows up as points;
- **vandals** submit the correct answers plus a cell that attacks the machine, the batch or the outputs (kill
  everything, fork, fill memory or disk, flood the output, leave processes behind, leak hidden tests through an
  error): they deserve full marks, and nobody else may lose anything.
"""

from __future__ import annotations

import hashlib
import json
import textwrap
from dataclasses import dataclass
from pathlib import Path

import nbformat

from course_lib.grading.verdicts import exercise_parts

ROOT = Path(__file__).resolve().parent.parent
SOLUTION = ROOT / "tests" / "grading_subject" / "solutions" / "01_batch_sgd.ipynb"
EXERCISE = ROOT / "tests" / "grading_subject" / "exercises" / "01_batch_sgd.ipynb"
# The parts graded automatically (the written answer waits for the instructor and is not part of these grades).
ALL = frozenset(p.part_id for p in exercise_parts(nbformat.read(SOLUTION, as_version=4), SOLUTION.stem) if not p.manual)
NONE = frozenset()
LATER = {"train-mnist", "eta-sweep"}  # the parts that train with minibatches and sgd_step
SECRET_ENV = "COURSE_GRADING_TEST_SECRET"

WRONG = '''
import torch
def linear_backward(x, w, grad_y):
    return torch.zeros_like(x), torch.zeros_like(w)
def minibatches(x, y, batch_size, generator=None):
    yield x, y
def sgd_step(parameters, lr):
    pass
'''

IF_FOUND = '''
import json, glob, os
def answers_from(path):
    """Run the answer cells of a solution notebook found at ``path`` (what a spy hopes to find)."""
    notebook = json.load(open(path))
    cells = [c for c in notebook["cells"] if c["cell_type"] == "code" and "def " in "".join(c["source"])]
    if not cells:
        raise ValueError("no answers there")
    for cell in cells:
        exec("".join(cell["source"]), globals())
    return True
'''


@dataclass
class Fixture:
    student: str  # the identifier the grader gives the student (see course_lib.grading.submissions.student_id)
    mechanism: str
    text: str | None  # the notebook's text; None when `tests/test_grading_batch.py` makes the entry itself
    loses: frozenset  # the parts it deserves to lose
    entry: bytes | None = None  # the file name's bytes, without .ipynb, where they are not the identifier
    data: bytes | None = None  # the file's bytes, where they are not ``text`` in UTF-8


def _cells(path: Path):
    return nbformat.read(path, as_version=4)


def _is_answer_stub(cell) -> bool:
    """An exercise's answer cell (nbgrader's solution cell, graded by the check after it)."""
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return bool(meta.get("solution")) and not meta.get("grade")


def solution_with(code: str, at: str = "end", **metadata) -> str:
    """The solution with one more code cell, after the set-up cell (``at="top"``) or at the end."""
    notebook = _cells(SOLUTION)
    cell = nbformat.v4.new_code_cell(textwrap.dedent(code).strip(), metadata=metadata)
    notebook.cells.insert(2 if at == "top" else len(notebook.cells), cell)
    return nbformat.writes(notebook)


def cheater_with(*pieces: str) -> str:
    """The exercise without its answer cells, and one cell after the set-up made of ``pieces`` (each dedented):
    the wrong answers and the attack."""
    notebook = _cells(EXERCISE)
    notebook.cells = [c for c in notebook.cells if not (c.cell_type == "code" and _is_answer_stub(c))]
    code = "\n".join(textwrap.dedent(piece).strip() for piece in pieces)
    notebook.cells.insert(2, nbformat.v4.new_code_cell(code))
    return nbformat.writes(notebook)


def with_answer(part: str, transform) -> str:
    notebook = _cells(SOLUTION)
    cell = next(c for c in notebook.cells if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == f"{part}-answer")
    cell.source = transform(cell.source)
    return nbformat.writes(notebook)


def without_cell(part: str) -> str:
    notebook = _cells(SOLUTION)
    notebook.cells = [c for c in notebook.cells if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") != part]
    return nbformat.writes(notebook)


def honest_fixtures() -> list[Fixture]:
    """Honest mistakes and broken files (the grader must survive each and charge only its own points)."""
    old = nbformat.writes(nbformat.convert(_cells(SOLUTION), 3), version=3)
    return [
        Fixture("alice", "the solution itself", SOLUTION.read_text(), NONE),
        Fixture("bob", "the untouched exercise", EXERCISE.read_text(), ALL),
        Fixture("carol", "grad_w transposed", with_answer(
            "linear-backward", lambda s: s.replace("grad_w = grad_y.T @ x", "grad_w = x.T @ grad_y")), {"linear-backward"}),
        Fixture("dave", "an exception in an answer", with_answer(
            "minibatches", lambda s: "raise RuntimeError('oops')\n" + s), {"minibatches", *LATER}),
        Fixture("eve", "an infinite loop, interrupted at the cell time limit", with_answer(
            "linear-backward", lambda s: "while True:\n    pass\n" + s), {"linear-backward"}),
        Fixture("frank", "invalid JSON", '{"cells": [', ALL),
        Fixture("grace", "nbformat 3", old, NONE),
        Fixture("heidi", "a deleted check cell", without_cell("minibatches"), {"minibatches"}),
        Fixture("ivan", "a renamed function", with_answer(
            "sgd-step", lambda s: s.replace("def sgd_step", "def sgd_update")), {"sgd-step", *LATER}),
        Fixture("judy", "sys.exit() in an answer", with_answer(
            "linear-backward", lambda s: "import sys\nsys.exit()\n" + s), {"linear-backward"}),
        Fixture("mallory", "os._exit() kills the kernel", with_answer(
            "minibatches", lambda s: "import os\nos._exit(1)\n" + s), {"minibatches", "sgd-step", *LATER}),
        Fixture("oscar", "100 000 lines of output", with_answer(
            "sgd-step", lambda s: "for i in range(100_000):\n    print('spam ' * 20)\n" + s), NONE),
        Fixture("empty", "an empty file", "", ALL),
        Fixture("walter", "a text file named .ipynb", "These are my notes, not a notebook.\n", ALL),
        Fixture("latin", "bytes that are not UTF-8", None, ALL),
    ]


def adversarial_fixtures(paths: dict[str, str], token: str) -> list[Fixture]:
    """Attacks on the grader. ``paths`` names the host folders (solutions, submissions, output, course_lib) an
    attacker would aim at; ``token`` marks every process an attack starts, so that survivors can be found."""
    solutions, submissions, output = paths["solutions"], paths["submissions"], paths["output"]
    library = paths["course_lib"]
    fixtures = [
        # ---- forgers: wrong answers, checks "made to pass" ----
        Fixture("forge_patch", "rebinding the comparisons the checks call", cheater_with(WRONG, '''
            import builtins
            torch.allclose = lambda *a, **k: True
            torch.equal = lambda *a, **k: True
            torch.Tensor.__eq__ = lambda *a, **k: True
            builtins.all = lambda *a, **k: True
            builtins.sorted = lambda *a, **k: list(range(10))
        '''), ALL),
        Fixture("forge_subclass", "a Tensor subclass whose __torch_function__ answers every check", cheater_with('''
            import torch
            class Yes(torch.Tensor):
                @classmethod
                def __torch_function__(cls, func, types, args=(), kwargs=None):
                    if func in (torch.allclose, torch.equal, torch.Tensor.__eq__):
                        return True
                    return super().__torch_function__(func, types, args, kwargs or {})
                def __bool__(self):
                    return True
                @property
                def shape(self):
                    return ShapeOfAnything()
            class ShapeOfAnything(tuple):
                def __eq__(self, other):
                    return True
            def linear_backward(x, w, grad_y):
                return torch.zeros_like(x).as_subclass(Yes), torch.zeros_like(w).as_subclass(Yes)
            def minibatches(x, y, batch_size, generator=None):
                yield x.as_subclass(Yes), y.as_subclass(Yes)
            def sgd_step(parameters, lr):
                pass
        '''), ALL),
        Fixture("forge_custom_exc", "IPython's set_custom_exc swallows every error", cheater_with(WRONG, '''
            get_ipython().set_custom_exc((BaseException,), lambda shell, etype, value, tb, tb_offset=None: None)
        '''), ALL),
        Fixture("forge_input_transformer", "an input transformer replaces every later cell by 'pass'", cheater_with(
            WRONG, '''
            get_ipython().input_transformers_post.append(lambda lines: ["pass\\n"])
        '''), ALL),
        Fixture("forge_ast_transformer", "an AST transformer deletes asserts and evidence calls", cheater_with(WRONG, '''
            import ast
            class Disarm(ast.NodeTransformer):
                def visit_Assert(self, node):
                    return ast.Pass()
                def visit_Expr(self, node):
                    call = node.value
                    name = getattr(getattr(call, "func", None), "id", "")
                    return ast.Pass() if name.startswith("expect") else node
            get_ipython().ast_transformers.append(Disarm())
        '''), ALL),
        Fixture("forge_showtraceback", "a silenced showtraceback: failing cells send no error", cheater_with(WRONG, '''
            shell = get_ipython()
            shell.showtraceback = lambda *a, **k: None
            shell._showtraceback = lambda *a, **k: None
        '''), ALL),
        Fixture("forge_tags", "raises-exception and nbval-skip tags on every cell", None, ALL),
        Fixture("forge_comments", "NBVAL_SKIP / NBVAL_RAISES_EXCEPTION comments in the student's cells", cheater_with(
            "# NBVAL_RAISES_EXCEPTION\n# NBVAL_SKIP", WRONG), ALL),
        Fixture("forge_report", "a fake junit report and results file, then killing its own runner", cheater_with(
            WRONG, f'''
            import os, signal, pathlib
            passed = "".join(f'<testcase name="Cell {{i}}"/>' for i in range(20))
            for folder in (".", "/tmp", os.path.expanduser("~")):
                pathlib.Path(folder, "report.xml").write_text(f"<testsuite>{{passed}}</testsuite>")
                pathlib.Path(folder, "results.jsonl").write_text("".join(
                    '{{"cell": %d, "status": "ran", "records": []}}\\n' % i for i in range(20)))
            os.kill(os.getppid(), signal.SIGKILL)
        '''), ALL),
        Fixture("forge_report_dir", "report.xml, results.jsonl and notebook.ipynb made into folders", cheater_with(
            WRONG, '''
            import os
            for name in ("report.xml", "results.jsonl", "notebook.ipynb", "/tmp/report.xml"):
                os.makedirs(name, exist_ok=True)
        '''), ALL),
        Fixture("forge_records", "evidence records forged from an ungraded cell, guessing the values", cheater_with(
            WRONG, '''
            from IPython.display import display
            from course_lib.grading.evidence import MIME
            for key in ["B=1 D_in=5 D_out=2", "B=17 D_in=3 D_out=8", "B=2 D_in=1 D_out=1", "held-out digits",
                        "batch_size=0", "batch_size=-2", "batch_size=2.5", "lr=-0.25"]:
                display({MIME: {"key": key, "kind": "value", "value": True, "message": "ok"}}, raw=True)
        '''), ALL),
        Fixture("forge_patched_expect", "a patched expect that records the reference, labels and mentions",
                cheater_with(WRONG, '''
            import course_lib.grading.evidence as evidence
            original = evidence.expect, evidence.expect_raises, evidence.expect_accuracy
            def expect(key, value, *, reference=None, **kwargs):
                kwargs.pop("message", None)
                original[0](key, reference, message="forged", **kwargs)
            def expect_raises(key, exception, call, *, mentions=None, **kwargs):
                def fake():
                    raise exception(f"mentions {mentions}")
                original[1](key, exception, fake, mentions=mentions, message="forged")
            def expect_accuracy(key, predictions, *, labels=None, at_least=0.0, message=""):
                original[2](key, labels, labels=labels, at_least=at_least, message="forged")
            evidence.expect, evidence.expect_raises, evidence.expect_accuracy = expect, expect_raises, expect_accuracy
        '''), ALL),
        Fixture("forge_kill_parent", "killing PID 1 and its parent before the checks", cheater_with(WRONG, '''
            import os, signal
            for pid in (os.getppid(), 1):
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
        '''), ALL),
        # ---- spies: correct answers only if something hidden is reachable ----
        Fixture("spy_cmdline", "reading the grader's command line in /proc for the solutions' path", cheater_with(
            WRONG, IF_FOUND, '''
            for cmdline in glob.glob("/proc/*/cmdline"):
                try:
                    words = open(cmdline, "rb").read().split(b"\\0")
                except OSError:
                    continue
                for word in words:
                    text = word.decode(errors="ignore")
                    for candidate in [text, *glob.glob(os.path.join(text, "*.ipynb"))]:
                        if candidate.endswith(".ipynb"):
                            try:
                                answers_from(candidate)
                            except Exception:
                                pass
        '''), ALL),
        Fixture("spy_solutions", "opening the solutions folder and every notebook on the disk", cheater_with(
            WRONG, IF_FOUND, f'''
            places = [{solutions!r}, "/tmp", "/home", "/work", "/root", "/srv", "/opt", "."]
            for path in [p for place in places for p in glob.glob(place + "/**/*.ipynb", recursive=True)]:
                try:
                    answers_from(path)
                    break
                except Exception:
                    pass
        '''), ALL),
        Fixture("spy_sibling", "copying a sibling's submission", cheater_with(WRONG, IF_FOUND, f'''
            for path in [{submissions!r} + "/alice.ipynb", {submissions!r} + "/grace.ipynb"]:
                try:
                    answers_from(path)
                    break
                except Exception:
                    pass
        '''), ALL),
        Fixture("spy_environment", "reading the instructor's environment", cheater_with(WRONG, f'''
            import os
            if os.environ.get({SECRET_ENV!r}):
                exec(os.environ[{SECRET_ENV!r}], globals())
        '''), ALL),
        Fixture("spy_home", "reading the instructor's home and /root", cheater_with(WRONG, IF_FOUND, '''
            for home in ("/root", "/home"):
                for path in glob.glob(home + "/**/*.ipynb", recursive=True):
                    try:
                        answers_from(path)
                    except Exception:
                        pass
        '''), ALL),
        Fixture("spy_hidden_file", "looking for the graded copy (with the hidden tests) on the disk", cheater_with(
            WRONG, '''
            import glob, os
            places = ["/tmp", "/home", "/work", "/root", "/srv", "/opt", "."]
            found = [p for place in places for p in glob.glob(place + "/**/*", recursive=True)
                     if os.path.isfile(p) and "BEGIN HIDDEN" in open(p, errors="ignore").read()]
            if found:
                raise ValueError(open(found[0]).read())
        '''), ALL),
        Fixture("spy_library", "rewriting course_lib's evidence module", cheater_with(WRONG, IF_FOUND, f'''
            try:
                open({library!r} + "/grading/evidence.py", "a").write("\\n# tampered\\n")
                answers_from({solutions!r} + "/01_batch_sgd.ipynb")
            except Exception:
                pass
        '''), ALL),
        # ---- vandals: correct answers and an attack ----
        Fixture("vandal_kill_all", "SIGKILL to every process it can see, PID 1 included, at the end", solution_with('''
            import os, signal
            for pid in sorted((int(p) for p in os.listdir("/proc") if p.isdigit()), reverse=True):
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
        '''), NONE),
        Fixture("vandal_siblings", "killing the sibling runs (every other pid, pkill pytest)", solution_with('''
            import os, signal, subprocess
            subprocess.run(["pkill", "-9", "-f", "pytest"])
            for pid in (int(p) for p in os.listdir("/proc") if p.isdigit()):
                if pid not in (1, os.getpid()):
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except OSError:
                        pass
        ''', at="top"), NONE),
        Fixture("vandal_rewriter", "a detached process that waits for the grader to exit, then rewrites its output",
                solution_with(f'''
            import subprocess, sys
            script = """
            import time, pathlib
            marker = {token!r}
            while True:
                for target in ({output!r} + "/grades.csv", {output!r} + "/feedback/alice.md",
                               {solutions!r} + "/01_batch_sgd.ipynb", {submissions!r} + "/bob.ipynb"):
                    try:
                        pathlib.Path(target).write_text("rewritten")
                    except OSError:
                        pass
                time.sleep(0.2)
            """
            subprocess.Popen([sys.executable, "-c", script, {token!r}], start_new_session=True,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        ''', at="top"), NONE),
        Fixture("vandal_daemon", "a double-forked daemon in its own session that outlives its kernel", solution_with(f'''
            import os, time
            if os.fork() == 0:
                os.setsid()
                if os.fork() == 0:
                    os.execvp("sleep", ["sleep", "3600", {token!r}])
                os._exit(0)
        '''), NONE),
        Fixture("vandal_planter", "files planted in the output, submissions and solutions folders", solution_with(f'''
            import pathlib
            for folder in ({output!r}, {output!r} + "/feedback", {submissions!r}, {solutions!r}, "."):
                try:
                    pathlib.Path(folder).mkdir(parents=True, exist_ok=True)
                    pathlib.Path(folder, "planted.txt").write_text("planted")
                    pathlib.Path(folder, "zed.ipynb").write_text("{{}}")
                except OSError:
                    pass
        '''), NONE),
        Fixture("vandal_fork_bomb", "forking until the process limit stops it", solution_with('''
            import os, time
            children = 0
            while children < 100_000:
                if os.fork() == 0:
                    time.sleep(3600)
                    os._exit(0)
                children += 1
        '''), NONE),
        Fixture("vandal_memory", "asking for 64 GiB of memory", solution_with('''
            hog = bytearray(64 << 30)
        '''), NONE),
        Fixture("vandal_disk", "a 600 MB file in its home and in /tmp", solution_with('''
            block = b"x" * (1 << 20)
            for path in ("big.bin", "/tmp/big.bin"):
                with open(path, "wb") as handle:
                    for _ in range(600):
                        handle.write(block)
        '''), NONE),
        Fixture("vandal_flood", "60 MB printed and 60 MB written straight to its stdout", solution_with('''
            import os
            line = "flood " * 1000 + "\\n"
            for _ in range(10_000):
                print(line, end="")
                os.write(1, line.encode())
        '''), NONE),
        Fixture("vandal_network", "connecting out and to the host's loopback", solution_with('''
            import socket
            for address in (("1.1.1.1", 53), ("127.0.0.1", 22), ("127.0.0.1", 8888)):
                with socket.socket() as s:
                    s.settimeout(2)
                    s.connect(address)
        '''), NONE),
        Fixture("vandal_leak_nbsp", "copying every cell's code (hidden tests included) into an error, spaces "
                "turned into no-break spaces", None, NONE),
        Fixture("vandal_leak_class", "an exception class named after the hidden tests", None, NONE),
        Fixture("vandal_leak_answer", "an answer that raises the captured hidden tests during a graded check",
                None, {"sgd-step"}),
        Fixture("vandal_sleeper", "a cell that ignores interrupts and sleeps past the time limit", solution_with('''
            import signal, time
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            time.sleep(3600)
        '''), NONE),
        Fixture("paste_check_above", "a copy of a check cell pasted above its answer", None, NONE),
        Fixture("fake_points", "points raised in the metadata and a graded cell of its own", None, NONE),
        Fixture("answer_as_check", "the answer cell given the check cell's id", None, {"minibatches", *LATER}),
    ]
    return fixtures


def leak_fixtures_text() -> dict[str, str]:
    """The three leak attempts that need more than one extra cell."""
    capture = '''
        seen = []
        def keep(lines):
            seen.append("".join(lines))
            return lines
        get_ipython().input_transformers_post.append(keep)
    '''
    nbsp = solution_with(capture, at="top")
    notebook = nbformat.reads(nbsp, as_version=4)
    notebook.cells.append(nbformat.v4.new_code_cell(
        'raise ValueError("\\n".join(seen).replace(" ", "\\u00a0"))'))
    leak_class = nbformat.reads(solution_with(capture, at="top"), as_version=4)
    leak_class.cells.append(nbformat.v4.new_code_cell(
        'hidden = "\\n".join(seen)[-300:]\nraise type(hidden, (Exception,), {})(hidden)'))
    leak_answer = nbformat.reads(solution_with(capture, at="top"), as_version=4)
    answer = next(c for c in leak_answer.cells if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == "sgd-step-answer")
    answer.source = answer.source.replace("    if lr < 0:", '    if lr == -0.25:\n        raise AssertionError("\\n".join(seen))\n'
                                          "    if lr < 0:")
    return {"vandal_leak_nbsp": nbformat.writes(notebook), "vandal_leak_class": nbformat.writes(leak_class),
            "vandal_leak_answer": nbformat.writes(leak_answer)}


def structural_fixtures_text() -> dict[str, str]:
    """Fixtures that change the notebook's structure or metadata rather than add code."""
    tagged = nbformat.reads(cheater_with(WRONG), as_version=4)
    for cell in tagged.cells:
        cell.setdefault("metadata", {})["tags"] = ["raises-exception", "nbval-skip", "nbval-ignore-output"]
    pasted = _cells(SOLUTION)
    check = next(i for i, c in enumerate(pasted.cells) if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == "minibatches")
    answer = next(i for i, c in enumerate(pasted.cells) if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == "minibatches-answer")
    copy = nbformat.from_dict(json.loads(json.dumps(pasted.cells[check])))
    copy["id"] = "pasted-check"
    pasted.cells.insert(answer, copy)
    points = _cells(SOLUTION)
    for cell in points.cells:
        if cell.get("metadata", {}).get("nbgrader", {}).get("grade"):
            cell.metadata.nbgrader.points = 100
    points.cells.append(nbformat.v4.new_code_cell("assert True", metadata={"nbgrader": {
        "grade": True, "grade_id": "bonus", "points": 50, "solution": False, "locked": True, "schema_version": 3}}))
    renamed = _cells(SOLUTION)
    for cell in renamed.cells:
        if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") == "minibatches-answer":
            cell.metadata.nbgrader.grade_id = "minibatches"
    return {"forge_tags": nbformat.writes(tagged), "paste_check_above": nbformat.writes(pasted),
            "fake_points": nbformat.writes(points), "answer_as_check": nbformat.writes(renamed)}


def _digest(name: bytes, digits: int) -> str:
    return hashlib.sha256(name).hexdigest()[:digits]


def _with_written_answer(change) -> str:
    """The solution as JSON, with ``change`` applied to the written answer's cell (a dict)."""
    notebook = json.loads(SOLUTION.read_text())
    cell = next(c for c in notebook["cells"] if c.get("metadata", {}).get("nbgrader", {}).get("grade") and
                c["cell_type"] == "markdown")
    change(cell)
    return json.dumps(notebook)  # ensure_ascii: a lone surrogate is written as the escape \\udcff


def robustness_fixtures() -> list[Fixture]:
    """Submissions that once stopped the whole batch or starved the grader (one odd file, one odd value), and the
    covert channel of the notes. Each must cost at most its own points."""
    kelvin, newline, html = "\u212aATE".encode(), b"nl\n# Forged heading\n**Model answer.** forged", \
        b"<img src=x onerror=alert(1)>"
    covert = []
    for secret in (b"the hidden tests", b"something else!"):
        notebook = _cells(SOLUTION)
        names = ["ValueError", "KeyError", "TypeError", "IndexError", "OSError", "RuntimeError", "ZeroDivisionError",
                 "LookupError"]
        for bit in range(160):
            chosen = names[(secret[bit // 8 % len(secret)] >> (bit % 8)) & 7]
            notebook.cells.append(nbformat.v4.new_code_cell(f"raise {chosen}()"))
        covert.append(nbformat.writes(notebook))
    flood = nbformat.reads(solution_with('''
        from IPython.display import display
        for i in range(4):
            display({"application/vnd.going-deeper.evidence+json": {"key": f"flood {i}", "kind": "value",
                     "value": "x" * 4_900_000, "message": "m"}}, raw=True)
    '''), as_version=4)
    flood.cells += [nbformat.v4.new_code_cell(flood.cells[-1].source) for _ in range(13)]
    return [
        Fixture("forge_huge_int", "every float of every record replaced by the int 10**400", solution_with('''
            import course_lib.grading.evidence as evidence
            real_encode = evidence.encode
            def huge(value):
                if isinstance(value, float) or (isinstance(value, dict) and set(value) == {"float"}):
                    return {"float": 10 ** 400} if isinstance(value, dict) else 10 ** 400
                if isinstance(value, list):
                    return [huge(v) for v in value]
                if isinstance(value, dict):
                    return {k: huge(v) for k, v in value.items()}
                return value
            evidence.encode = lambda value: huge(real_encode(value))
        ''', at="top"), ALL),
        Fixture("no_source", "the written answer's cell without a source key",
                _with_written_answer(lambda cell: cell.pop("source")), NONE),
        Fixture("surrogate", "a lone surrogate in the written answer",
                _with_written_answer(lambda cell: cell.update(source="My answer \udcff.")), NONE),
        Fixture(f"k03_m_ller~{_digest(b'k03_m' + bytes([0xFC]) + b'ller', 10)}", "a Latin-1 file name (a Windows zip)",
                SOLUTION.read_text(), NONE, entry=b"k03_m" + bytes([0xFC]) + b"ller"),
        Fixture(f"{'x' * 40}~{_digest(b'x' * 249, 10)}", "a file name of 255 bytes", SOLUTION.read_text(), NONE,
                entry=b"x" * 249),
        Fixture(f"\u212aATE~{_digest(kelvin, 16)}", "a Kelvin sign, which casefolds to another student's name",
                SOLUTION.read_text(), NONE, entry=kelvin),
        Fixture(f"kate~{_digest(b'kate', 16)}", "the honest student whose name the Kelvin sign folds to",
                SOLUTION.read_text(), NONE, entry=b"kate"),
        Fixture("'vic", "a name that starts with an apostrophe", SOLUTION.read_text(), NONE),
        Fixture(f"nl_# Forged heading_**Model answer.** fo~{_digest(newline, 10)}",
                "newlines in the file name, forging a heading and a model answer", SOLUTION.read_text(), NONE,
                entry=newline),
        Fixture(html.decode(), "HTML in the file name", SOLUTION.read_text(), NONE),
        Fixture("many_lists", "49.5 MB of empty lists (under the 50 MB cap; gigabytes once parsed)", None, ALL,
                data=b'{"cells": [], "metadata": {"x": [' + b"[]," * 16_500_000 + b'[]]}, "nbformat": 4, '
                     b'"nbformat_minor": 5}'),
        Fixture("vandal_records", "14 cells of 4 evidence records of 4.9 MB each", nbformat.writes(flood), NONE),
        Fixture("vandal_namespaces", "a nested user namespace to mount a 64 GiB tmpfs and inotify on the shared "
                "folders (its kernel dies if either works, or if it is not the OOM killer's first choice), then out of "
                "the OOM killer's reach and 6 GiB into its own /tmp", solution_with('''
            import ctypes, os
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.unshare(0x10000000 | 0x00020000) == 0 or libc.inotify_init1(0) >= 0:
                os._exit(1)
            if open("/proc/self/oom_score_adj").read().strip() != "1000":
                os._exit(1)
            try:  # out of the OOM killer's reach (some kernels let anyone lower it): then its runner is the victim
                open("/proc/self/oom_score_adj", "w").write("-1000")
            except OSError:
                pass
            import signal
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # past the file-size limit, a write fails instead
            try:
                for number in range(30):  # 6 GiB in files of 200 MiB, until /tmp is full
                    with open(f"/tmp/fill{number}", "wb") as handle:
                        for _ in range(200):
                            handle.write(b"x" * (1 << 20))
            except OSError:
                pass
        ''', at="top"), NONE),
        Fixture("vandal_printer", "a cell that ignores interrupts and prints without end, after the checks",
                solution_with('''
            import signal
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            while True:
                print("x" * 1000, flush=True)
        '''), NONE),
        Fixture("big_tensor", "correct answers and a 3 GB tensor kept alive", solution_with('''
            kept = torch.ones(750_000_000)
        ''', at="top"), NONE),
        Fixture("covert_a", "160 ungraded cells whose exceptions spell out a secret", covert[0], NONE),
        Fixture("covert_b", "the same with another secret", covert[1], NONE),
    ]
