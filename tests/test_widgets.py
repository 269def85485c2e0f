import ipywidgets
import matplotlib

matplotlib.use("Agg")

import pytest

from course_lib.widgets import ExperimentPanel, log_slider


def square_experiment(x=3, scale=1.0, mode="plain"):
    value = scale * x * x
    return {"value": -value if mode == "negated" else value}


def make_panel():
    return ExperimentPanel(square_experiment, x=[1, 2, 3, 4], scale=log_slider(0.01, 100.0), mode=["plain", "negated"])


def test_controls_start_at_the_function_defaults():
    panel = make_panel()
    assert panel.values() == {"x": 3, "scale": pytest.approx(1.0), "mode": "plain"}
    assert isinstance(panel.controls["x"], ipywidgets.SelectionSlider)
    assert isinstance(panel.controls["mode"], ipywidgets.Dropdown)
    assert panel.result is None and panel.runs == 0


def test_headless_display_runs_the_defaults_once():
    panel = make_panel()
    panel._ipython_display_()
    assert panel.runs == 1 and panel.result == {"value": pytest.approx(9.0)}


def test_moving_a_control_reruns_the_experiment():
    panel = make_panel()
    panel.controls["x"].value = 2
    assert panel.result["value"] == pytest.approx(4.0) and panel.runs == 1


def test_set_changes_several_controls_with_one_run():
    panel = make_panel()
    result = panel.set(x=4, scale=10.0, mode="negated")
    assert result == {"value": pytest.approx(-160.0)} and panel.runs == 1
    with pytest.raises(ValueError, match="no control named"):
        panel.set(depth=3)
    with pytest.raises(Exception):
        panel.set(x=5)  # not one of the slider's values


def fragile(x=1):
    if x == 2:
        raise RuntimeError("boom")
    return x


def test_a_failing_run_from_a_slider_is_kept_not_lost():
    panel = ExperimentPanel(fragile, x=(0, 3))
    assert isinstance(panel.controls["x"], ipywidgets.IntSlider)
    panel.controls["x"].value = 2
    assert "RuntimeError: boom" in panel.error and panel.result is None
    panel.controls["x"].value = 3
    assert panel.error is None and panel.result == 3


def test_a_failing_run_raises_and_never_returns_the_previous_result():
    panel = ExperimentPanel(fragile, x=(0, 3))
    assert panel.set(x=1) == 1
    with pytest.raises(RuntimeError, match="boom"):
        panel.set(x=2)
    assert panel.result is None and "RuntimeError: boom" in panel.error and panel.runs == 1
    assert panel.set(x=3) == 3 and panel.error is None


# In a kernel, ipywidgets' Output swallows an exception raised inside ``with output:`` (it shows the
# traceback in the widget instead): the panel must raise all the same, in the kernel and under nbval.
KERNEL_CELLS = [
    "from course_lib.widgets import ExperimentPanel\n"
    "def fragile(x=1):\n"
    "    if x == 2:\n"
    "        raise RuntimeError('boom')\n"
    "    return {'x': x}\n"
    "panel = ExperimentPanel(fragile, x=(0, 3))\n"
    "panel",
    "first = panel.set(x=1)\nassert first == {'x': 1}",
    "try:\n"
    "    stale = panel.set(x=2)\n"
    "except RuntimeError as error:\n"
    "    outcome = ('raised', str(error), panel.result, 'boom' in panel.error)\n"
    "else:\n"
    "    outcome = ('returned', stale)\n"
    "print(repr(outcome))",
    "panel.set(x=2)",
]


def kernel_notebook(path):
    import nbformat

    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(source) for source in KERNEL_CELLS]
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, path)
    return path


@pytest.mark.slow
def test_in_a_kernel_a_failing_experiment_raises_from_set(tmp_path):
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(kernel_notebook(tmp_path / "panel.ipynb"), as_version=4)
    NotebookClient(notebook, timeout=120, kernel_name="python3", allow_errors=True).execute()
    printed = "".join(output.get("text", "") for output in notebook.cells[2].outputs)
    assert printed.strip() == "('raised', 'boom', None, True)"
    errors = [output for output in notebook.cells[3].outputs if output.output_type == "error"]
    assert [error.ename for error in errors] == ["RuntimeError"]


@pytest.mark.slow
def test_nbval_fails_the_cell_whose_panel_experiment_raises(tmp_path):
    import subprocess
    import sys

    kernel_notebook(tmp_path / "panel.ipynb")
    run = subprocess.run([sys.executable, "-m", "pytest", "--nbval-lax", "--nbval-current-env", "-p", "no:cacheprovider",
                          "-p", "no:xdist", "-q", "-rf", "panel.ipynb"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "1 failed, 3 passed" in run.stdout and "Cell 3" in run.stdout and "boom" in run.stdout, run.stdout


def test_bad_panels_are_rejected_with_the_argument_named():
    with pytest.raises(ValueError, match="no keyword argument 'depth'"):
        ExperimentPanel(square_experiment, depth=[1, 2])
    with pytest.raises(ValueError, match="default x=3"):
        ExperimentPanel(square_experiment, x=[1, 2])
    with pytest.raises(ValueError, match="default x=3 .* outside"):
        ExperimentPanel(square_experiment, x=(5, 10))
    with pytest.raises(ValueError, match="control 'x'"):
        ExperimentPanel(square_experiment, x="big")
    with pytest.raises(ValueError, match="0 < low < high"):
        log_slider(1.0, 0.1)


def test_the_controls_wrap_onto_several_rows_instead_of_shrinking():
    panel = make_panel()
    row = panel.widget.children[0]
    assert list(row.children) == list(panel.controls.values())
    assert row.layout.flex_flow == "row wrap"  # the browser test checks that a slider keeps a usable width


def test_sweep_moves_every_control_to_each_end_it_is_not_at():
    from course_lib.widgets import control_ends, sweep_panels

    panel = make_panel()  # x in [1, 2, 3, 4] at 3, scale on a log slider at 1, mode plain or negated
    assert control_ends(panel.controls["x"]) == [1, 4] and control_ends(panel.controls["mode"]) == ["plain", "negated"]
    assert control_ends(panel.controls["scale"]) == [pytest.approx(0.01), pytest.approx(100.0)]
    logged = []
    moves = sweep_panels({"panel": panel, "_hidden": make_panel(), "other": 3}, log=logged.append)
    assert [(m["control"], m["value"]) for m in moves] == [("x", "1"), ("x", "4"), ("scale", repr(panel.controls["scale"].base ** -2)),
                                                          ("scale", repr(panel.controls["scale"].base ** 2)), ("mode", "'negated'")]
    assert logged == moves and all(m["changed"] for m in moves) and panel.runs == 5
    assert panel.result == {"value": pytest.approx(-1600.0)}  # x = 4, scale = 100, negated: where the last moves left it


def test_sweep_reports_a_move_that_changes_nothing_and_names_a_failing_one():
    from course_lib.widgets import sweep_panels

    def ignores_scale(x=1, scale=1.0):
        return {"x": x}

    moves = sweep_panels({"panel": ExperimentPanel(ignores_scale, x=[1, 2], scale=(0.5, 2.0))})
    assert [(m["control"], m["changed"]) for m in moves] == [("x", True), ("scale", False), ("scale", False)]
    panel = ExperimentPanel(fragile, x=(0, 2))
    with pytest.raises(RuntimeError, match="boom") as raised:
        sweep_panels({"fragile_panel": panel})
    if hasattr(raised.value, "__notes__"):
        assert "fragile_panel's control x to 2" in raised.value.__notes__[0]


def test_same_result_compares_tensors_and_nested_values_by_value():
    import torch

    from course_lib.widgets import same_result

    assert same_result({"a": [torch.ones(2), 1.0]}, {"a": [torch.ones(2), 1.0]})
    assert not same_result({"a": [torch.ones(2), 1.0]}, {"a": [torch.zeros(2), 1.0]})
    assert not same_result(torch.ones(2), torch.ones(3)) and not same_result([1], (1,)) and not same_result({"a": 1}, {"b": 1})


def test_a_static_panel_draws_its_figure_at_the_defaults_and_names_its_controls(monkeypatch):
    """COURSE_STATIC_PANELS=1 (the book): no controls are displayed, the defaults run once and a sentence says which
    controls the notebook offers and at which values the figure was drawn."""
    import course_lib.widgets as widgets_module

    shown = []
    monkeypatch.setattr(widgets_module, "display", shown.append)
    monkeypatch.setenv("COURSE_STATIC_PANELS", "1")
    panel = make_panel()
    panel._ipython_display_()
    assert panel.runs == 1 and panel.result == {"value": pytest.approx(9.0)}
    assert len(shown) == 1 and not isinstance(shown[0], ipywidgets.Widget)
    sentence = shown[0].data
    assert "controls for x, scale and mode make the figure below interactive" in sentence
    assert "(x = 3, scale = 1 and mode = plain)" in sentence
    one = ExperimentPanel(square_experiment, x=[1, 2, 3])
    shown.clear()
    one._ipython_display_()
    assert "controls for x make the figure below" in shown[0].data and "(x = 3)" in shown[0].data
    monkeypatch.setenv("COURSE_STATIC_PANELS", "0")
    shown.clear()
    panel = make_panel()
    panel._ipython_display_()
    assert shown == [panel.widget]


def test_a_static_panel_raises_what_its_experiment_raises(monkeypatch):
    def broken(x=1):
        raise RuntimeError("no figure")

    monkeypatch.setenv("COURSE_STATIC_PANELS", "1")
    panel = ExperimentPanel(broken, x=[1, 2])
    monkeypatch.setattr("course_lib.widgets.display", lambda shown: None)
    with pytest.raises(RuntimeError, match="no figure"):
        panel._ipython_display_()
    assert panel.result is None and panel.runs == 0
