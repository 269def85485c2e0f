"""Experiment panels: a plain experiment function, driven by sliders in a notebook and by code in tests.

The experiment stays an ordinary function with keyword defaults that returns its results and
draws its figure::

    def batch_size_experiment(batch_size=64, lr=0.1):
        ...
        return {"final_loss": ...}

    panel = ExperimentPanel(batch_size_experiment,
                            batch_size=[1, 16, 64, 256],        # a list: a slider over these values
                            lr=log_slider(1e-3, 1.0))           # any ipywidgets control
    panel                                                         # shows the controls, runs the defaults

Moving a control re-runs the experiment (on release, not while dragging) and draws the new figure
into the panel's output area. The last result is always in ``panel.result``, so a headless run
(nbval, CI) can drive the controls from code and assert on what came back::

    result = panel.set(batch_size=16)      # sets the control, runs once, returns the result
    assert result["final_loss"] < 1.0

When the experiment raises, ``set`` and ``run`` raise too (after showing the traceback in the panel),
and ``panel.result`` is ``None``: a failed run never hands back the previous result. A control moved in
the browser shows the error in the panel and keeps it in ``panel.error``.

Control specifications, as in ``ipywidgets.interact``: a list or tuple of values gives a
selection slider (strings give a dropdown); ``(min, max)`` or ``(min, max, step)`` of numbers
gives an int or float slider; a widget is used as it is. Every control starts at the function's
default for that argument, which must be one of the allowed values.

A page of the course's book has no kernel to move a slider. With ``COURSE_STATIC_PANELS=1`` in the
environment a displayed panel draws its figure at the defaults straight into the cell's output, without
controls, followed by a sentence naming the controls the notebook offers.
"""

from __future__ import annotations

import inspect
import math
import os
import time
import traceback
from typing import Any, Callable

import ipywidgets as widgets
import matplotlib.pyplot as plt
from IPython.display import Markdown, display

STATIC_ENV = "COURSE_STATIC_PANELS"


def log_slider(low: float, high: float, steps_per_decade: int = 4) -> widgets.FloatLogSlider:
    """A slider over [low, high] on a log scale, e.g. for a learning rate."""
    if not 0 < low < high:
        raise ValueError(f"log_slider needs 0 < low < high, got low={low!r}, high={high!r}")
    return widgets.FloatLogSlider(
        min=math.log10(low), max=math.log10(high), step=1 / steps_per_decade, base=10,
        continuous_update=False, readout_format=".2g",
    )


def _same(a: Any, b: Any) -> bool:
    """Equal, with floats compared to rounding error (a log slider stores 10**x)."""
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    return a == b


def _readable(value: Any) -> str:
    """A control's value as a sentence shows it: floats to three significant digits."""
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _in_words(items: list[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def _make_control(name: str, spec: Any) -> widgets.ValueWidget:
    if isinstance(spec, widgets.ValueWidget):
        return spec
    if isinstance(spec, tuple) and len(spec) in (2, 3) and all(isinstance(v, (int, float)) for v in spec):
        low, high, *step = spec
        if all(isinstance(v, int) for v in spec):
            return widgets.IntSlider(min=low, max=high, step=step[0] if step else 1, continuous_update=False)
        return widgets.FloatSlider(min=low, max=high, step=step[0] if step else (high - low) / 100, continuous_update=False)
    if isinstance(spec, (list, tuple)) and len(spec) > 0:
        if all(isinstance(v, str) for v in spec):
            return widgets.Dropdown(options=list(spec))
        return widgets.SelectionSlider(options=list(spec), continuous_update=False)
    raise ValueError(
        f"control {name!r}: use a widget, a non-empty list of values, or (min, max[, step]) numbers; got {spec!r}"
    )


class ExperimentPanel:
    """Controls bound to the keyword arguments of ``experiment``, an output area, and the last result."""

    def __init__(self, experiment: Callable[..., Any], **controls: Any):
        self.experiment = experiment
        defaults = {
            name: p.default
            for name, p in inspect.signature(experiment).parameters.items()
            if p.default is not inspect.Parameter.empty
        }
        self.controls: dict[str, widgets.ValueWidget] = {}
        for name, spec in controls.items():
            if name not in defaults:
                raise ValueError(f"{experiment.__name__} has no keyword argument {name!r} with a default to drive")
            control = _make_control(name, spec)
            control.description = control.description or name
            try:
                control.value = defaults[name]
            except Exception as error:
                raise ValueError(
                    f"the default {name}={defaults[name]!r} of {experiment.__name__} is not a value of its control ({error})"
                ) from None
            if not _same(control.value, defaults[name]):
                raise ValueError(f"the default {name}={defaults[name]!r} of {experiment.__name__} is outside its control's range")
            control.observe(self._on_change, names="value")
            self.controls[name] = control
        self.output = widgets.Output()
        self.result: Any = None
        self.error: str | None = None
        self.runs = 0
        self._holding = False
        # the controls wrap onto several rows: squeezed into one, a panel with many sliders shrinks each to nothing
        controls_row = widgets.HBox(list(self.controls.values()), layout=widgets.Layout(flex_flow="row wrap"))
        self.widget = widgets.VBox([controls_row, self.output])

    def values(self) -> dict[str, Any]:
        """The keyword arguments the controls currently select."""
        return {name: control.value for name, control in self.controls.items()}

    def run(self) -> Any:
        """Run the experiment with the current values, drawing into the output area; return its result.

        When the experiment raises, the traceback is shown in the output area, kept in ``self.error``,
        ``self.result`` is emptied, and the exception is raised again: a caller never gets the previous
        result back. (In IPython an ``Output`` widget used as a context manager swallows exceptions, so
        the experiment is caught inside it and the exception raised again outside.)
        """
        failure: BaseException | None = None
        self.result = None
        with self.output:
            self.output.clear_output(wait=True)
            try:
                self.result = self.experiment(**self.values())
                plt.show()
            except Exception as error:
                failure = error
                self.error = traceback.format_exc()
                plt.close("all")  # a half-drawn figure would appear below the cell as if it were the result
                print(self.error)
        if failure is not None:
            raise failure
        self.runs += 1
        self.error = None
        return self.result

    def set(self, **values: Any) -> Any:
        """Set several controls at once, run the experiment once, and return its result."""
        unknown = set(values) - set(self.controls)
        if unknown:
            raise ValueError(f"no control named {sorted(unknown)}; the controls are {sorted(self.controls)}")
        self._holding = True
        try:
            for name, value in values.items():
                self.controls[name].value = value
                if not _same(self.controls[name].value, value):
                    raise ValueError(f"{name}={value!r} is not a value its control allows")
        finally:
            self._holding = False
        return self.run()

    def _on_change(self, change: dict) -> None:
        """A control moved in the browser: re-run. An error stays in the panel and in ``self.error``."""
        if self._holding:
            return
        try:
            self.run()
        except Exception:
            pass  # run() has shown the traceback in the panel and kept it in self.error

    def _ipython_display_(self) -> None:
        if os.environ.get(STATIC_ENV, "").strip() == "1":
            self.show_static()
            return
        display(self.widget)
        if self.runs == 0:
            self.run()

    def show_static(self) -> Any:
        """Say which controls the notebook offers, then run the experiment at their values and draw its figure into
        the cell's output, not the panel's; return the result. An error is raised, as by ``run``."""
        values = _in_words([f"{name} = {_readable(value)}" for name, value in self.values().items()])
        display(Markdown(f"*In the notebook, controls for {_in_words(list(self.controls))} make the figure below "
                         f"interactive; here it is drawn at their defaults ({values}).*"))
        self.result = None
        self.result = self.experiment(**self.values())
        plt.show()
        self.runs += 1
        self.error = None
        return self.result


def control_ends(control: widgets.ValueWidget) -> list[Any]:
    """The two ends of a control's range (a checkbox: the value it does not have)."""
    if isinstance(control, widgets.FloatLogSlider):
        return [control.base ** control.min, control.base ** control.max]
    if isinstance(control, (widgets.SelectionSlider, widgets.Dropdown, widgets.ToggleButtons, widgets.RadioButtons)):
        options = [option[1] if isinstance(option, tuple) else option for option in control.options]
        return [options[0], options[-1]]
    if isinstance(control, widgets.Checkbox):
        return [not control.value]
    return [control.min, control.max]


def same_result(a: Any, b: Any) -> bool:
    """Whether two results of an experiment are identical: dicts, lists, tensors and arrays compared by value."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_result(a[key], b[key]) for key in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(same_result(x, y) for x, y in zip(a, b))
    if hasattr(a, "shape") and hasattr(b, "shape"):  # tensors and arrays
        return tuple(a.shape) == tuple(b.shape) and bool((a == b).all())
    try:
        return bool(a == b)
    except Exception:
        return a is b


def sweep_panels(namespace: dict[str, Any], log: Callable[[dict], None] | None = None) -> list[dict]:
    """Move every control of every panel in ``namespace`` (a notebook's globals) to each end of its range.

    The moves are made one after the other, each from where the previous one left the panel, to every
    end that is not the control's current value. Each move is a dict: ``panel``, ``control``, ``value``
    (its repr), ``seconds`` (wall time), ``cpu_seconds`` (this process's CPU time, which other processes on
    the machine do not inflate) and ``changed`` (whether the result differs from the panel's result before
    the move). An experiment that raises stops the sweep with its exception, naming the move in a note.
    """
    moves = []
    for panel_name, panel in list(namespace.items()):
        if panel_name.startswith("_") or not isinstance(panel, ExperimentPanel):
            continue
        for control_name, control in panel.controls.items():
            for value in control_ends(control):
                if _same(value, control.value):
                    continue
                before = panel.result
                started, started_cpu = time.perf_counter(), time.process_time()
                try:
                    result = panel.set(**{control_name: value})
                except Exception as error:
                    if hasattr(error, "add_note"):  # Python 3.11 and later
                        error.add_note(f"while moving {panel_name}'s control {control_name} to {value!r}")
                    raise
                move = {"panel": panel_name, "control": control_name, "value": repr(value),
                        "seconds": round(time.perf_counter() - started, 2),
                        "cpu_seconds": round(time.process_time() - started_cpu, 2),
                        "changed": not same_result(result, before)}
                moves.append(move)
                if log is not None:
                    log(move)
    return moves
