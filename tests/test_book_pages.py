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
    page = build.front_page(lectures, "lecture")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert page.startswith("# Going Deeper\n\nA Jupyter course on how deep networks are trained")
    assert readme.split("\n\n")[1] in page and "executed at the lecture scale" in page
    table = [line for line in page.splitlines() if line.startswith("|")]
    assert len(table) == 2 + len(lectures)  # header, rule, a row a notebook: no blank line breaks the table
    for lecture in lectures:
        title = build.title_of(nbformat.read(lecture, as_version=4)).split(" — ", 1)[1]
        assert f"[{title}](lectures/{lecture.stem}.ipynb)" in page and f"lectures/{lecture.stem}\n" in page
    assert "[questions](questions/05_residual.md), [exercise](exercises/05_residual.ipynb)" in page
    assert re.search(r"\| [\d.]+ (s|min) / \d+ s \|$", table[2])  # the README's run times are kept
    assert "exercises/" not in page.split("```{toctree}")[1]  # exercises follow their lectures, not the front page


def test_a_questions_page_holds_the_questions_with_the_answers_folded():
    page = build.questions_page(ROOT / "lectures" / "03_dropout.ipynb")
    assert page.startswith("# Questions: Lecture 03")
    assert "](../lectures/03_dropout.ipynb)" in page
    questions, answers = page.split("<details>", 1)
    assert "1. " in questions and "</details>" in answers and "Further reading" not in page
    assert build._questions(ROOT / "lectures" / "08_compression_appendix.ipynb") is None


def test_an_exercise_page_is_the_exercise_with_its_notebook_offered_under_its_title():
    path = ROOT / "exercises" / "01_batch_sgd.ipynb"
    page = build.exercise_page(path)
    original = nbformat.read(path, as_version=4)
    title, _, introduction = original.cells[0].source.partition("\n")
    assert [cell.source for cell in page.cells[:3]] == [title, page.cells[1].source, introduction.strip()]
    assert title.startswith("# Exercise 01")
    assert "{download}`01_batch_sgd.ipynb <notebooks/01_batch_sgd.ipynb>`" in page.cells[1].source
    assert [cell.source for cell in page.cells[3:]] == [cell.source for cell in original.cells[1:]]
    assert all(cell.outputs == [] for cell in page.cells if cell.cell_type == "code")


def test_a_lecture_leads_on_to_its_questions_and_exercise():
    assert build.companions(ROOT / "lectures" / "04_batchnorm.ipynb") == [
        ("questions", "questions/04_batchnorm.md"), ("exercise", "exercises/04_batchnorm.ipynb")]
    assert build.companions(ROOT / "lectures" / "02_optimizers_in_practice.ipynb") == [
        ("questions", "questions/02_optimizers_in_practice.md")]  # exercise 02 follows the first part
    assert build.companions(ROOT / "lectures" / "08_compression_appendix.ipynb") == []
    assert build.next_steps(ROOT / "lectures" / "08_compression_appendix.ipynb") is None
    cell = build.next_steps(ROOT / "lectures" / "04_batchnorm.ipynb")
    assert "[its questions](../questions/04_batchnorm.md) and [its exercise](../exercises/04_batchnorm.ipynb)" in cell.source
    assert "../questions/04_batchnorm\n../exercises/04_batchnorm\n```" in cell.source


PNG = {"output_type": "display_data", "metadata": {}, "data": {"image/png": "iVBORw0KGgo=", "text/plain": "<Figure>"}}
WIDGET = {"output_type": "display_data", "metadata": {},
          "data": {build.WIDGET_MIME: {"model_id": "abc", "version_major": 2, "version_minor": 0}, "text/plain": "bar"}}
PRINTED = {"output_type": "stream", "name": "stdout", "text": "ratio 3.1\n"}


def executed_example():
    long_code = "\n".join(f"x{i} = {i}" for i in range(build.SLIDE_CODE_LINES + 1))
    output = nbformat.from_dict
    return nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("## A section"),
        nbformat.v4.new_code_cell("plot_curves(runs)\nplt.show()", outputs=[output(PNG), output(WIDGET)]),
        nbformat.v4.new_code_cell("assert ok", metadata={"tags": [TEST_ONLY]}),
        nbformat.v4.new_code_cell("print(ratio)\nassert ratio > 2", metadata={"tags": [TEST_ONLY]}, outputs=[output(PRINTED)]),
        nbformat.v4.new_code_cell("y = x @ w.T\nassert y.shape == (5, 3), 'shape'\nprint(y.sum())", outputs=[output(PRINTED)]),
        nbformat.v4.new_code_cell(long_code),
        nbformat.v4.new_code_cell(long_code + "\nprint(x0)", outputs=[output(PRINTED)]),
    ], metadata={"widgets": {"state": {}}})


def test_the_book_hides_check_code_keeps_what_checks_print_and_folds_figure_code():
    notebook = executed_example()
    page = build.for_book(notebook)
    assert [cell.source.splitlines()[0] for cell in page.cells] == ["## A section", "plot_curves(runs)", "print(ratio)",
                                                                    "y = x @ w.T", "x0 = 0", "x0 = 0"]
    assert page.cells[1].metadata["tags"] == ["hide-input"] and page.cells[2].metadata["tags"] == [TEST_ONLY, "remove-input"]
    assert [list(output["data"]) for output in page.cells[1].outputs] == [["image/png", "text/plain"]]
    assert "widgets" not in page.metadata and len(notebook.cells) == 7 and "tags" not in notebook.cells[1].metadata
    assert build.figures(notebook) == build.figures(page) == 1


def test_slides_leave_out_checks_asserts_and_long_code_but_keep_figures_and_what_was_printed():
    slides = build.for_slides(executed_example())
    assert [cell.source for cell in slides.cells[1:3]] == ["plot_curves(runs)\nplt.show()", "y = x @ w.T\nprint(y.sum())"]
    assert len(slides.cells) == 4  # the check cells and the long code that printed nothing are gone
    assert slides.cells[1].metadata["transient"] == {"remove_source": True}  # the figure, not its code
    assert "transient" not in slides.cells[2].metadata
    assert slides.cells[3].metadata["transient"] == {"remove_source": True} and slides.cells[3].outputs  # printed only
    assert build.without_asserts("for a in b:\n    assert a\nassert (\n    c\n)\nd = 1") == "d = 1"
    assert build.without_asserts("for a in b:\n    c = a\n    assert c\n    if c:\n        assert a") == "for a in b:\n    c = a"
    assert build.without_asserts("def f(a):\n    assert a") == "def f(a):\n    assert a"  # a body of checks stays
    assert build.without_asserts("assert (") == "assert ("  # not Python: shown as it is


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
