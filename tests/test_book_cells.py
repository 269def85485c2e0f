"""The rule that says what a lecture cell is on a page and on a slide (book/cells.py), and the lectures keeping it.

The book hides test-only cells and the slides leave them out; a figure starts a slide; long prose becomes the
speaker's notes. The lectures store the rule's verdicts as metadata (what RISE and nbconvert read), so a cell added
without them, or a check cell that starts printing a figure, is caught here.
"""

from pathlib import Path

import nbformat
import pytest

from book import cells
from book.cells import TEST_ONLY, draws_figure, is_speaker_notes, is_test_only, slideshow_metadata

ROOT = Path(__file__).resolve().parent.parent
LECTURES = sorted((ROOT / "lectures").glob("*.ipynb"))


@pytest.mark.parametrize("source", [
    "assert loss < 1.0, 'the loss should fall'",
    "final = history.loss[-1]\nassert final < 1.0",
    "for run in runs:\n    assert run['ok']",
    "# Checks the claims above at both scales.\nratio = a / b\nprint(f'{ratio:.2f}')\nassert ratio > 2",
    "# Headless check: driving a control runs the experiment.\nresult = panel.set(x=2)\nassert result",
])
def test_cells_that_only_check_are_test_only(source):
    assert is_test_only(source)


@pytest.mark.parametrize("source", [
    "x = torch.ones(3)",                                        # no check at all
    "y = f(x)\nprint(y)\nassert y > 0",                          # shows what it computed
    "y = f(x)\nassert y > 0\ny",                                # its last value is shown
    "def f(x):\n    assert x > 0\n    return x",                # defines what later cells use
    "import math\nassert math.pi > 3",
    "fig, ax = plt.subplots()\nax.plot(x)\nassert len(x) > 0",  # draws a figure
    "# Checks the claims: the curve.\nplot_curves(runs)\nassert runs",  # a check that draws is shown
    "assert (",                                                 # not Python: never hidden
])
def test_cells_a_reader_needs_are_not_test_only(source):
    assert not is_test_only(source)


def test_figures_and_panels_start_a_slide_and_long_prose_goes_to_the_notes():
    assert draws_figure("plot_history(history)") and draws_figure("fig, ax = plt.subplots()")
    assert draws_figure("panel = ExperimentPanel(f, x=[1, 2])\ntiming_panel")
    assert not draws_figure("# timing_panel\nx = 1")
    prose = " ".join(["word"] * (cells.NOTES_WORDS + 1))
    assert is_speaker_notes(prose) and not is_speaker_notes("word " * cells.NOTES_WORDS)
    for kept in (f"## Heading\n{prose}", f"{prose}\n$$x^2$$", f"{prose}\n- a list item", f"{prose}\n| a | table |",
                 f"{prose} <details>", f"{prose} ![figure](f.png)"):
        assert not is_speaker_notes(kept)
    markdown, code = nbformat.v4.new_markdown_cell, nbformat.v4.new_code_cell
    assert slideshow_metadata(markdown("# Lecture 01")) == ("slide", [])
    assert slideshow_metadata(markdown("## 2. Section")) == ("slide", [])
    assert slideshow_metadata(markdown("### Subsection")) == ("subslide", [])
    assert slideshow_metadata(markdown(prose)) == ("notes", [])
    assert slideshow_metadata(markdown("A short remark.")) == ("-", [])
    assert slideshow_metadata(code("assert True")) == ("skip", [TEST_ONLY])
    assert slideshow_metadata(code("plt.show()")) == ("subslide", [])
    assert slideshow_metadata(code("x = 1")) == ("-", [])


def test_every_lecture_stores_the_rules_metadata():
    assert cells.main([]) == 0


def test_the_lectures_have_sections_figures_notes_and_test_only_cells():
    """What the rule finds in the lectures as they are: every lecture has sections, every lecture but the appendix
    a test-only cell, and the slides of the course some speaker notes."""
    kinds = {}
    for path in LECTURES:
        notebook = nbformat.read(path, as_version=4)
        kinds[path.stem] = [cell.metadata["slideshow"]["slide_type"] for cell in notebook.cells]
        assert kinds[path.stem].count("slide") >= 4 and kinds[path.stem][0] == "slide", path.stem
        assert kinds[path.stem].count("subslide") >= 1, path.stem
        assert all(TEST_ONLY in cell.metadata.get("tags", []) for cell, kind in zip(notebook.cells, kinds[path.stem])
                   if kind == "skip")
    assert sum(kind.count("skip") for kind in kinds.values()) >= 15
    assert sum(kind.count("notes") for kind in kinds.values()) >= 10


def test_writing_the_metadata_is_idempotent_and_keeps_other_tags(tmp_path):
    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("## A section"),
        nbformat.v4.new_code_cell("assert 1 + 1 == 2", metadata={"tags": ["keep-me"]}),
        nbformat.v4.new_code_cell("x = 2", metadata={"tags": [TEST_ONLY]}),  # no longer a check: the tag goes
    ])
    path = tmp_path / "lecture.ipynb"
    nbformat.write(notebook, path)
    assert cells.write_metadata(path) is True
    written = nbformat.read(path, as_version=4).cells
    assert written[1].metadata["tags"] == ["keep-me", TEST_ONLY] and written[1].metadata["slideshow"]["slide_type"] == "skip"
    assert "tags" not in written[2].metadata and written[2].metadata["slideshow"]["slide_type"] == "-"
    assert cells.write_metadata(path) is False
