"""Attribution maps: which pixels of x does a class score s_t(x) depend on?

Four answers, for a network f with class scores s = f(x) (N, K) and an input x (N, C, H, W); ``target`` picks the
score s_t of each image (an int for all images or a LongTensor of N class indices):

- **saliency** (Simonyan et al. 2014): the size of the gradient, S = |∂s_t/∂x|, shape (N, C, H, W). Which pixels,
  nudged, change the score most.
- **modified backpropagation**: the same gradient computed with another backward rule at every ReLU (the rules of
  `deconvnet.modified_backprop`, started at the class score with ∂s_t/∂s_t = 1): "vanilla" g·[x > 0] (the plain
  gradient, signed), "deconv" relu(g) (Zeiler & Fergus' deconvnet), "guided" [x > 0]·relu(g) (guided
  backpropagation, Springenberg et al. 2015).
- **occlusion** (Zeiler & Fergus 2014): cover a k_h×k_w patch of every channel with a baseline value b, slide it
  with stride (s_h, s_w), and record the drop of the score, Δ_p = s_t(x) − s_t(x with patch p set to b). A pixel's
  attribution is the mean of Δ_p over the patches p that cover it:
      O[n, c, i, j] = Σ_{p ∋ (i, j)} Δ_p / #{p ∋ (i, j)}.
  The patch offsets along an axis of length H are 0, s, 2s, …, ⌈(H − k)/s⌉·s; the last patch is cut at the border
  (captum's `Occlusion` with the same window, stride and baseline computes the same map). Every pixel is covered
  when s ≤ k. No gradient: the map answers "what if this region were missing?" directly, at one forward pass per
  patch.
- **Grad-CAM** (Selvaraju et al. 2017): for the activations A (N, K, h, w) of a layer, weight each channel by its
  spatially averaged gradient and rectify the weighted sum:
      α_k = (1/(h·w)) Σ_{i,j} ∂s_t/∂A[k, i, j],      G = relu(Σ_k α_k A_k),      shape (N, 1, h, w),
  optionally resized to (H, W) by interpolation (captum's `LayerGradCam` with ``relu_attributions=True``, then
  `LayerAttribution.interpolate`). When the layer is followed only by global average pooling and a linear
  classifier with weights W (K_classes, K), ∂s_t/∂A[k, i, j] = W[t, k]/(h·w) everywhere, so
  G = relu(Σ_k W[t, k] A_k)/(h·w): the class activation map (CAM) of Zhou et al. (2016), rectified and divided by h·w.

All functions leave the model's parameters and ``x`` unchanged and return detached tensors.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from course_lib.visualization.deconvnet import DeconvNet, _ModifiedReLU

RULES = ("vanilla", "deconv", "guided")


def _check_input(x: Tensor) -> None:
    if not isinstance(x, Tensor) or x.dim() != 4:
        raise ValueError(f"x must be a tensor of shape (N, C, H, W), got "
                         f"{tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__}")


def _targets(target, scores: Tensor) -> Tensor:
    """The class index of each image as a LongTensor (N,), checked against the K scores."""
    n, k = scores.shape
    t = torch.as_tensor(target, device=scores.device)
    if t.dtype not in (torch.int64, torch.int32) or t.dim() > 1 or (t.dim() == 1 and len(t) != n):
        raise ValueError(f"target must be an int or {n} class indices, got {target!r}")
    t = t.long().expand(n)
    if bool(((t < 0) | (t >= k)).any()):
        raise ValueError(f"target must be in [0, {k - 1}], got {target!r}")
    return t


def target_score(model: nn.Module, x: Tensor, target) -> Tensor:
    """s_t(x): the score of class ``target`` of each image, shape (N,)."""
    scores = model(x)
    if scores.dim() != 2:
        raise ValueError(f"model must return class scores of shape (N, K), got {tuple(scores.shape)}")
    t = _targets(target, scores)
    return scores.gather(1, t[:, None])[:, 0]


def _input_gradient(model: nn.Module, x: Tensor, target) -> Tensor:
    _check_input(x)
    x = x.detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(target_score(model, x, target).sum(), x)
    return grad


def saliency(model: nn.Module, x: Tensor, target) -> Tensor:
    """|∂s_t/∂x|, shape (N, C, H, W) (captum's `Saliency` with ``abs=True``)."""
    return _input_gradient(model, x, target).abs()


def class_backprop(model: nn.Module, x: Tensor, target, rule: str = "guided") -> Tensor:
    """∂s_t/∂x with every ReLU's backward rule replaced by ``rule`` ("vanilla", "deconv", "guided"; see
    `deconvnet.modified_backprop`), shape (N, C, H, W). ``model`` is a Sequential of the layers `DeconvNet` accepts.
    "guided" is captum's `GuidedBackprop`, "deconv" its `Deconvolution`, "vanilla" the plain gradient."""
    if rule not in RULES:
        raise ValueError(f"rule must be one of {RULES}, got {rule!r}")
    _check_input(x)
    x = x.detach().clone().requires_grad_(True)
    a = x
    for _, m in DeconvNet(model).layers:
        if isinstance(m, nn.ReLU):
            a = _ModifiedReLU.apply(a, rule)
        elif not isinstance(m, nn.Dropout):  # dropout is the identity at test time
            a = m(a)
    if a.dim() != 2:
        raise ValueError(f"model must return class scores of shape (N, K), got {tuple(a.shape)}")
    t = _targets(target, a)
    (grad,) = torch.autograd.grad(a.gather(1, t[:, None]).sum(), x)
    return grad


def _pair(value, name: str) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, int) and v >= 1 for v in pair):
        raise ValueError(f"{name} must be a positive int or a pair of them, got {value!r}")
    return pair


def _offsets(size: int, k: int, s: int) -> list[int]:
    """0, s, 2s, …, ⌈(size − k)/s⌉·s: the patch offsets along one axis."""
    return [i * s for i in range(math.ceil((size - k) / s) + 1)]


@torch.no_grad()
def occlusion(model: nn.Module, x: Tensor, target, window=4, stride=2, baseline: float = 0.0,
              batch_size: int = 1024) -> Tensor:
    """O[n, c, i, j] = mean over the patches p covering (i, j) of s_t(x) − s_t(x with p set to ``baseline``),
    shape (N, C, H, W) (equal in every channel: a patch covers all channels). ``window`` and ``stride`` are ints or
    (height, width) pairs with stride ≤ window ≤ the image; ``batch_size`` occluded images are scored at a time."""
    _check_input(x)
    n, c, h, w = x.shape
    (kh, kw), (sh, sw) = _pair(window, "window"), _pair(stride, "stride")
    if kh > h or kw > w:
        raise ValueError(f"window must fit in the {h}×{w} image, got {window!r}")
    if sh > kh or sw > kw:
        raise ValueError(f"stride must not exceed the window (or some pixels are never covered), got stride "
                         f"{stride!r} for window {window!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    scores = model(x)
    t = _targets(target, scores)
    clean = scores.gather(1, t[:, None])[:, 0]
    masks = []
    for top in _offsets(h, kh, sh):
        for left in _offsets(w, kw, sw):
            m = torch.zeros(h, w, dtype=x.dtype, device=x.device)
            m[top: top + kh, left: left + kw] = 1  # cut at the border
            masks.append(m)
    masks = torch.stack(masks)  # (P, H, W)
    p = len(masks)
    occluded_scores = []
    flat_t = t.repeat_interleave(p)
    for start in range(0, n * p, batch_size):
        index = torch.arange(start, min(start + batch_size, n * p), device=x.device)
        images, patches = x[index // p], masks[index % p][:, None]
        occluded = images * (1 - patches) + baseline * patches
        occluded_scores.append(target_score(model, occluded, flat_t[index]))
    drops = clean[:, None] - torch.cat(occluded_scores).reshape(n, p)  # (N, P)
    total = torch.einsum("np,phw->nhw", drops, masks)
    counts = masks.sum(dim=0)
    return (total / counts)[:, None].expand(n, c, h, w).contiguous()


def grad_cam(model: nn.Module, x: Tensor, target, layer: str, size=None, mode: str = "nearest",
             relu: bool = True) -> Tensor:
    """relu(Σ_k α_k A_k) with α_k the spatial mean of ∂s_t/∂A_k, for the output A (N, K, h, w) of the module named
    ``layer`` (a name of ``model.named_modules()``); shape (N, 1, h, w), or (N, 1, *size) when ``size`` is given
    (resized by ``F.interpolate`` with ``mode``). ``relu=False`` returns the sum before the ReLU (which can be negative
    everywhere: a rectified map of zeros)."""
    _check_input(x)
    modules = dict(model.named_modules())
    if layer not in modules or layer == "":
        raise ValueError(f"layer must be one of {[name for name in modules if name]}, got {layer!r}")
    recorded = []
    handle = modules[layer].register_forward_hook(lambda module, inputs, output: recorded.append(output))
    try:
        score = target_score(model, x.detach(), target)
    finally:
        handle.remove()
    (a,) = recorded
    if a.dim() != 4:
        raise ValueError(f"layer must output feature maps (N, K, h, w), {layer!r} gives {tuple(a.shape)}")
    (grad,) = torch.autograd.grad(score.sum(), a)
    alpha = grad.mean(dim=(2, 3), keepdim=True)  # (N, K, 1, 1)
    cam = (alpha * a).sum(dim=1, keepdim=True).detach()
    if relu:
        cam = cam.clamp_min(0)
    if size is not None:
        cam = F.interpolate(cam, size=_pair(size, "size"), mode=mode)
    return cam
