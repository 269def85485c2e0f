"""The g_∞ adaptive-depth layer (lecture 07), one idea per module:

- `layer`        the depth gate δ_w, the `GInfinity` meta-layer that grows with w, and its two regularizers
- `experiments`  the paper's XOR-parity and MNIST experiments at the reference code's settings, and its shipped logs

Importing the package gives the layer; the experiments (which load data and train) are imported on their own,
``from course_lib.ginfty.experiments import run_xor``.
"""

from course_lib.ginfty.layer import (EPSILON, GInfinity, active_count, capacity_for, delta_w, ginfinity_layers,
                                     grow_all, last_batchnorm, last_kernel, regularization)

__all__ = ["EPSILON", "GInfinity", "active_count", "capacity_for", "delta_w", "ginfinity_layers", "grow_all",
           "last_batchnorm", "last_kernel", "regularization"]
