"""The deconvnet of Zeiler & Fergus (2014): projecting one feature back to pixel space.

Take a trained convolutional network made of convolutions, ReLUs and max-pooling, an input x, and one activation
a = A[c, h, w] of some layer. The deconvnet asks which pixels of x made a large, by running the layers backwards
on a signal that starts as a at (c, h, w) and zero everywhere else. Going down through each layer:

- **max-pooling → unpooling with switches.** On the forward pass each pooling window records where its maximum
  came from (the *switches*). Unpooling puts each value back at its switch and zero elsewhere:
  U[switch(i)] += S[i].
- **ReLU → rectification.** The signal itself is passed through a ReLU: relu(S). (Not masked by where the forward
  input was positive: that would be the gradient.)
- **convolution with W → transposed convolution with the same W** ("flipped filters"): S ← conv_transpose(S, W).
  Biases are not used.

The result is an image-sized pattern. This is exactly the gradient of Σ (start ⊙ A) with respect to x, computed
with one change to backpropagation: the ReLU's backward pass returns relu(grad_out) instead of
grad_out·[input > 0]. `modified_backprop` computes that gradient with autograd (rule "deconv"), *guided
backpropagation* (rule "guided", Springenberg et al. 2015: [input > 0]·relu(grad_out)) or the plain gradient
("vanilla"); the explicit `DeconvNet` and the gradient path agree to the last bit in float64 — a useful check that
the explicit mirror is right.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from course_lib.sequential import leaf_modules

SUPPORTED = (nn.Conv2d, nn.ReLU, nn.MaxPool2d, nn.Flatten, nn.Linear, nn.Dropout, nn.Identity)


def unpool(signal: Tensor, switches: Tensor, input_shape: torch.Size) -> Tensor:
    """Max-unpooling: each value of ``signal`` (N, C, h, w) goes to the input position its window's maximum came from
    (``switches``, flat indices into H·W as returned by ``max_pool2d(..., return_indices=True)``); zeros elsewhere.
    Values of overlapping windows that share a switch are added."""
    n, c = signal.shape[:2]
    out = torch.zeros(n, c, input_shape[-2] * input_shape[-1], dtype=signal.dtype, device=signal.device)
    out.scatter_add_(2, switches.reshape(n, c, -1), signal.reshape(n, c, -1))
    return out.reshape(n, c, input_shape[-2], input_shape[-1])


class _ModifiedReLU(torch.autograd.Function):
    """ReLU forward; backward by ``rule``: "deconv" relu(g), "guided" [x > 0]·relu(g), "vanilla" [x > 0]·g."""

    @staticmethod
    def forward(ctx, x: Tensor, rule: str) -> Tensor:
        ctx.save_for_backward(x)
        ctx.rule = rule
        return x.clamp_min(0)

    @staticmethod
    def backward(ctx, grad: Tensor):
        (x,) = ctx.saved_tensors
        if ctx.rule == "deconv":
            return grad.clamp_min(0), None
        if ctx.rule == "guided":
            return grad.clamp_min(0) * (x > 0), None
        return grad * (x > 0), None


def _start_signal(activation: Tensor, channel: int, position) -> Tensor:
    """Zero except channel ``channel``: at its largest value ("max"), at (h, w), or everywhere ("all")."""
    if not 0 <= channel < activation.shape[1]:
        raise ValueError(f"channel must be in [0, {activation.shape[1] - 1}], got {channel}")
    start = torch.zeros_like(activation)
    if activation.dim() == 2:  # a Linear layer: one value per unit
        start[:, channel] = activation[:, channel]
        return start
    n, _, h, w = activation.shape
    if position == "all":
        start[:, channel] = activation[:, channel]
    elif position == "max":
        where = activation[:, channel].reshape(n, -1).argmax(dim=1)
        rows, cols = where // w, where % w
        start[torch.arange(n), channel, rows, cols] = activation[torch.arange(n), channel, rows, cols]
    elif isinstance(position, tuple) and len(position) == 2 and 0 <= position[0] < h and 0 <= position[1] < w:
        start[:, channel, position[0], position[1]] = activation[:, channel, position[0], position[1]]
    else:
        raise ValueError(f"position must be 'max', 'all' or (row, column) inside {h}×{w}, got {position!r}")
    return start


class DeconvNet:
    """The mirror of a Sequential network of Conv2d, ReLU, MaxPool2d (and Flatten, Linear, Dropout in eval mode)."""

    def __init__(self, model: nn.Module):
        self.model = model
        self.layers = leaf_modules(model)
        for name, m in self.layers:
            if not isinstance(m, SUPPORTED):
                raise ValueError(f"model: layer {name!r} is a {type(m).__name__}; the deconvnet mirrors only "
                                 f"{', '.join(t.__name__ for t in SUPPORTED)}")
        self.names = [n for n, _ in self.layers]

    def _index(self, layer: str) -> int:
        if layer not in self.names:
            raise ValueError(f"layer must be one of {self.names}, got {layer!r}")
        return self.names.index(layer)

    @torch.no_grad()
    def forward(self, x: Tensor, layer: str) -> tuple[Tensor, list]:
        """The activation of ``layer`` and what each layer up to it recorded (switches, input shapes)."""
        records = []
        for name, m in self.layers[: self._index(layer) + 1]:
            if isinstance(m, nn.MaxPool2d):
                y, switches = F.max_pool2d(x, m.kernel_size, m.stride, m.padding, m.dilation, m.ceil_mode,
                                           return_indices=True)
                records.append((switches, x.shape))
            else:
                y = m(x) if not isinstance(m, nn.Dropout) else x  # dropout is the identity at test time
                records.append(x.shape)
            x = y
        return x, records

    @torch.no_grad()
    def backward(self, signal: Tensor, layer: str, records: list) -> Tensor:
        """Run ``signal`` (shaped like the activation of ``layer``) down to pixel space."""
        for (name, m), record in zip(reversed(self.layers[: self._index(layer) + 1]), reversed(records)):
            if isinstance(m, nn.ReLU):
                signal = signal.clamp_min(0)  # rectification of the signal itself
            elif isinstance(m, nn.MaxPool2d):
                switches, shape = record
                signal = unpool(signal, switches, shape)
            elif isinstance(m, nn.Conv2d):
                # a strided convolution's input can be up to stride − 1 rows/columns longer than the transposed
                # convolution's default output: output_padding restores the size (and the taps that reach them)
                extra = [record[-2 + i] - ((signal.shape[-2 + i] - 1) * m.stride[i] - 2 * m.padding[i]
                                           + m.dilation[i] * (m.kernel_size[i] - 1) + 1) for i in (0, 1)]
                signal = F.conv_transpose2d(signal, m.weight, None, m.stride, m.padding, tuple(extra), m.groups,
                                            m.dilation)
            elif isinstance(m, nn.Linear):
                signal = signal @ m.weight
            elif isinstance(m, nn.Flatten):
                signal = signal.reshape(record)
        return signal

    def project(self, x: Tensor, layer: str, channel: int, position="max") -> Tensor:
        """The deconvnet image (shaped like x) of ``channel`` of ``layer`` at ``position`` ("max", (h, w), "all")."""
        activation, records = self.forward(x, layer)
        return self.backward(_start_signal(activation, channel, position), layer, records)


def modified_backprop(model: nn.Module, x: Tensor, layer: str, channel: int, position="max",
                      rule: str = "deconv") -> Tensor:
    """∂ Σ(start ⊙ A_layer) / ∂x with the ReLU backward rule ``rule`` ("deconv", "guided", "vanilla"), by autograd;
    ``start`` as in `DeconvNet.project`."""
    if rule not in ("deconv", "guided", "vanilla"):
        raise ValueError(f"rule must be 'deconv', 'guided' or 'vanilla', got {rule!r}")
    layers = DeconvNet(model).layers
    names = [n for n, _ in layers]
    if layer not in names:
        raise ValueError(f"layer must be one of {names}, got {layer!r}")
    x = x.detach().clone().requires_grad_(True)
    a = x
    for name, m in layers[: names.index(layer) + 1]:
        if isinstance(m, nn.ReLU):
            a = _ModifiedReLU.apply(a, rule)
        elif not isinstance(m, nn.Dropout):
            a = m(a)
    a.backward(_start_signal(a.detach(), channel, position))
    return x.grad
