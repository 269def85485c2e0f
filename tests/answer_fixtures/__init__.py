"""Other ways to answer each exercise: correct alternatives (full marks) and subtly wrong answers (each loses exactly
the parts it gets wrong), one module per exercise.

Each module defines

- ``ALTERNATIVES``: ``{name: {answer cell id: code}}``, correct answers written another way;
- ``WRONG``: ``{name: (parts it must lose, {answer cell id: code})}``, slips a student could make, each of which a
  visible check catches.

The code replaces the answer region (between ``### BEGIN SOLUTION`` and ``### END SOLUTION``) of that answer cell
in the solution notebook (a tuple of codes replaces its regions in order; a string, the first); every other answer
stays the solution's. `submission` builds the notebook.
"""

from __future__ import annotations

import importlib
import textwrap
from pathlib import Path

import nbformat

from course_lib.exercises import BEGIN_SOLUTION, END_SOLUTION, find_regions

ROOT = Path(__file__).resolve().parent.parent.parent
EXERCISES = ["01_batch_sgd", "02_momentum_adam", "03_dropout", "04_batchnorm", "05_residual", "06_finetuning", "07_ginfty", "08_compression", "09_visualization"]


def module(exercise: str):
    return importlib.import_module(f"answer_fixtures.exercise_{exercise[:2]}")


def submission(exercise: str, answers: dict[str, str]) -> str:
    """The solution notebook of ``exercise`` with the regions of the named answer cells replaced."""
    notebook = nbformat.read(ROOT / "solutions" / f"{exercise}.ipynb", as_version=4)
    cells = {c.metadata.get("nbgrader", {}).get("grade_id"): c for c in notebook.cells}
    for cell_id, codes in answers.items():
        cell = cells[cell_id]
        regions = find_regions(cell.source, BEGIN_SOLUTION, END_SOLUTION, cell_id)
        lines = cell.source.splitlines()
        codes = (codes,) if isinstance(codes, str) else codes
        for region, code in reversed(list(zip(regions, codes))):
            lines[region.begin + 1: region.end] = textwrap.indent(
                textwrap.dedent(code).strip("\n"), region.indent).splitlines()
        cell.source = "\n".join(lines)
    return nbformat.writes(notebook)
