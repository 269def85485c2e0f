"""Test-suite settings shared by the unit tests and the notebooks nbval executes.

The notebook kernels inherit this process's environment when they start, so setting the
variables here switches every notebook to quick mode without touching its cells.
"""

import os

os.environ.setdefault("COURSE_QUICK", "1")  # small-scale experiments (course_lib.runtime.scale)
os.environ.setdefault("MPLBACKEND", "Agg")  # no window; notebooks switch to inline themselves

import torch  # noqa: E402

# The unit tests use tiny tensors, for which one thread is faster than several (see the README).
torch.set_num_threads(1)
