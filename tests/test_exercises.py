"""The exercise notebooks are generated from the solutions, leak nothing, and stop at their first gap."""

from pathlib import Path

import nbformat
import pytest
from jupyter_client import KernelManager
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from nbval.kernel import CURRENT_ENV_KERNEL_NAME, NbvalKernelspecManager

from course_lib import exercises

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = sorted((ROOT / "solutions").glob("*.ipynb"))


def test_every_solution_has_an_exercise_and_a_lecture():
    assert SOLUTIONS, "there are no solution notebooks"
    names = {p.name for p in SOLUTIONS}
    assert names == {p.name for p in (ROOT / "exercises").glob("*.ipynb")}
    assert names <= {p.name for p in (ROOT / "lectures").glob("*.ipynb")}


def test_committed_exercises_are_exactly_what_the_generator_writes():
    stale = exercises.write_exercises(ROOT / "solutions", ROOT / "exercises", check=True)
    assert stale == [], f"run course-make-exercises: {[p.name for p in stale]} are out of date"


@pytest.mark.parametrize("solution", SOLUTIONS, ids=lambda p: p.name)
def test_exercises_contain_no_answer_and_no_hidden_test(solution):
    exercise_text = (ROOT / "exercises" / solution.name).read_text(encoding="utf-8")
    for marker in (exercises.BEGIN_SOLUTION, exercises.END_SOLUTION, exercises.BEGIN_HIDDEN, exercises.END_HIDDEN):
        assert marker not in exercise_text
    exercise = nbformat.reads(exercise_text, as_version=4)
    exercise_sources = "\n".join(cell.source for cell in exercise.cells)
    notebook = nbformat.read(solution, as_version=4)
    secret_lines, public_text = set(), []
    for cell in notebook.cells:
        for block in exercises.solution_texts(cell.source) + exercises.hidden_test_texts(cell.source):
            secret_lines.update(line.strip() for line in block.splitlines() if len(line.strip()) > 8)
        public_text.append(exercises.remove_hidden_tests(exercises.clear_solutions(cell.source, cell.cell_type == "markdown")))
    public_text = "\n".join(public_text)
    assert secret_lines, "the solution should contain answers and hidden tests"
    # A line may legitimately be both secret and public (a visible test repeated in a hidden one, code
    # quoted in the instructions); every other secret line must be absent from the exercise, hints included.
    leaked = [line for line in secret_lines if line in exercise_sources and line not in public_text]
    assert leaked == [], f"answer or hidden-test lines leaked into the exercise: {leaked}"
    parts = exercises.graded_parts(notebook)
    assert [(p.part_id, p.points) for p in parts] == [(p.part_id, p.points) for p in exercises.graded_parts(exercise)]


def execute_until_error(path: Path) -> tuple[int | None, str | None, str | None]:
    """Run a notebook in this environment's kernel; return (index of the failing cell, error name, message)."""
    notebook = nbformat.read(path, as_version=4)
    manager = KernelManager(kernel_name=CURRENT_ENV_KERNEL_NAME, kernel_spec_manager=NbvalKernelspecManager())
    client = NotebookClient(notebook, km=manager, timeout=300, resources={"metadata": {"path": str(path.parent)}})
    try:
        client.execute()
    except CellExecutionError as error:
        for index, cell in enumerate(notebook.cells):
            if any(output.get("output_type") == "error" for output in cell.get("outputs", [])):
                return index, error.ename, error.evalue
        return None, error.ename, error.evalue
    return None, None, None


@pytest.mark.parametrize("solution", SOLUTIONS, ids=lambda p: p.name)
def test_each_exercise_runs_up_to_its_first_gap(solution):
    exercise_path = ROOT / "exercises" / solution.name
    exercise = nbformat.read(exercise_path, as_version=4)
    gaps = [i for i, cell in enumerate(exercise.cells) if cell.cell_type == "code" and "raise NotImplementedError(" in cell.source]
    assert gaps, "an exercise without a gap"
    first_hint = exercises.first_hint(nbformat.read(solution, as_version=4).cells[gaps[0]].source)
    failed_cell, error_name, message = execute_until_error(exercise_path)
    # Everything before the first gap runs; the error comes from the first gap's stub, in the gap's
    # cell or in the check that calls it, before the next gap.
    next_gap = gaps[1] if len(gaps) > 1 else len(exercise.cells)
    assert (error_name, message) == ("NotImplementedError", first_hint)
    assert failed_cell is not None and gaps[0] <= failed_cell < next_gap


# --- the generator itself, on small hand-written cells ---------------------------------------------

SOLUTION_CELL = """def double(x):
    # Hint: times two
    ### BEGIN SOLUTION
    return 2 * x
    ### END SOLUTION"""


def test_a_solution_region_becomes_an_indented_stub_with_the_hint():
    stub = exercises.clear_solutions(SOLUTION_CELL)
    assert stub == "def double(x):\n    # Hint: times two\n    # YOUR CODE HERE\n    raise NotImplementedError('times two')"
    two = "a = 1\n# Hint: first\n### BEGIN SOLUTION\nb = 2\n### END SOLUTION\n### BEGIN SOLUTION\nc = 3\n### END SOLUTION"
    assert exercises.clear_solutions(two).splitlines()[3:] == [
        "raise NotImplementedError('first')", "# YOUR CODE HERE", f"raise NotImplementedError({exercises.DEFAULT_HINT!r})"]
    assert exercises.first_hint(SOLUTION_CELL) == "times two" and exercises.first_hint("x = 1") == exercises.DEFAULT_HINT
    assert exercises.clear_solutions("### BEGIN SOLUTION\nThe answer is 42.\n### END SOLUTION", markdown=True) == "YOUR ANSWER HERE"
    assert exercises.clear_solutions("x = 1\n") == "x = 1\n"  # no region: untouched, newline kept


def test_hidden_tests_are_removed_and_visible_ones_kept():
    cell = "assert f(1) == 2\n### BEGIN HIDDEN TESTS\nassert f(5) == 10\n### END HIDDEN TESTS\nprint('done')"
    assert exercises.remove_hidden_tests(cell) == "assert f(1) == 2\nprint('done')"
    assert exercises.hidden_test_texts(cell) == ["assert f(5) == 10"]


@pytest.mark.parametrize("source, message", [
    ("### BEGIN SOLUTION\nx = 1", "never closed"),
    ("x = 1\n### END SOLUTION", "without a"),
    ("### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION", "inside another region"),
])
def test_unbalanced_markers_are_errors(source, message):
    with pytest.raises(ValueError, match=message):
        exercises.clear_solutions(source, where="demo cell 3")


def graded_notebook(*cells):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source, metadata=meta) for source, meta in cells]
    return nb


def test_make_exercise_keeps_metadata_clears_outputs_and_leaves_the_solution_alone(tmp_path):
    answer_meta = {"nbgrader": {"solution": True, "grade_id": "double-answer"}}
    test_meta = {"nbgrader": {"grade": True, "grade_id": "double", "points": 2}}
    solution = graded_notebook((SOLUTION_CELL, answer_meta),
                               ("assert double(2) == 4\n### BEGIN HIDDEN TESTS\nassert double(-1) == -2\n### END HIDDEN TESTS", test_meta))
    solution.cells[0].outputs = [nbformat.v4.new_output("stream", text="old output")]
    solution.cells[0].execution_count = 3
    original = nbformat.writes(solution)
    exercise = exercises.make_exercise(solution)
    assert nbformat.writes(solution) == original
    assert "raise NotImplementedError('times two')" in exercise.cells[0].source
    assert exercise.cells[0].outputs == [] and exercise.cells[0].execution_count is None
    assert exercise.cells[1].source == "assert double(2) == 4"
    # what nbgrader's release adds: the cell type, a checksum (after the hidden tests are gone), locks
    assert exercise.cells[1].metadata["nbgrader"] == {**test_meta["nbgrader"], "cell_type": "code",
                                                     "checksum": exercises.nbgrader_checksum(exercise.cells[1])}
    assert exercise.cells[1].metadata["deletable"] is False and exercise.cells[1].metadata["editable"] is False
    assert exercise.cells[0].metadata["deletable"] is False and "editable" not in exercise.cells[0].metadata
    assert exercises.graded_parts(exercise) == [exercises.GradedPart("double", 2.0, 1)]


@pytest.mark.parametrize("meta, message", [
    ({"nbgrader": {"grade": True, "points": 1}}, "unique grade_id"),
    ({"nbgrader": {"grade": True, "grade_id": "p", "points": 0}}, "points must be a positive number"),
])
def test_graded_parts_need_an_id_and_points(meta, message):
    with pytest.raises(ValueError, match=message):
        exercises.graded_parts(graded_notebook(("assert True", meta)))


def test_the_command_regenerates_checks_and_removes_stale_exercises(tmp_path, capsys):
    solutions, target = tmp_path / "solutions", tmp_path / "exercises"
    solutions.mkdir()
    nb = graded_notebook((SOLUTION_CELL, {"nbgrader": {"solution": True, "grade_id": "a"}}))
    nbformat.write(nb, solutions / "01_demo.ipynb")
    target.mkdir()
    (target / "99_stale.ipynb").write_text("{}")
    args = ["--solutions", str(solutions), "--exercises", str(target)]
    assert exercises.main(args + ["--check"]) == 1
    assert exercises.main(args) == 0
    assert sorted(p.name for p in target.iterdir()) == ["01_demo.ipynb"]
    assert exercises.main(args + ["--check"]) == 0
    assert "up to date" in capsys.readouterr().out
    (solutions / "01_demo.ipynb").write_text(nbformat.writes(graded_notebook(("### BEGIN SOLUTION", {}))))
    assert exercises.main(args) == 2


def test_the_checksum_is_nbgraders():
    nbgrader_utils = pytest.importorskip("nbgrader.utils", reason="nbgrader is not installed")
    for source, meta in [("assert f(1) == 2", {"grade": True, "grade_id": "p", "points": 2, "solution": False}),
                         ("# YOUR CODE HERE\nraise NotImplementedError()", {"grade": False, "grade_id": "a",
                                                                             "solution": True}),
                         ("x = 1", {"grade": False, "grade_id": "r", "solution": False, "locked": True})]:
        cell = nbformat.v4.new_code_cell(source, metadata={"nbgrader": meta})
        assert exercises.nbgrader_checksum(cell) == nbgrader_utils.compute_checksum(cell)
    text = nbformat.v4.new_markdown_cell("YOUR ANSWER HERE", metadata={"nbgrader": {
        "grade": True, "solution": True, "grade_id": "w", "points": 1.5}})
    assert exercises.nbgrader_checksum(text) == nbgrader_utils.compute_checksum(text)


def hidden(code: str, visible: str = "assert True, 'a visible check'") -> str:
    """A check cell: a visible assert, then ``code`` as its hidden tests."""
    return f"{visible}\n### BEGIN HIDDEN TESTS\n{code}\n### END HIDDEN TESTS"


@pytest.mark.parametrize("code, line", [
    ("def twin(x):\n    return x\nexpect('k', f(x), reference=twin(x), message='m')", 3),
    ("class Twin:\n    pass", 3),
    ("if True:\n    def twin(x):\n        return x", 4),
    ("twin = lambda x: x", 3),
    ("cases = {'a': (lambda t: t, lambda t: t.sum())}", 3),
    ("for f in [lambda t: t, lambda t: 2 * t]:\n    expect('k', g(f), message='m')", 3),
    ("y = g(x, h=lambda t: t)", 3),
])
def test_rule_a_refuses_a_function_bound_as_a_global(code, line):
    problems = exercises.hidden_test_problems(hidden(code), "01_x.ipynb, part 'p'")
    assert len(problems) == 1 and "rule a" in problems[0] and f"part 'p', line {line}:" in problems[0]
    assert code.splitlines()[line - 3].strip() in problems[0], "the offending line is quoted"


def test_rule_a_accepts_data_globals_imports_and_lambdas_passed_as_arguments():
    code = ("from course_lib.grading.evidence import expect, expect_raises\n"
            "generator = torch.Generator().manual_seed(1)\nx = torch.randn(3, generator=generator)\n"
            "for bad in (-2, 2.5):\n    expect_raises(f'b={bad}', ValueError, lambda: f(bad), mentions=bad, message='m')\n"
            "expect('k', g(lambda t: t.sum(), x), reference=[p for p in [(lambda t: t)(x)]], message='to 1e-6')")
    assert exercises.hidden_test_problems(hidden(code), "w") == []
    assert exercises.hidden_test_problems("def helper():\n    pass", "w") == [], "visible code is the student's"


@pytest.mark.parametrize("message", [
    "'the solution measures 0.54, 0.75, 0.76, 0.29, 0.10, so η = 0.3'",
    "'at least 80 % of the digits (the solution: 89 %)'",
    "f'accuracy for {name}: about .5'",
    "'gaps ' + 'around 0.44'",
    "'the solution finds 16'",
    "'at least 60% of the digits'",
])
def test_rule_b_refuses_a_message_quoting_a_measured_value(message):
    problems = exercises.hidden_test_problems(hidden(f"expect('k', v, rtol=0, message={message})"), "w")
    assert len(problems) == 1 and "rule b" in problems[0] and "line 3:" in problems[0]


@pytest.mark.parametrize("message", [
    "'numerical_gradient is wrong (float64, compared with autograd to 1e-6)'",
    "f'linear_backward is wrong for B={batch}, D_in={d_in}'",
    "'B=17 and lr=0.05, momentum=0.9 must match torch.optim.SGD'",
    "'each to within three points'",
])
def test_rule_b_accepts_tolerances_and_input_descriptions(message):
    assert exercises.hidden_test_problems(hidden(f"expect('k', v, message={message})"), "w") == []


@pytest.mark.parametrize("labels, refused", [("mnist.heldout_y", True), ("heldout_y", True), ("data.test_y", True),
                                             ("torch.tensor([1, 2])", False)])
def test_rule_c_refuses_accuracy_on_public_labels(labels, refused):
    code = f"expect_accuracy('k', p, labels={labels}, at_least=0.5, message='as the text requires')"
    problems = exercises.hidden_test_problems(hidden(code), "w")
    assert (problems != []) == refused and all("rule c" in p and "expect_trained" in p for p in problems)


@pytest.mark.parametrize("solution", SOLUTIONS, ids=lambda p: p.name)
def test_committed_solutions_pass_the_rules_the_build_enforces(solution):
    assert exercises.notebook_problems(nbformat.read(solution, as_version=4), solution.name, exercises.BUILD_RULES) == []


def test_the_build_enforces_every_rule():
    assert sorted(exercises.BUILD_RULES) == ["a", "b", "c"]


def build_with_a_changed_check(tmp_path, capsys, name: str, part: str, change) -> tuple[int, str, Path]:
    """Build the exercises from solution ``name`` alone, its check cell ``part`` changed by ``change``: the exit
    status, what the build printed on stderr, and the exercises folder."""
    solutions, out = tmp_path / "solutions", tmp_path / "exercises"
    solutions.mkdir()
    notebook = nbformat.read(ROOT / "solutions" / f"{name}.ipynb", as_version=4)
    cell = next(c for c in notebook.cells if c.metadata.get("nbgrader", {}).get("grade_id") == part)
    cell.source = change(cell.source)
    nbformat.write(notebook, solutions / f"{name}.ipynb")
    code = exercises.main(["--solutions", str(solutions), "--exercises", str(out)])
    return code, capsys.readouterr().err, out


def test_the_build_refuses_a_solution_that_breaks_a_rule(tmp_path, capsys):
    code, error, _ = build_with_a_changed_check(tmp_path, capsys, "01_batch_sgd", "scaling-rule", lambda source: source.replace(
        "within three points of the numbers", "within three points of 0.754 and the other numbers"))
    assert code == 2
    assert "01_batch_sgd.ipynb, part 'scaling-rule'" in error and "rule b" in error and "message=" in error


def test_the_build_refuses_a_helper_bound_as_a_global(tmp_path, capsys):
    code, error, out = build_with_a_changed_check(tmp_path, capsys, "02_momentum_adam", "stability", lambda source: source.replace(
        "### END HIDDEN TESTS", "twin = lambda lr, gamma: stays_bounded(lr, gamma)\n### END HIDDEN TESTS"))
    assert code == 2
    assert "02_momentum_adam.ipynb, part 'stability'" in error and "rule a" in error and "twin = lambda" in error
    assert not out.exists() or not list(out.iterdir())
