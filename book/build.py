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
``build/book/``: a front page made from the README's description and its table of lectures; a page per executed
lecture (see ``for_book``: the test-only cells' code removed, the code that drew a figure folded above it), each
followed in the book's order by a page of its questions with the answers folded and by its exercise as students
receive it (no outputs, no answers: the exercises are generated without them) with the notebook to download. Search is Sphinx's own; equations are typeset by a copy of MathJax 3 (SVG
output) served with the site, so the book works without a network, from ``file://`` too, and can be published as
it is (``.nojekyll`` keeps GitHub Pages from dropping the ``_static`` folder).

**The slides** are nbconvert's reveal.js slides of an executed lecture, following the slideshow metadata the
lectures carry (``book/cells.py``), into ``build/slides/`` (see ``for_slides``: no test-only cell and no assert,
a figure's slide shows the figure rather than its code, long code only what it printed). They load reveal.js and
MathJax from copies beside them (``course.py``'s set-up fetches both into the environment), else from a CDN.
"""

from __future__ import annotations

import argparse
import ast
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


def _without_widgets(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy without widget outputs (progress bars): a page has no kernel to draw them."""
    copy = nbformat.from_dict(notebook)
    for cell in copy.cells:
        if cell.cell_type == "code":
            cell.outputs = [output for output in cell.outputs if WIDGET_MIME not in output.get("data", {})]
    copy.metadata.pop("widgets", None)
    return copy


def has_figure(cell) -> bool:
    return cell.cell_type == "code" and any(any(mime.startswith("image/") for mime in output.get("data", {}))
                                            for output in cell.outputs)


def _tagged(cell, tag: str):
    cell.metadata["tags"] = [*cell.metadata.get("tags", []), tag]
    return cell


def for_book(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The page's copy of an executed lecture. A test-only cell's code is removed (what it printed stays, since the
    text may quote it; a check that printed nothing goes); the code that drew a figure is folded above it (MyST-NB's
    ``hide-input``: one click shows it); no widget outputs."""
    copy = _without_widgets(notebook)
    cells = []
    for cell in copy.cells:
        if TEST_ONLY in cell.metadata.get("tags", []):
            if cell.cell_type == "code" and cell.outputs:
                cells.append(_tagged(cell, "remove-input"))
        else:
            cells.append(_tagged(cell, "hide-input") if has_figure(cell) else cell)
    copy.cells = cells
    return copy


def _only_checks(node: ast.stmt) -> bool:
    """An ``assert``, or a loop, ``if`` or ``with`` that only asserts."""
    if isinstance(node, ast.Assert):
        return True
    if isinstance(node, (ast.For, ast.While, ast.If, ast.With)):
        return all(_only_checks(inner) for inner in node.body + getattr(node, "orelse", []))
    return False


def _check_lines(block: list[ast.stmt]) -> set[int]:
    """The lines of a block's statements that only check, and of those inside its other statements' bodies (a
    body made only of checks stays, so that the code shown still parses)."""
    if all(_only_checks(node) for node in block):
        return set()
    lines = set()
    for node in block:
        if _only_checks(node):
            lines.update(range(node.lineno, node.end_lineno + 1))
        elif hasattr(node, "body") and isinstance(node.body, list):
            lines |= _check_lines(node.body)
    return lines


def without_asserts(source: str) -> str:
    """The code without the statements that only check (a slide shows what the code does, the notebook checks it)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return source
    if all(_only_checks(node) for node in tree.body):  # a cell of checks shows no code at all
        dropped = {line for node in tree.body for line in range(node.lineno, node.end_lineno + 1)}
    else:
        dropped = _check_lines(tree.body)
    return "\n".join(line for number, line in enumerate(source.splitlines(), start=1) if number not in dropped).strip()


SLIDE_CODE_LINES = 12  # longer code shows on a slide only through what it printed or drew


def for_slides(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The slides' copy of an executed lecture: no test-only cell; no ``assert`` in the code shown; a figure's slide
    shows the figure, not the code that drew it, and code longer than SLIDE_CODE_LINES lines only what it printed
    (both are in the notebook); a cell left with nothing to show goes; no widget outputs."""
    copy = _without_widgets(notebook)
    cells = []
    for cell in copy.cells:
        if TEST_ONLY in cell.metadata.get("tags", []):
            continue
        if cell.cell_type == "code":
            cell.source = without_asserts(cell.source)
            if has_figure(cell) or len(cell.source.splitlines()) > SLIDE_CODE_LINES or not cell.source:
                if not cell.outputs:
                    continue
                cell.metadata["transient"] = {"remove_source": True}
        cells.append(cell)
    copy.cells = cells
    return copy


def figures(notebook: nbformat.NotebookNode) -> int:
    """How many images a notebook's outputs hold."""
    return sum(1 for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs
               if any(mime.startswith("image/") for mime in output.get("data", {})))


# ------------------------------------------------------------------------------------------------ the book


def title_of(notebook: nbformat.NotebookNode) -> str:
    first = notebook.cells[0].source.strip().splitlines()[0]
    return first.lstrip("#").strip()


def front_page(lectures: list[Path], scale: str) -> str:
    """index.md: the README's description and its table of lectures, with links to each lecture's page (named by
    its title), its questions and its exercise, and the README's run times."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    description = readme.split("\n## ", 1)[0].split("\n", 1)[1].strip()
    table = re.search(r"^## The lectures\n\n(\|.*?)\n\n", readme, re.MULTILINE | re.DOTALL).group(1)
    rows = ["| # | lecture | what it covers | questions, exercise | run time (lecture / quick scale) |",
            "|---|---|---|---|---|"]
    for row in table.splitlines()[2:]:
        number, notebook, run_time, covers = (cell.strip() for cell in row.strip().strip("|").split(" | ", 3))
        lecture = LECTURES / notebook.strip("`").removeprefix("lectures/")
        title = title_of(nbformat.read(lecture, as_version=4)).split(" — ", 1)[-1]
        links = ", ".join(f"[{name}]({target})" for name, target in companions(lecture))
        run_time = re.sub(r"\s*\(.*\)", "", run_time)  # the slowest cell is the README's detail
        rows.append(f"| {number} | [{title}](lectures/{lecture.stem}.ipynb) | {covers} | {links} | {run_time} |")
    return "\n".join([
        "# Going Deeper", "", description, "",
        f"The pages of this book are the lecture notebooks executed at the {scale} scale, with their figures; the "
        "experiments' panels appear as the figure they draw at their default values, and the notebooks make them "
        "interactive. To run them, train at the other scales and work the exercises, follow the README of the "
        "course's repository (`python3 course.py lab`).", "",
        "## The lectures", "", *rows, "",
        "Each lecture is followed by a page of its questions, with the answers folded, and by its exercise as "
        "students receive it, with the notebook to download.", "",
        "```{toctree}", ":caption: Lectures", ":hidden:", "", *(f"lectures/{path.stem}" for path in lectures), "```", "",
    ])


def companions(lecture: Path) -> list[tuple[str, str]]:
    """(name, page) of a lecture's questions and exercise, as links from the front page."""
    found = [("questions", f"questions/{lecture.stem}.md")] if _questions(lecture) is not None else []
    if (EXERCISES / lecture.name).exists():
        found.append(("exercise", f"exercises/{lecture.name}"))
    return found


def next_steps(lecture: Path) -> nbformat.NotebookNode | None:
    """The last cell of a lecture's page: links to its questions and exercise, which also follow it in the book."""
    pages = companions(lecture)
    if not pages:
        return None
    links = " and ".join(f"[its {name}](../{target})" for name, target in pages)
    entries = [f"../{target.rsplit('.', 1)[0]}" for _, target in pages]
    return nbformat.v4.new_markdown_cell("\n".join([
        f"**After this lecture:** {links}.", "", "```{toctree}", ":hidden:", "", *entries, "```"]))


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
    """The exercise as students receive it, with its notebook offered under the title."""
    notebook = nbformat.read(path, as_version=4)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    title, _, introduction = notebook.cells[0].source.partition("\n")
    offer = nbformat.v4.new_markdown_cell(
        f"*This page shows the exercise as you receive it. Work it in Jupyter: download "
        f"{{download}}`{path.name} <notebooks/{path.name}>` (or open `exercises/{path.name}` in the course's repository), "
        f"replace each `raise NotImplementedError(...)` and run the check below it.*")
    notebook.cells[0].source = title
    notebook.cells[1:1] = [offer, nbformat.v4.new_markdown_cell(introduction.strip())]
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
        page = for_book(execute(lecture, scale, force))
        page.cells += [cell for cell in [next_steps(lecture)] if cell is not None]
        nbformat.write(page, source / "lectures" / lecture.name)
        if _questions(lecture) is not None:
            (source / "questions" / f"{lecture.stem}.md").write_text(questions_page(lecture), encoding="utf-8")
    for exercise in sorted(EXERCISES.glob("*.ipynb")):
        nbformat.write(exercise_page(exercise), source / "exercises" / exercise.name)
        (source / "exercises" / "notebooks").mkdir(exist_ok=True)
        shutil.copy(exercise, source / "exercises" / "notebooks" / exercise.name)  # offered for download, not a page
    (source / "index.md").write_text(front_page(lectures, scale), encoding="utf-8")
    shutil.rmtree(output, ignore_errors=True)
    (output / "_static").mkdir(parents=True)
    mathjax = web_asset("mathjax", MATHJAX_CDN, output / "_static")
    sphinx = [sys.executable, "-m", "sphinx", "-b", "html", "-c", str(BOOK), "-d", str(BUILD / "book_doctrees"),
              "-W", "--keep-going", "-q",
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
    config.SlidesExporter.reveal_number = "c/t"
    config.SlidesExporter.reveal_width = "1280"  # 16:9, as projectors and screens are now
    config.SlidesExporter.reveal_height = "720"
    config.SlidesExporter.exclude_input_prompt = True  # no In [n]: column eating a slide's width
    config.SlidesExporter.exclude_output_prompt = True
    config.SlidesExporter.reveal_theme = "white"  # its fonts come with reveal.js ("simple" loads Google's)
    config.SlidesExporter.mathjax_url = f"{mathjax}/{MATHJAX_SCRIPT}"
    config.SlidesExporter.extra_template_basedirs = [str(BOOK)]
    config.SlidesExporter.template_name = "offline_reveal"
    exporter = SlidesExporter(config=config)
    written = []
    for lecture in lecture_paths(which):
        body, _ = exporter.from_notebook_node(for_slides(execute(lecture, scale, force)),
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
