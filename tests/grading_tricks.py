"""Submissions of exercise 01 that implement nothing and try to collect points from what the hidden tests leave in
the kernel, built from the committed exercise and solution notebooks.

Each trick is a code cell the student adds to the exercise, just before the check cell it targets:

- ``argmax``: no-op ``minibatches`` and ``sgd_step``, and ``torch.Tensor.argmax`` patched to return the held-out
  labels the kernel holds (``train-mnist``);
- ``quoted``: every number the ``eta-sweep`` hidden test's message quotes, hard-coded as the answer (``eta-sweep``);
- ``twin``: ``numerical_gradient`` by autograd on the hidden test's ``differentiable`` global when there is one, else
  on ``f`` itself (``numerical-gradient``);
- ``helper``: an IPython AST transformer that removes the visible asserts, and ``minibatches`` that returns the
  hidden test's ``epochs_by_randperm`` for the generator's seed when that global exists (``minibatches``);
- ``all_four``: the four cells together.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
SOLUTION = ROOT / "tests" / "grading_subject" / "solutions" / "01_batch_sgd.ipynb"
EXERCISE = ROOT / "tests" / "grading_subject" / "exercises" / "01_batch_sgd.ipynb"

ARGMAX = '''
def minibatches(x, y, batch_size, generator=None):
    return iter(())


def sgd_step(parameters, lr):
    pass


import torch
_argmax = torch.Tensor.argmax
torch.Tensor.argmax = lambda self, *args, **kwargs: (
    globals()["mnist"].heldout_y if "mnist" in globals() and self.shape[:1] == globals()["mnist"].heldout_y.shape[:1]
    else _argmax(self, *args, **kwargs))
'''

TWIN = '''
def numerical_gradient(f, x):
    twin = globals().get("differentiable", f)
    return torch.autograd.functional.vjp(twin, x.detach().clone())[1]
'''

HELPER = '''
import ast
from IPython import get_ipython


class NoAsserts(ast.NodeTransformer):
    def visit_Assert(self, node):
        return ast.Pass()


get_ipython().ast_transformers.append(NoAsserts())


def minibatches(x, y, batch_size, generator=None):
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    helper = globals().get("epochs_by_randperm")
    if helper is None or generator is None:
        return iter(())
    return iter(helper(x, y, batch_size, seed=generator.initial_seed(), epochs=1)[0])
'''


def quoted_numbers() -> list[float]:
    """The numbers the eta-sweep hidden test's message quotes (what the trick hard-codes)."""
    solution = nbformat.read(SOLUTION, as_version=4)
    cell = next(c for c in solution.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "eta-sweep")
    message = cell.source.split("message=", 1)[1]
    return [float(n) for n in re.findall(r"(?<![\w.])\d*\.\d+", message)]


def quoted() -> str:
    numbers = quoted_numbers()
    accuracies = numbers[:5] if len(numbers) >= 5 else [0.1] * 5  # nothing quoted: a guess
    good = numbers[5] if len(numbers) > 5 else 0.3
    return f"accuracy_by_eta = {accuracies!r}\nlargest_good_eta = {good!r}\n"


TRICKS = {"argmax": {"train-mnist": ARGMAX}, "quoted": {"eta-sweep": quoted()},
          "twin": {"numerical-gradient": TWIN}, "helper": {"minibatches": HELPER}}
TRICKS["all_four"] = {part: code for trick in list(TRICKS.values()) for part, code in trick.items()}


def with_cells(cells_before: dict[str, str]) -> str:
    """The exercise with a code cell of the student's inserted before the check cell of each named part."""
    notebook = nbformat.read(EXERCISE, as_version=4)
    cells = []
    for cell in notebook.cells:
        part = cell.metadata.get("nbgrader", {}).get("grade_id")
        if cell.cell_type == "code" and part in cells_before:
            cells.append(nbformat.v4.new_code_cell(cells_before[part].strip()))
        cells.append(cell)
    notebook.cells = cells
    return nbformat.writes(notebook)


def trick_submissions() -> dict[str, str]:
    """Student name → notebook text, for each trick and for all four together."""
    return {name: with_cells(cells) for name, cells in TRICKS.items()}
