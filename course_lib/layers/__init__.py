"""Layers written from first principles, each in its own module, each a drop-in for torch.nn's:

- `course_lib.layers.dropout`    inverted dropout: ``Dropout``
- `course_lib.layers.batchnorm`  batch normalization with a hand-written backward: ``BatchNorm1d``,
                                 ``BatchNorm2d``, and ``fold_batchnorm`` (BN after a layer) and
                                 ``fold_batchnorm_into_next`` (BN before a Linear) for inference
- `course_lib.layers.layernorm`  normalization within one sample: ``LayerNorm`` and ``GroupNorm`` (backward by
                                 autograd)
- `course_lib.layers.residual`   residual blocks (``BasicBlock``, ``Bottleneck``) with identity, padding or
                                 projection shortcuts, and a ``ResNet`` builder
"""

from course_lib.layers.batchnorm import (BatchNorm1d, BatchNorm2d, BatchNormFunction, fold_batchnorm,
                                         fold_batchnorm_into_next)
from course_lib.layers.dropout import Dropout, dropout
from course_lib.layers.layernorm import GroupNorm, LayerNorm
from course_lib.layers.residual import (BasicBlock, Bottleneck, PaddingShortcut, PlainBlock, ResNet, resnet18,
                                        resnet50, small_resnet)

__all__ = ["Dropout", "dropout", "BatchNorm1d", "BatchNorm2d", "BatchNormFunction", "fold_batchnorm",
           "fold_batchnorm_into_next", "LayerNorm", "GroupNorm",
           "BasicBlock", "Bottleneck", "PaddingShortcut", "PlainBlock", "ResNet", "resnet18", "resnet50", "small_resnet"]
