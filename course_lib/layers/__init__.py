"""Layers written from first principles, each in its own module, each a drop-in for torch.nn's:

- `course_lib.layers.dropout`    inverted dropout: ``Dropout``
- `course_lib.layers.batchnorm`  batch normalization with a hand-written backward: ``BatchNorm1d``,
                                 ``BatchNorm2d``, and ``fold_batchnorm`` for inference
"""

from course_lib.layers.batchnorm import BatchNorm1d, BatchNorm2d, BatchNormFunction, fold_batchnorm
from course_lib.layers.dropout import Dropout, dropout

__all__ = ["Dropout", "dropout", "BatchNorm1d", "BatchNorm2d", "BatchNormFunction", "fold_batchnorm"]
