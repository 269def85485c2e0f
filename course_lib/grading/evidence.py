"""Evidence: what a hidden test records about a student's answer, so that the verdict is made outside the kernel.

A check that runs in the student's kernel can be defeated by the student's own code (a patched
``torch.allclose``, a silenced traceback). So a hidden test does not *decide*; it *records* what the student's
code produced on inputs the student never saw::

    expect("grads B=17", linear_backward(x, w, grad_y), reference=autograd_grads(x, w, grad_y),
           message="linear_backward is wrong for B=17")
    expect_raises("batch_size=0", ValueError, lambda: list(minibatches(x, y, 0)), mentions=0,
                  message="batch_size=0 must raise ValueError naming the value")
    expect_accuracy("held-out digits", predictions, labels=y_heldout, at_least=0.8,
                    message="the MLP should learn the digits")

``course-grade`` runs the instructor's solution notebook once per batch, in its own sandbox, and then each
submission; it compares each record of a submission with the record of the same key from the solution, in the
grader's own process, with the tolerance written in the solution. The student can change what their kernel
records, but only by producing the values a correct answer produces.

**The expected values never enter a student's kernel.** In a submission's run, the grader replaces the
expressions given as ``reference=``, ``labels=`` and ``mentions=`` with ``...`` before the cell is sent
(`withhold_references`), so a patched ``expect`` finds no answer to copy. Write each reference *inside* that
argument (``reference=autograd_grads(x, w, grad_y)``), not in a statement before the call: a value computed
beforehand would still be in the kernel's memory.

The same calls work everywhere else:

- **in a plain run** (nbval, nbgrader, a student's JupyterLab) each call is an ``assert``: `expect` compares
  ``value`` with its ``reference`` (when one is given; without one it only records), `expect_raises` requires
  the exception and the mention, `expect_accuracy` the accuracy, and a failure raises ``AssertionError(message)``;
- **under course-grade** (``COURSE_GRADING=1``, set in the sandbox) each call emits one record as a
  ``display_data`` output of MIME type `MIME` and raises nothing, so every later check of the cell still records.

A record is JSON (never pickle): a tensor becomes its dtype, shape and values. `disagreement` is the one
comparison used both by the plain-run assertions and by the grader.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any

MIME = "application/vnd.going-deeper.evidence+json"
GRADING_ENV = "COURSE_GRADING"
MAX_ELEMENTS = 200_000  # values per record; a larger value is recorded as too large (and fails)
MAX_TEXT = 2_000  # characters of an exception's message kept in a record
VISIBLE_DONE = "(the visible checks ran)"  # the key of the marker course-grade records where the hidden tests begin

# Default tolerances by dtype (those of torch.testing.assert_close): float64 and Python floats, then float32.
TOLERANCES = {"torch.float64": (1e-7, 1e-7), "float": (1e-7, 1e-7), "torch.float32": (1.3e-6, 1e-5),
              "torch.float16": (1e-3, 1e-5), "torch.bfloat16": (1.6e-2, 1e-5)}

_NOTHING = object()


def grading() -> bool:
    """True inside course-grade's sandbox, where checks record instead of asserting."""
    return os.environ.get(GRADING_ENV, "") == "1"


# ----------------------------------------------------------------------------------------------------------
# Encoding: any answer as plain JSON
# ----------------------------------------------------------------------------------------------------------

def _number(x: float) -> float | str:
    """JSON has no NaN or infinity: those become the strings 'nan', 'inf', '-inf'."""
    return x if math.isfinite(x) else ("nan" if math.isnan(x) else ("inf" if x > 0 else "-inf"))


def encode(value: Any) -> Any:
    """``value`` as JSON-ready data that keeps what a comparison needs.

    Tensors (and NumPy arrays) become ``{"tensor": {"dtype", "shape", "values"}}`` with the values flattened;
    lists and tuples become ``{"sequence": [...]}``; dicts with string keys ``{"mapping": {...}}``; floats
    ``{"float": x}``; bools, ints, strings and None stay as they are; anything else ``{"unsupported": type}``.
    """
    import torch

    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return {"float": _number(value)}
    if type(value).__module__ == "numpy" and hasattr(value, "shape"):
        value = torch.as_tensor(value)
    if isinstance(value, torch.Tensor):
        tensor = torch.Tensor.detach(value)
        if tensor.numel() > MAX_ELEMENTS:
            return {"too_large": int(tensor.numel())}
        if tensor.is_complex():
            return {"unsupported": "complex tensor"}
        flat = torch.Tensor.tolist(tensor.cpu().reshape(-1))
        values = [_number(v) if isinstance(v, float) else v for v in flat]
        return {"tensor": {"dtype": str(tensor.dtype), "shape": list(tensor.shape), "values": values}}
    if isinstance(value, (list, tuple)):
        return {"sequence": [encode(item) for item in value]}
    if isinstance(value, dict) and all(isinstance(key, str) for key in value):
        return {"mapping": {key: encode(item) for key, item in value.items()}}
    return {"unsupported": type(value).__name__}


# ----------------------------------------------------------------------------------------------------------
# Comparison: the one rule for "these two records agree"
# ----------------------------------------------------------------------------------------------------------

def _as_float(x: Any) -> float:
    return float(x) if not isinstance(x, str) else float(x.replace("inf", "Infinity") if x != "nan" else "nan")


def _close(a: Any, b: Any, rtol: float, atol: float) -> bool:
    """|a − b| ≤ atol + rtol·|b|, with NaN equal to NaN and infinities equal only to themselves."""
    if isinstance(a, bool) or isinstance(b, bool) or not isinstance(a, (int, float, str)) \
            or not isinstance(b, (int, float, str)):
        return False
    try:
        x, y = _as_float(a), _as_float(b)
    except (ValueError, OverflowError):  # a string that is no number, or an int beyond any float (10**400)
        return type(a) is int and type(b) is int and a == b
    if math.isnan(x) or math.isnan(y):
        return math.isnan(x) and math.isnan(y)
    if math.isinf(x) or math.isinf(y):
        return x == y
    return abs(x - y) <= atol + rtol * abs(y)


def _position(flat: int, shape: list[int]) -> str:
    """Where the ``flat``-th value (row by row) of a tensor of ``shape`` sits, as a student indexes it:
    ``"index (1, 2)"``."""
    indices = []
    for size in reversed(shape):
        flat, index = divmod(flat, size) if size else (flat, 0)
        indices.append(index)
    return f"index ({', '.join(map(str, reversed(indices)))}{',' if len(shape) == 1 else ''})"


def disagreement(got: Any, want: Any, rtol: float | None = None, atol: float | None = None,
                 exact_dtype: bool = True, where: str = "the value") -> str | None:
    """Why the encoded ``got`` does not agree with the encoded ``want`` (None when it does).

    The reason names only what ``want`` holds (a student's record may carry any text, and the reason can reach the
    feedback). Tensors must have the same shape, the same dtype (unless ``exact_dtype`` is False) and values within
    ``atol + rtol·|want|`` (floating dtypes; defaults by dtype from `TOLERANCES`) or equal (integer and bool
    dtypes). Floats are compared the same way, everything else exactly; sequences and mappings item by item.

    The reason says where, in words a student reads: a mapping's key names its item (record
    ``{"the second moment v after step 3": v}`` and a wrong ``v`` reads "the second moment v after step 3 differs at
    index (2,)"), a sequence's items are counted from 1 ("item 2 of the value differs").
    """
    if isinstance(want, dict) and "tensor" in want:
        if not (isinstance(got, dict) and isinstance(got.get("tensor"), dict)):
            return f"{where} should be a tensor"
        g, w = got["tensor"], want["tensor"]
        if g.get("shape") != w["shape"]:
            return f"{where} should have shape {tuple(w['shape'])}"
        if exact_dtype and g.get("dtype") != w["dtype"]:
            return f"{where} should have dtype {w['dtype']}"
        g_values, w_values = g.get("values"), w["values"]
        if not isinstance(g_values, list) or len(g_values) != len(w_values):
            return f"{where} is malformed"
        floating = "float" in w["dtype"]
        default_rtol, default_atol = TOLERANCES.get(w["dtype"], (0.0, 0.0))
        r = default_rtol if rtol is None else rtol
        a = default_atol if atol is None else atol
        for index, (x, y) in enumerate(zip(g_values, w_values)):
            same = _close(x, y, r, a) if floating else (type(x) is type(y) and x == y) or (
                not exact_dtype and _close(x, y, 0.0, 0.0))
            if not same:
                return f"{where} differs" + (f" at {_position(index, w['shape'])}" if w["shape"] else "")
        return None
    if isinstance(want, dict) and "float" in want:
        if not (isinstance(got, dict) and "float" in got) and not (isinstance(got, int) and not isinstance(got, bool)):
            return f"{where} should be a number"
        default_rtol, default_atol = TOLERANCES["float"]
        number = got["float"] if isinstance(got, dict) else got
        if not _close(number, want["float"], default_rtol if rtol is None else rtol, default_atol if atol is None else atol):
            return f"{where} differs"
        return None
    if isinstance(want, dict) and "sequence" in want:
        if not (isinstance(got, dict) and isinstance(got.get("sequence"), list)):
            return f"{where} should be a list or tuple"
        if len(got["sequence"]) != len(want["sequence"]):
            return f"{where} should have {len(want['sequence'])} items"
        for index, (x, y) in enumerate(zip(got["sequence"], want["sequence"])):
            reason = disagreement(x, y, rtol, atol, exact_dtype, f"item {index + 1} of {where}")
            if reason:
                return reason
        return None
    if isinstance(want, dict) and "mapping" in want:
        if not (isinstance(got, dict) and isinstance(got.get("mapping"), dict)):
            return f"{where} should be a dict"
        if set(got["mapping"]) != set(want["mapping"]):
            return f"{where} has other keys"
        for key in want["mapping"]:
            named = key if where == "the value" else f"{where}, {key}"
            reason = disagreement(got["mapping"][key], want["mapping"][key], rtol, atol, exact_dtype, named)
            if reason:
                return reason
        return None
    if isinstance(want, dict):  # "unsupported" or "too_large" in a reference: nothing can agree with it
        return f"{where} cannot be compared"
    if type(got) is not type(want) or got != want:
        return f"{where} differs"
    return None


# ----------------------------------------------------------------------------------------------------------
# The three checks
# ----------------------------------------------------------------------------------------------------------

def _emit(record: dict) -> None:
    from IPython.display import display

    display({MIME: json.loads(json.dumps(record, allow_nan=False))}, raw=True)


def visible_checks_passed() -> None:
    """Mark, under course-grade, that a check cell got past its visible checks (see `mark_visible_end`)."""
    if grading():
        _emit({"key": VISIBLE_DONE, "kind": "marker"})


def mark_visible_end(source: str) -> str:
    """``source`` with a call of `visible_checks_passed` where its hidden tests begin, so that the feedback can say
    whether a failing check cell stopped in its visible part. The marker decides nothing: it only words feedback."""
    lines = source.splitlines()
    for index, line in enumerate(lines):
        if line.strip() == "### BEGIN HIDDEN TESTS":
            call = '__import__("course_lib.grading.evidence").grading.evidence.visible_checks_passed()'
            return "\n".join(lines[: index + 1] + [call] + lines[index + 1:])
    return source


def _check_key_and_message(key: Any, message: Any) -> None:
    if not isinstance(key, str) or not key or len(key) > 200:
        raise ValueError(f"key must be a non-empty string of at most 200 characters, got {key!r}")
    if not isinstance(message, str) or not message:
        raise ValueError(f"message must be a non-empty string (it is what the student reads), got {message!r}")


def expect(key: str, value: Any, *, reference: Any = _NOTHING, message: str, rtol: float | None = None,
           atol: float | None = None, exact_dtype: bool = True) -> None:
    """Record ``value`` under ``key``; the grader requires it to agree with the solution's value for ``key``.

    In a plain run: ``assert`` that ``value`` agrees with ``reference`` (`disagreement`'s rule) when a reference
    is given. ``rtol``/``atol`` default to the dtype's tolerances in `TOLERANCES`; ``exact_dtype=False`` accepts
    another dtype with the same values.
    """
    _check_key_and_message(key, message)
    for name, tolerance in (("rtol", rtol), ("atol", atol)):
        if tolerance is not None and (not isinstance(tolerance, (int, float)) or not tolerance >= 0):
            raise ValueError(f"{name} must be a non-negative number, got {tolerance!r}")
    encoded = encode(value)
    problem = None
    if reference is not _NOTHING and reference is not Ellipsis:
        problem = disagreement(encoded, encode(reference), rtol, atol, exact_dtype)
    if grading():
        _emit({"key": key, "kind": "value", "value": encoded, "message": message, "rtol": rtol, "atol": atol,
               "exact_dtype": exact_dtype, "self_check": problem is None})
    elif problem is not None:
        raise AssertionError(message)


def expect_raises(key: str, exception: type[BaseException], call, *, message: str, mentions: Any = _NOTHING) -> None:
    """Record what ``call()`` raises; the grader requires ``exception`` (or a subclass) with a message that
    contains ``str(mentions)`` (when given: e.g. the bad value, so the evidence cannot be guessed).

    In a plain run: ``assert`` the same.
    """
    _check_key_and_message(key, message)
    if not (isinstance(exception, type) and issubclass(exception, BaseException)):
        raise ValueError(f"exception must be an exception class, got {exception!r}")
    try:
        returned = call()
    except Exception as error:  # noqa: BLE001 - recording what was raised is the point
        observed = {"raised": [cls.__name__ for cls in type(error).__mro__], "text": str(error)[:MAX_TEXT]}
    else:
        observed = {"raised": None, "returned": encode(returned) if not hasattr(returned, "__next__") else "generator"}
    mention = None if mentions is _NOTHING or mentions is Ellipsis else str(mentions)
    satisfied = observed["raised"] is not None and exception.__name__ in observed["raised"] and (
        mention is None or mention in observed["text"])
    if grading():
        _emit({"key": key, "kind": "raises", "value": observed, "expected": exception.__name__, "mentions": mention,
               "message": message, "self_check": satisfied})
    elif not satisfied:
        raise AssertionError(message)


def expect_accuracy(key: str, predictions: Any, *, labels: Any, at_least: float, message: str) -> None:
    """Record the predicted classes; the grader requires at least ``at_least`` of them to equal the labels
    that the solution's run recorded for the same ``key``.

    In a plain run: ``assert`` the accuracy against ``labels``.
    """
    _check_key_and_message(key, message)
    if not isinstance(at_least, (int, float)) or not 0 <= at_least <= 1:
        raise ValueError(f"at_least must be a fraction in [0, 1], got {at_least!r}")
    encoded = encode(predictions)
    encoded_labels = None if labels is Ellipsis else encode(labels)
    accuracy = None if encoded_labels is None else agreement(encoded, encoded_labels)
    if grading():
        _emit({"key": key, "kind": "accuracy", "value": encoded, "labels": encoded_labels, "at_least": at_least,
               "message": message, "self_check": accuracy is not None and accuracy >= at_least})
    elif accuracy is None or accuracy < at_least:
        raise AssertionError(message)


def agreement(predictions: Any, labels: Any) -> float | None:
    """The fraction of encoded ``predictions`` equal to the encoded ``labels`` (None when the shapes differ)."""
    try:
        p, t = predictions["tensor"], labels["tensor"]
    except (KeyError, TypeError):
        return None
    if not isinstance(p, dict) or p.get("shape") != t["shape"] or not isinstance(p.get("values"), list) \
            or len(p["values"]) != len(t["values"]) or not t["values"]:
        return None
    same = sum(1 for x, y in zip(p["values"], t["values"]) if type(x) is type(y) and x == y)
    return same / len(t["values"])


# ----------------------------------------------------------------------------------------------------------
# What a student's kernel is shown
# ----------------------------------------------------------------------------------------------------------

WITHHELD = {"expect": ("reference",), "expect_raises": ("mentions",), "expect_accuracy": ("labels",)}


def withhold_references(source: str) -> str:
    """``source`` with the expression of every ``reference=``, ``mentions=`` and ``labels=`` argument of an
    `expect`, `expect_raises` or `expect_accuracy` call replaced by ``...``: what a submission's kernel runs.

    Only those spans change (line numbers and everything else stay). A source that does not parse is returned
    unchanged (it fails the same way in the solution's run, which the grader checks first).
    """
    import ast

    try:
        tree = ast.parse(source)
    except SyntaxError:
        return source
    spans = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", None)
        for keyword in node.keywords:
            if keyword.arg in WITHHELD.get(name, ()):
                value = keyword.value
                spans.append((value.lineno, value.col_offset, value.end_lineno, value.end_col_offset))
    lines = [line.encode("utf-8") for line in source.splitlines(keepends=True)]
    for start_line, start_col, end_line, end_col in sorted(spans, reverse=True):
        head = lines[start_line - 1][:start_col]
        tail = lines[end_line - 1][end_col:]
        lines[start_line - 1: end_line] = [head + b"..." + tail] + [b"\n"] * (end_line - start_line)
    return b"".join(lines).decode("utf-8")


# ----------------------------------------------------------------------------------------------------------
# A trained model, evaluated outside the kernel
# ----------------------------------------------------------------------------------------------------------

def expect_trained(key: str, model: Any, *, evaluate: str, options: dict, at_least: float, message: str) -> None:
    """Record a trained model's parameters; the grader requires that the architecture the *solution's* record
    names, loaded with them, classifies at least ``at_least`` of the held-out digits, measured in its own process.

    ``model`` is a ``torch.nn.Module`` (or its ``state_dict()``); ``evaluate`` names a function of
    `course_lib.grading.heldout` (``"course_lib.grading.heldout:mlp"``) and ``options`` the sizes it needs, e.g.
    ``{"hidden_units": 64, "heldout_size": 1000}``. Accuracy is (1/N) Σ_n [argmax model(x_n) = y_n] over the first
    N = ``options["heldout_size"]`` held-out digits. Use it instead of `expect_accuracy` whenever the kernel holds
    the labels: predictions made in the kernel can be the labels themselves.

    In a plain run: ``assert`` that accuracy. Under course-grade: emit a record of kind ``"trained"`` holding the
    encoded state_dict (``value``), each entry's shape, ``evaluate``, ``options`` and ``at_least``; the grader reads
    the evaluation and its options from the solution's record only.
    """
    import torch

    from course_lib.grading import heldout

    _check_key_and_message(key, message)
    heldout.evaluation(evaluate)
    if not isinstance(options, dict) or not all(isinstance(k, str) for k in options):
        raise ValueError(f"options must be a dict with string keys, got {options!r}")
    if isinstance(at_least, bool) or not isinstance(at_least, (int, float)) or not 0 <= at_least <= 1:
        raise ValueError(f"at_least must be a fraction in [0, 1], got {at_least!r}")
    state = model.state_dict() if isinstance(model, torch.nn.Module) else model
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise ValueError(f"model must be a torch.nn.Module or its state_dict, got {type(model).__name__}")
    encoded = encode(dict(state))
    try:
        accuracy = heldout.accuracy_of(encoded, evaluate, options)
    except ValueError:
        accuracy = None
    if grading():
        _emit({"key": key, "kind": "trained", "value": encoded,
               "shapes": {name: list(tensor.shape) for name, tensor in state.items()}, "evaluate": evaluate,
               "options": options, "at_least": at_least, "message": message,
               "self_check": accuracy is not None and accuracy >= at_least})
    elif accuracy is None or accuracy < at_least:
        raise AssertionError(message)
