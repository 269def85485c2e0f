"""What each lecture cell is on a page and on a slide: the tags and slideshow metadata the lectures carry.

A lecture mixes three kinds of cell, and the book and the slides treat them differently:

- **test-only** cells check what the text claims (``assert``s over measured numbers, a panel driven from
  code). They run in every build, so a claim that no longer holds still stops the book, but a reader
  does not need them: the book hides them, the slides leave them out. A code cell is test-only when

  * it asserts something and does nothing else a reader sees (no ``print``, no figure, no definition,
    no import, no bare expression at its end whose value Jupyter would show), or
  * its first line is a comment that says it checks (``# Checks the claims above ...``,
    ``# Headless check ...``, ``# Each claim of the text ...``) and it draws no figure;

- **figure** cells draw a figure (``plt.subplots``, ``plt.show()``, a ``plot_...`` helper, ``imshow``, outside the
  functions they define) or show an experiment panel (a last line naming ``..._panel``): each starts a slide of its own;
- everything else: prose and the code that the text walks through.

Slides follow the headings: ``#`` and ``##`` start a slide (a section), ``###`` a sub-slide, and a heading always
starts its cell (``--write`` splits a Markdown cell at the headings inside it). A Markdown
cell of long prose with no heading, display equation, list or table becomes the speaker's notes of the
slide it follows: the slide shows the equations, the code and the figures, the notes hold what the
speaker says about them.

``slideshow_metadata(cell)`` is the rule; ``python -m book.cells --write`` splits the cells and stores the rule in every lecture
(``metadata.tags`` and ``metadata.slideshow``, what RISE and nbconvert read), and a test keeps the stored
metadata equal to the rule.
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
LECTURES = ROOT / "lectures"

TEST_ONLY = "test-only"
CHECK_COMMENT = re.compile(r"#.*\b(check|checks|claim|claims|headless)\b", re.IGNORECASE)
PANEL_SHOWN = re.compile(r"^\w+_panel\s*$")
NOTES_WORDS = 90  # prose longer than this goes to the speaker's notes


def _calls(tree: ast.AST) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            function = node.func
            names.add(function.attr if isinstance(function, ast.Attribute) else getattr(function, "id", ""))
    return names


def _is_drawing(function: ast.expr) -> bool:
    """``plt.show`` / ``plt.subplots`` / ``plt.figure``, ``....imshow``, or a ``plot_...`` or ``show_...`` helper."""
    if isinstance(function, ast.Attribute):
        if isinstance(function.value, ast.Name) and function.value.id == "plt":
            return function.attr in ("show", "subplots", "figure")
        name = function.attr
    else:
        name = getattr(function, "id", "")
    return name == "imshow" or name.startswith(("plot_", "show_"))


def draws_figure(source: str) -> bool:
    """Whether a code cell draws a figure when it runs (a drawing call outside the functions it defines) or shows a
    panel (its last line names one: the panel draws at its defaults)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return False
    for statement in tree.body:
        if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue  # drawing code inside a definition runs when it is called, perhaps in another cell
        if any(isinstance(node, ast.Call) and _is_drawing(node.func) for node in ast.walk(statement)):
            return True
    last = tree.body[-1] if tree.body else None
    return isinstance(last, ast.Expr) and isinstance(last.value, ast.Name) and bool(PANEL_SHOWN.match(last.value.id))


def inner_headings(source: str) -> list[int]:
    """The lines of a Markdown cell, after its first, that are headings (outside fenced code)."""
    found, fenced = [], False
    for number, line in enumerate(source.splitlines()):
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
        elif number > 0 and not fenced and re.match(r"#{1,3} ", line):
            found.append(number)
    return found


def split_at_headings(notebook) -> bool:
    """Split every Markdown cell at its inner headings, so that each heading starts a cell (and a slide); return
    whether anything was split. The pieces keep the cell's id with a suffix: -2, -3, ..."""
    cells, changed = [], False
    for cell in notebook.cells:
        starts = inner_headings(cell.source) if cell.cell_type == "markdown" else []
        if not starts:
            cells.append(cell)
            continue
        changed = True
        lines = cell.source.splitlines()
        for piece, (begin, end) in enumerate(zip([0, *starts], [*starts, len(lines)]), start=1):
            text = "\n".join(lines[begin:end]).strip("\n")
            part = nbformat.v4.new_markdown_cell(text, metadata=dict(cell.metadata))
            part["id"] = cell.get("id") if piece == 1 else f"{cell.get('id', 'cell')}-{piece}"
            cells.append(part)
    notebook.cells = cells
    return changed


def is_test_only(source: str) -> bool:
    """Whether a code cell only checks (see the module's docstring)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return False
    if not any(isinstance(node, ast.Assert) for node in ast.walk(tree)) or draws_figure(source):
        return False
    first = source.lstrip().splitlines()[0]
    if CHECK_COMMENT.match(first):
        return True
    shows = {"print", "display", "show", "imshow", "savefig", "subplots", "figure"}
    defines = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Import, ast.ImportFrom)
    if any(isinstance(node, defines) for node in ast.walk(tree)) or _calls(tree) & shows:
        return False
    return not isinstance(tree.body[-1], ast.Expr)


def is_speaker_notes(source: str) -> bool:
    """Long prose with nothing a slide must show: no heading, display equation, list, table, image or HTML."""
    if len(source.split()) <= NOTES_WORDS or "$$" in source or "<" in source or "![" in source:
        return False
    return not any(re.match(r"\s*(#|[-*+] |\d+\. |\|)", line) for line in source.splitlines())


def slideshow_metadata(cell) -> tuple[str, list[str]]:
    """The cell's slide type (``slide``, ``subslide``, ``-``, ``notes`` or ``skip``) and its tags."""
    source = cell.source.strip()
    if cell.cell_type == "markdown":
        first = source.splitlines()[0] if source else ""
        if first.startswith(("# ", "## ")):
            return "slide", []
        if first.startswith("### "):
            return "subslide", []
        return ("notes" if is_speaker_notes(source) else "-"), []
    if cell.cell_type == "code":
        if is_test_only(source):
            return "skip", [TEST_ONLY]
        return ("subslide" if draws_figure(source) else "-"), []
    return "-", []


def stored_metadata(cell) -> tuple[str, list[str]]:
    """The slide type and the rule's tags as a lecture stores them."""
    tags = [tag for tag in cell.metadata.get("tags", []) if tag == TEST_ONLY]
    return cell.metadata.get("slideshow", {}).get("slide_type", ""), tags


def write_metadata(path: Path) -> bool:
    """Store the rule's metadata in one notebook; return whether anything changed."""
    notebook = nbformat.read(path, as_version=4)
    changed = split_at_headings(notebook)
    for cell in notebook.cells:
        slide_type, tags = slideshow_metadata(cell)
        if stored_metadata(cell) == (slide_type, tags):
            continue
        changed = True
        cell.metadata["slideshow"] = {"slide_type": slide_type}
        others = [tag for tag in cell.metadata.get("tags", []) if tag != TEST_ONLY]
        if others or tags:
            cell.metadata["tags"] = others + tags
        else:
            cell.metadata.pop("tags", None)
    if changed:
        nbformat.write(notebook, path)
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Store the slideshow metadata and test-only tags in the lectures.")
    parser.add_argument("--write", action="store_true", help="rewrite the lectures whose metadata differs from the rule")
    args = parser.parse_args(argv)
    stale = []
    for path in sorted(LECTURES.glob("*.ipynb")):
        if args.write:
            if write_metadata(path):
                print(f"updated {path.relative_to(ROOT)}")
        else:
            notebook = nbformat.read(path, as_version=4)
            if split_at_headings(notebook) or any(stored_metadata(cell) != slideshow_metadata(cell) for cell in notebook.cells):
                stale.append(path.name)
    if stale:
        print(f"slideshow metadata differs from the rule in {', '.join(stale)}: run python -m book.cells --write")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
