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


def test_a_failing_run_from_a_slider_is_kept_not_lost():
    def fragile(x=1):
        if x == 2:
            raise RuntimeError("boom")
        return x

    panel = ExperimentPanel(fragile, x=(0, 3))
    assert isinstance(panel.controls["x"], ipywidgets.IntSlider)
    panel.controls["x"].value = 2
    assert "RuntimeError: boom" in panel.error
    panel.controls["x"].value = 3
    assert panel.error is None and panel.result == 3


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
