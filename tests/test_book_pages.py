"""The pieces of the book's build (book/build.py) that need no Sphinx: which lectures a command means, the front
page, the questions and exercise pages, what a reader's copy of a lecture leaves out, and a lecture that fails.

The whole build, from a fresh checkout, is tests/test_book.py's (complete suite)."""

import re
from pathlib import Path

import nbformat
import pytest

from book import build
from book.cells import TEST_ONLY

ROOT = Path(__file__).resolve().parent.parent


def test_a_lecture_is_chosen_by_number_name_or_all_and_anything_else_is_refused():
    assert [path.stem for path in build.lecture_paths("02")] == ["02_momentum_adam", "02_optimizers_in_practice"]
    assert [path.stem for path in build.lecture_paths("8")] == ["08_compression", "08_compression_appendix"]
    assert [path.stem for path in build.lecture_paths("08_compression_appendix")] == ["08_compression_appendix"]
    assert len(build.lecture_paths("all")) == len(list((ROOT / "lectures").glob("*.ipynb")))
    for wrong in ("10", "batchnorm", ""):
        with pytest.raises(SystemExit, match="lecture .*: give 'all', a lecture number"):
            build.lecture_paths(wrong)
    with pytest.raises(SystemExit, match="--scale 'paper': use one of quick, lecture"):
        build.execute(ROOT / "lectures" / "01_batch_sgd.ipynb", scale="paper")


def test_the_front_page_is_the_readmes_description_and_table_with_links():
    lectures = build.lecture_paths()
    page = build.front_page(lectures)
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert page.startswith("# Going Deeper\n\nA Jupyter course on how deep networks are trained")
    assert readme.split("\n\n")[1] in page
    table = [line for line in page.splitlines() if line.startswith("|")]
    assert len(table) == 2 + len(lectures)  # header, rule, a row a notebook: no blank line breaks the table
    for lecture in lectures:
        title = build.title_of(nbformat.read(lecture, as_version=4)).split(" — ", 1)[1]
        assert f"[{title}](lectures/{lecture.stem}.ipynb)" in page and f"lectures/{lecture.stem}\n" in page
    assert "[questions](questions/05_residual.md), [exercise](exercises/05_residual.ipynb)" in page
    assert re.search(r"\| [\d.]+ (s|min) / \d+ s \|$", table[2])  # the README's run times are kept
    for exercise in (ROOT / "exercises").glob("*.ipynb"):
        assert f"exercises/{exercise.stem}\n" in page


def test_a_questions_page_holds_the_questions_with_the_answers_folded():
    page = build.questions_page(ROOT / "lectures" / "03_dropout.ipynb")
    assert page.startswith("# Questions: Lecture 03")
    assert "](../lectures/03_dropout.ipynb)" in page
    questions, answers = page.split("<details>", 1)
    assert "1. " in questions and "</details>" in answers and "Further reading" not in page
    assert build._questions(ROOT / "lectures" / "08_compression_appendix.ipynb") is None


def test_an_exercise_page_is_the_exercise_with_its_notebook_offered():
    path = ROOT / "exercises" / "01_batch_sgd.ipynb"
    page = build.exercise_page(path)
    original = nbformat.read(path, as_version=4)
    assert len(page.cells) == len(original.cells) + 1
    assert "{download}`01_batch_sgd.ipynb <notebooks/01_batch_sgd.ipynb>`" in page.cells[1].source
    assert [cell.source for cell in page.cells[:1] + page.cells[2:]] == [cell.source for cell in original.cells]
    assert all(cell.outputs == [] for cell in page.cells if cell.cell_type == "code")


def test_a_readers_copy_drops_test_only_cells_and_widget_outputs_but_keeps_figures():
    png = {"output_type": "display_data", "metadata": {}, "data": {"image/png": "iVBORw0KGgo=", "text/plain": "<Figure>"}}
    widget = {"output_type": "display_data", "metadata": {},
              "data": {build.WIDGET_MIME: {"model_id": "abc", "version_major": 2, "version_minor": 0}, "text/plain": "bar"}}
    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("plot_curves(runs)", outputs=[nbformat.from_dict(png), nbformat.from_dict(widget)]),
        nbformat.v4.new_code_cell("assert ok", metadata={"tags": [TEST_ONLY]}),
    ], metadata={"widgets": {"state": {}}})
    copy = build.for_readers(notebook)
    assert [cell.source for cell in copy.cells] == ["plot_curves(runs)"]
    assert [list(output["data"]) for output in copy.cells[0].outputs] == [["image/png", "text/plain"]]
    assert "widgets" not in copy.metadata and len(notebook.cells) == 2  # the original is untouched
    assert build.figures(notebook) == build.figures(copy) == 1


def test_a_lecture_that_raises_stops_the_build_naming_the_lecture_and_the_cell(tmp_path, monkeypatch):
    monkeypatch.setattr(build, "BUILD", tmp_path / "build")
    lecture = tmp_path / "99_broken.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# Lecture 99"),
        nbformat.v4.new_code_cell("import os\nscale = os.environ['COURSE_SCALE'], os.environ['COURSE_STATIC_PANELS']"),
        nbformat.v4.new_code_cell("assert scale == ('quick', '1')\nraise ValueError('the data are gone')"),
    ]), lecture)
    with pytest.raises(build.BuildError, match=r"99_broken.ipynb, cell 2: ValueError: the data are gone"):
        build.execute(lecture, "quick")
    assert not (tmp_path / "build" / "executed" / "quick" / "99_broken.ipynb").exists()
