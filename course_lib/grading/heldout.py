"""Held-out evaluations the grader runs in its own process: a trained model's accuracy from its recorded parameters.

A student's kernel holds the held-out digits and their labels (the exercises need them to report an accuracy), so
predictions made in the kernel prove nothing: a patched ``argmax`` can return the labels themselves. A hidden test
therefore records the trained model's parameters (`course_lib.grading.evidence.expect_trained`), and the grader
rebuilds the architecture the exercise prescribes, loads those parameters and measures

    accuracy = (1/N) Σ_n [argmax_k model(x_n)_k = y_n]

on the first N held-out digits, which it loads itself with `course_lib.data.load_mnist`. Each evaluation is a
function ``NAME(state, options) -> accuracy`` registered in `EVALUATIONS` and named in a record as
``"course_lib.grading.heldout:NAME"``; its ``options`` give every size explicitly (the quick scale's, as the
solution's run recorded them), so nothing depends on the grader's environment.

`accuracy_of` is the one entry point: it takes the evaluation's name and options from the solution's record and
only the parameters from the student's, and refuses anything that is not a state of exactly the prescribed keys,
shapes and dtypes with finite values of magnitude at most `MAX_MAGNITUDE` (the part then fails, with a reason that
names only what was expected).
"""

from __future__ import annotations

import functools
from typing import Any, Callable

PREFIX = "course_lib.grading.heldout:"
MAX_MAGNITUDE = 1e6  # larger parameters are not a trained model of this course; they fail instead of overflowing


# ----------------------------------------------------------------------------------------------------------
# The architectures the exercises prescribe
# ----------------------------------------------------------------------------------------------------------

def _mlp(hidden_units: int):
    """Exercise 01's MLP: Flatten, Linear(784, H), ReLU, Linear(H, 10)."""
    import torch

    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, hidden_units), torch.nn.ReLU(),
                               torch.nn.Linear(hidden_units, 10))


def _residual_block(in_channels: int, out_channels: int, stride: int = 1):
    """Exercise 05's block, y = ReLU(bn2(conv2(ReLU(bn1(conv1(x))))) + shortcut(x)), with the text's attribute
    names (``shortcut`` a projection, 1×1 convolution then batch norm, where the shape changes)."""
    import torch
    import torch.nn.functional as F

    class ResidualBlock(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = torch.nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
            self.bn1 = torch.nn.BatchNorm2d(out_channels)
            self.conv2 = torch.nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
            self.bn2 = torch.nn.BatchNorm2d(out_channels)
            self.shortcut = None if stride == 1 and in_channels == out_channels else torch.nn.Sequential(
                torch.nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                torch.nn.BatchNorm2d(out_channels))

        def forward(self, x):
            residual = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
            return F.relu(residual + (x if self.shortcut is None else self.shortcut(x)))

    return ResidualBlock()


def _tiny_resnet():
    """Exercise 05's small ResNet: a 3×3 stem to 16 channels, blocks 16→16, 16→16, 16→32 (stride 2), average pooling,
    Linear(32, 10)."""
    import torch

    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 16, 3, padding=1, bias=False), torch.nn.BatchNorm2d(16), torch.nn.ReLU(),
        _residual_block(16, 16), _residual_block(16, 16), _residual_block(16, 32, stride=2),
        torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(32, 10))


# ----------------------------------------------------------------------------------------------------------
# Evaluations: NAME(state, options) -> accuracy on the first options["heldout_size"] held-out digits
# ----------------------------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=4)
def heldout_digits(heldout_size: int, pool: int = 1):
    """The first ``heldout_size`` held-out digits, normalized as `load_mnist` does, average-pooled by ``pool``
    (1: 28 × 28; 2: 14 × 14), and their labels, loaded in this process (never downloaded)."""
    import torch.nn.functional as F

    from course_lib.data import load_mnist

    mnist = load_mnist(train_size=1, heldout_size=heldout_size, download=False)
    images = mnist.heldout_x if pool == 1 else F.avg_pool2d(mnist.heldout_x, pool)
    return images, mnist.heldout_y


def _size(options: dict, name: str) -> int:
    value = options.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"options[{name!r}] must be a positive int, got {value!r}")
    return value


def _accuracy(model, state: dict, images, labels) -> float:
    import torch

    model.load_state_dict(state, strict=True)
    model.eval()
    with torch.no_grad():
        predictions = torch.cat([model(images[i:i + 500]).argmax(dim=1) for i in range(0, len(labels), 500)])
    return (predictions == labels).double().mean().item()


def mlp(state: dict, options: dict) -> float:
    """Exercise 01: the MLP with ``options["hidden_units"]`` hidden units on 28 × 28 digits."""
    return _accuracy(_mlp(_size(options, "hidden_units")), state, *heldout_digits(_size(options, "heldout_size")))


def tiny_resnet(state: dict, options: dict) -> float:
    """Exercise 05: the small ResNet of the text's residual blocks on 14 × 14 digits (2 × 2 average pooling)."""
    return _accuracy(_tiny_resnet(), state, *heldout_digits(_size(options, "heldout_size"), pool=2))


EVALUATIONS: dict[str, tuple[Callable[[dict, dict], float], Callable[[dict], Any]]] = {
    # name: (the evaluation, the architecture it loads the state into, built from the options)
    "mlp": (mlp, lambda options: _mlp(_size(options, "hidden_units"))),
    "tiny_resnet": (tiny_resnet, lambda options: _tiny_resnet()),
}


def evaluation(name: Any) -> str:
    """The registered evaluation that ``name`` (``"course_lib.grading.heldout:NAME"``) designates; a ValueError
    for any other name."""
    if not isinstance(name, str) or not name.startswith(PREFIX) or name[len(PREFIX):] not in EVALUATIONS:
        raise ValueError(f"evaluate must be one of {sorted(PREFIX + n for n in EVALUATIONS)}, got {name!r}")
    return name[len(PREFIX):]


# ----------------------------------------------------------------------------------------------------------
# From a record to an accuracy
# ----------------------------------------------------------------------------------------------------------

def decode_state(encoded: Any, expected: dict) -> dict:
    """The tensors of an encoded state_dict (`course_lib.grading.evidence.encode`), checked against ``expected``
    (the prescribed architecture's own state_dict): the same keys, and for each the same shape and dtype, a value
    list of that length, every value a finite number of magnitude at most `MAX_MAGNITUDE`. A ValueError says
    which expectation is not met, naming only what was expected."""
    import torch

    mapping = encoded.get("mapping") if isinstance(encoded, dict) else None
    if not isinstance(mapping, dict) or set(mapping) != set(expected):
        raise ValueError(f"the parameters should be a state_dict with the keys {sorted(expected)}")
    state = {}
    for key, want in expected.items():
        record = mapping[key].get("tensor") if isinstance(mapping[key], dict) else None
        if not isinstance(record, dict) or record.get("shape") != list(want.shape) \
                or record.get("dtype") != str(want.dtype):
            raise ValueError(f"{key} should be a {want.dtype} tensor of shape {tuple(want.shape)}")
        values = record.get("values")
        if not isinstance(values, list) or len(values) != want.numel() or not all(
                type(v) in (int, float) and abs(v) <= MAX_MAGNITUDE for v in values):  # NaN compares False
            raise ValueError(f"{key} should hold {want.numel()} finite values of magnitude at most {MAX_MAGNITUDE:g}")
        state[key] = torch.tensor(values, dtype=want.dtype).reshape(want.shape)
    return state


def accuracy_of(encoded_state: Any, name: str, options: dict) -> float:
    """The held-out accuracy of the architecture that evaluation ``name`` builds from ``options``, with the
    parameters of ``encoded_state``. Any problem with the state is a ValueError naming what was expected."""
    evaluate, architecture = EVALUATIONS[evaluation(name)]
    if not isinstance(options, dict):
        raise ValueError(f"options must be a dict, got {type(options).__name__}")
    expected = architecture(options).state_dict()
    return evaluate(decode_state(encoded_state, expected), options)
