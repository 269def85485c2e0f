"""The course as a website and as slides, from the lectures executed top to bottom.

    python -m book.build book [--scale quick|lecture] [--force]
    python -m book.build slides NN|all [--scale quick|lecture] [--force]

(``python3 course.py book`` and ``python3 course.py slides NN`` run these in the course's environment.)

**Executed lectures.** Each lecture runs once, headless, in a fresh kernel from ``lectures/``, at the scale asked
for (quick by default: the figures of the tests' runs), with ``COURSE_STATIC_PANELS=1`` so that every panel
draws its figure at its defaults into the cell's output, and with progress bars off. The executed notebook is
kept in ``build/executed/<scale>/`` and reused by the book and the slides until the lecture or ``course_lib``
changes. A cell that raises stops the build with the lecture and the cell named.

**The book** is built by Sphinx with MyST-NB (notebooks and Markdown as pages) and the Sphinx Book Theme into
``build/book/``: a front page made from the README's description and its table of lectures, a page per executed
lecture (test-only cells removed, see ``book/cells.py``), a page per exercise as students receive it (no outputs,
no answers: the exercises are generated without them) with the notebook to download, and a page per lecture's
questions with the answers folded. Search is Sphinx's own; equations are typeset by a copy of MathJax 3 (SVG
output) served with the site, so the book works without a network, from ``file://`` too, and can be published as
it is (``.nojekyll`` keeps GitHub Pages from dropping the ``_static`` folder).

**The slides** are nbconvert's reveal.js slides of an executed lecture, following the slideshow metadata the
lectures carry (``book/cells.py``), without the test-only cells, into ``build/slides/``. They load reveal.js and
MathJax from copies beside them (``course.py``'s set-up fetches both into the environment), else from a CDN.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nbformat

from book.cells import TEST_ONLY

ROOT = Path(__file__).resolve().parent.parent
BOOK = Path(__file__).resolve().parent
LECTURES = ROOT / "lectures"
EXERCISES = ROOT / "exercises"
BUILD = ROOT / "build"
WEB_ASSETS = Path(sys.prefix) / "share" / "going-deeper"  # course.py's set-up fetches them there
REVEAL_CDN = "https://unpkg.com/reveal.js@4.0.2"
MATHJAX_SCRIPT = "es5/tex-svg-full.js"
MATHJAX_CDN = "https://cdn.jsdelivr.net/npm/mathjax@3.2.2"
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
SCALES = ("quick", "lecture")


class BuildError(RuntimeError):
    """A lecture that does not execute, or a site that Sphinx cannot build."""


def lecture_paths(which: str = "all") -> list[Path]:
    """The lectures named by ``which``: ``all``, a number (``01``, ``8``: every notebook of that lecture) or a file stem."""
    lectures = sorted(LECTURES.glob("*.ipynb"))
    if which == "all":
        return lectures
    chosen = [path for path in lectures
              if path.stem == which or (which.isdigit() and path.stem.split("_")[0] == f"{int(which):02d}")]
    if not chosen:
        raise SystemExit(f"lecture {which!r}: give 'all', a lecture number (01 to 09) or one of "
                         f"{', '.join(path.stem for path in lectures)}")
    return chosen


def web_asset(name: str, cdn: str, target: Path) -> str:
    """Copy reveal.js or MathJax from the set-up's folder to ``target/name``; return the URL prefix the pages use
    (``name``, relative to them, or the CDN's, with a note, where the set-up could not fetch it)."""
    source = WEB_ASSETS / name
    if not (source / "complete").exists():
        print(f"{name} is not installed in {source} (python3 course.py fetches it during the set-up): the pages "
              f"load it from {cdn}, which needs a network", flush=True)
        return cdn
    shutil.rmtree(target / name, ignore_errors=True)
    shutil.copytree(source, target / name)
    return name


def _newest_source(lecture: Path) -> float:
    return max([lecture.stat().st_mtime] + [path.stat().st_mtime for path in (ROOT / "course_lib").rglob("*.py")])


def execute(lecture: Path, scale: str = "quick", force: bool = False) -> nbformat.NotebookNode:
    """The lecture executed at ``scale`` (kept in ``build/executed/<scale>/``, reused while it is current)."""
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    if scale not in SCALES:
        raise SystemExit(f"--scale {scale!r}: use one of {', '.join(SCALES)}")
    target = BUILD / "executed" / scale / lecture.name
    if not force and target.exists() and target.stat().st_mtime >= _newest_source(lecture):
        return nbformat.read(target, as_version=4)
    notebook = nbformat.read(lecture, as_version=4)
    env = {**os.environ, "COURSE_SCALE": scale, "COURSE_STATIC_PANELS": "1", "TQDM_DISABLE": "1"}
    env.pop("COURSE_QUICK", None)
    pythonpath = [str(ROOT), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    env["PYTHONPATH"] = os.pathsep.join(pythonpath)  # this checkout's course_lib, whatever is installed
    client = NotebookClient(notebook, timeout=1800, kernel_name="python3", allow_errors=False,
                            resources={"metadata": {"path": str(LECTURES)}})
    started = time.perf_counter()
    print(f"executing {lecture.name} at the {scale} scale ...", flush=True)
    try:
        client.execute(env=env)
    except CellExecutionError as error:
        failed = [(index, output) for index, cell in enumerate(notebook.cells) for output in cell.get("outputs", [])
                  if output.get("output_type") == "error"]
        index, output = failed[0] if failed else ("?", {"ename": type(error).__name__, "evalue": str(error)[-500:]})
        raise BuildError(f"{lecture.name}, cell {index}: {output['ename']}: {output['evalue']}") from None
    print(f"  {lecture.name}: {time.perf_counter() - started:.0f} s", flush=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    nbformat.write(notebook, partial)
    partial.replace(target)
    return notebook


def for_readers(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy without the test-only cells and without widget outputs (a page has no kernel to draw them)."""
    copy = nbformat.from_dict(notebook)
    copy.cells = [cell for cell in copy.cells if TEST_ONLY not in cell.metadata.get("tags", [])]
    for cell in copy.cells:
        if cell.cell_type == "code":
            cell.outputs = [output for output in cell.outputs if WIDGET_MIME not in output.get("data", {})]
    copy.metadata.pop("widgets", None)
    return copy


def figures(notebook: nbformat.NotebookNode) -> int:
    """How many images a notebook's outputs hold."""
    return sum(1 for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs
               if any(mime.startswith("image/") for mime in output.get("data", {})))


# ------------------------------------------------------------------------------------------------ the book


def title_of(notebook: nbformat.NotebookNode) -> str:
    first = notebook.cells[0].source.strip().splitlines()[0]
    return first.lstrip("#").strip()


def front_page(lectures: list[Path]) -> str:
    """index.md: the README's description and its table of lectures, with links to each lecture's page (named by
    its title), its questions and its exercise, and the README's run times."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    description = readme.split("\n## ", 1)[0].split("\n", 1)[1].strip()
    table = re.search(r"^## The lectures\n\n(\|.*?)\n\n", readme, re.MULTILINE | re.DOTALL).group(1)
    exercises = sorted(path.stem for path in EXERCISES.glob("*.ipynb"))
    rows = ["| # | lecture | what it covers | questions, exercise | run time (lecture / quick scale) |",
            "|---|---|---|---|---|"]
    for row in table.splitlines()[2:]:
        number, notebook, run_time, covers = (cell.strip() for cell in row.strip().strip("|").split(" | ", 3))
        stem = re.fullmatch(r"`lectures/(\w+)\.ipynb`", notebook).group(1)
        title = title_of(nbformat.read(LECTURES / f"{stem}.ipynb", as_version=4)).split(" — ", 1)[-1]
        links = [f"[questions](questions/{stem}.md)"] if _questions(LECTURES / f"{stem}.ipynb") is not None else []
        links += [f"[exercise](exercises/{name}.ipynb)" for name in exercises if name == stem]
        run_time = re.sub(r"\s*\(.*\)", "", run_time)  # the slowest cell is the README's detail
        rows.append(f"| {number} | [{title}](lectures/{stem}.ipynb) | {covers} | {', '.join(links)} | {run_time} |")
    return "\n".join([
        "# Going Deeper", "", description, "",
        "The pages of this book are the lecture notebooks executed at the quick scale, with their figures; the "
        "experiments' panels appear as the figure they draw at their default values, and the notebooks make them "
        "interactive. To run them, train at the lecture scale and work the exercises, follow the README of the "
        "course's repository (`python3 course.py lab`).", "",
        "## The lectures", "", *rows, "",
        "Each lecture's questions, with their answers folded, have a page of their own; each exercise has a page "
        "that shows it as students receive it, with its notebook to download.", "",
        "```{toctree}", ":caption: Lectures", ":hidden:", "", *(f"lectures/{path.stem}" for path in lectures), "```", "",
        "```{toctree}", ":caption: Questions", ":hidden:", "", *(f"questions/{path.stem}" for path in lectures
                                                                   if _questions(path) is not None), "```", "",
        "```{toctree}", ":caption: Exercises", ":hidden:", "", *(f"exercises/{stem}" for stem in exercises), "```", "",
    ])


def _questions(lecture: Path) -> str | None:
    """The lecture's "Questions to think about" section (answers folded in <details>), or None."""
    notebook = nbformat.read(lecture, as_version=4)
    for cell in notebook.cells:
        found = re.search(r"^## Questions to think about\n(.*?)(?=^## |\Z)", cell.source, re.MULTILINE | re.DOTALL)
        if cell.cell_type == "markdown" and found:
            return found.group(1).strip()
    return None


def questions_page(lecture: Path) -> str:
    title = title_of(nbformat.read(lecture, as_version=4))
    return "\n".join([f"# Questions: {title}", "",
                      f"Think about each question first; the hints and answers are folded below them. "
                      f"The lecture: [{title}](../lectures/{lecture.stem}.ipynb).", "",
                      _questions(lecture), ""])


def exercise_page(path: Path) -> nbformat.NotebookNode:
    """The exercise as students receive it, with a first cell that offers its notebook."""
    notebook = nbformat.read(path, as_version=4)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    offer = nbformat.v4.new_markdown_cell(
        f"*This page shows the exercise as you receive it. Work it in Jupyter: download "
        f"{{download}}`{path.name} <notebooks/{path.name}>` (or open `exercises/{path.name}` in the course's repository), "
        f"replace each `raise NotImplementedError(...)` and run the check below it.*")
    notebook.cells.insert(1, offer)
    return notebook


def build_book(scale: str = "quick", force: bool = False, output: Path | None = None) -> Path:
    """Execute the lectures (or reuse their executed copies), stage the pages and run Sphinx; return the site."""
    output = output or BUILD / "book"
    started = time.perf_counter()
    lectures = lecture_paths()
    source = BUILD / "book_source"
    shutil.rmtree(source, ignore_errors=True)
    for folder in ("lectures", "exercises", "questions"):
        (source / folder).mkdir(parents=True)
    for lecture in lectures:
        page = for_readers(execute(lecture, scale, force))
        nbformat.write(page, source / "lectures" / lecture.name)
        if _questions(lecture) is not None:
            (source / "questions" / f"{lecture.stem}.md").write_text(questions_page(lecture), encoding="utf-8")
    for exercise in sorted(EXERCISES.glob("*.ipynb")):
        nbformat.write(exercise_page(exercise), source / "exercises" / exercise.name)
        (source / "exercises" / "notebooks").mkdir(exist_ok=True)
        shutil.copy(exercise, source / "exercises" / "notebooks" / exercise.name)  # offered for download, not a page
    (source / "index.md").write_text(front_page(lectures), encoding="utf-8")
    shutil.rmtree(output, ignore_errors=True)
    (output / "_static").mkdir(parents=True)
    mathjax = web_asset("mathjax", MATHJAX_CDN, output / "_static")
    sphinx = [sys.executable, "-m", "sphinx", "-b", "html", "-c", str(BOOK), "-W", "--keep-going", "-q",
              "-D", f"mathjax_path={mathjax}/{MATHJAX_SCRIPT}", str(source), str(output)]
    if subprocess.run(sphinx, cwd=ROOT).returncode != 0:
        raise BuildError("Sphinx reported the problems above")
    (output / ".nojekyll").write_text("")
    print(f"the book is in {output} ({time.perf_counter() - started:.0f} s); open {output / 'index.html'}", flush=True)
    return output


# ------------------------------------------------------------------------------------------------ the slides


def build_slides(which: str = "all", scale: str = "quick", force: bool = False, output: Path | None = None) -> list[Path]:
    """reveal.js slides of the chosen lectures, with reveal.js and MathJax beside them when they are installed."""
    from nbconvert import SlidesExporter
    from traitlets.config import Config

    output = output or BUILD / "slides"
    output.mkdir(parents=True, exist_ok=True)
    reveal = web_asset("reveal.js", REVEAL_CDN, output)
    mathjax = web_asset("mathjax", MATHJAX_CDN, output)
    config = Config()
    config.SlidesExporter.reveal_url_prefix = reveal
    config.SlidesExporter.reveal_scroll = True
    config.SlidesExporter.reveal_number = "c/t"
    config.SlidesExporter.reveal_theme = "white"  # its fonts come with reveal.js ("simple" loads Google's)
    config.SlidesExporter.mathjax_url = f"{mathjax}/{MATHJAX_SCRIPT}"
    config.SlidesExporter.extra_template_basedirs = [str(BOOK)]
    config.SlidesExporter.template_name = "offline_reveal"
    exporter = SlidesExporter(config=config)
    written = []
    for lecture in lecture_paths(which):
        body, _ = exporter.from_notebook_node(for_readers(execute(lecture, scale, force)),
                                              resources={"metadata": {"name": title_of(nbformat.read(lecture, 4))}})
        target = output / f"{lecture.stem}.slides.html"
        target.write_text(body, encoding="utf-8")
        written.append(target)
        print(f"slides: {target}", flush=True)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="course.py", description="Build the course's book or a lecture's slides.")
    commands = parser.add_subparsers(dest="command", required=True)
    book = commands.add_parser("book", help="the website of the executed lectures, into build/book/")
    slides = commands.add_parser("slides", help="reveal.js slides of a lecture (or all), into build/slides/")
    slides.add_argument("lecture", help="a lecture number (01 to 09), a notebook's name without .ipynb, or all")
    for command in (book, slides):
        command.add_argument("--scale", default=os.environ.get("COURSE_SCALE", "quick"), choices=SCALES,
                             help="the scale the lectures run at (default quick, or COURSE_SCALE)")
        command.add_argument("--force", action="store_true", help="execute the lectures again even if their copies are current")
    args = parser.parse_args(argv)
    try:
        if args.command == "book":
            build_book(args.scale, args.force)
        else:
            build_slides(args.lecture, args.scale, args.force)
    except BuildError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
