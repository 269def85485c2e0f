"""Optimizers written from their update rules, one rule a module, each a drop-in for its torch.optim class.

    sgd.py        SGD: momentum, dampening, Nesterov momentum, weight decay
    adagrad.py    Adagrad: steps scaled by each coordinate's root-sum-square gradient     (accumulate)
    rmsprop.py    RMSprop: a running average instead of the sum; centered, momentum       (forget)
    adadelta.py   Adadelta: the root-mean-square of past updates as the numerator         (fix the units)
    adam.py       Adam and AdamW: momentum, RMSprop's average, bias correction            (correct the bias)
    base.py       what they share: argument checks, the closure, multi-tensor buckets and cache blocks

Each rule appears twice. First as a **readable function** applied to one parameter at a time, in the
lecture's notation; then as a **multi-tensor** function that applies the same arithmetic to whole lists
of tensors with ``torch._foreach_*`` kernels (one kernel launch per operation for all parameters,
instead of one per parameter). Both compute the same numbers; the classes use the multi-tensor path by
default and the readable one with ``foreach=False``. The classes are ``torch.optim.Optimizer``
subclasses with torch.optim's constructor arguments, defaults and state layout, so they drop into any
PyTorch training loop: parameter groups, ``zero_grad``, ``state_dict``/``load_state_dict`` (either way),
``torch.optim.lr_scheduler``.

Each parameter counts its own steps t, so one that receives no gradient on some steps (``grad`` is
None) is skipped and its state and step count stay as they were, as in torch.optim.
"""

from .adadelta import Adadelta, adadelta_update, adadelta_update_foreach
from .adagrad import Adagrad, adagrad_update, adagrad_update_foreach
from .adam import Adam, AdamW, adam_update, adam_update_foreach
from .rmsprop import RMSprop, rmsprop_update, rmsprop_update_foreach
from .sgd import SGD, sgd_update, sgd_update_foreach

__all__ = [
    "SGD", "Adagrad", "RMSprop", "Adadelta", "Adam", "AdamW",
    "sgd_update", "sgd_update_foreach", "adagrad_update", "adagrad_update_foreach",
    "rmsprop_update", "rmsprop_update_foreach", "adadelta_update", "adadelta_update_foreach",
    "adam_update", "adam_update_foreach",
]
