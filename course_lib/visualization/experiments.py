"""The networks lecture 09 looks into (after Khozein, "Hidden Figures", with MNIST in place of CIFAR-10).

- `digit_cnn`: conv 5×5 (1 → 8) → ReLU → max-pool 2 → conv 5×5 (8 → 16) → ReLU → max-pool 2 → linear (784 → 10),
  the shape Zeiler & Fergus' deconvnet mirrors: only convolutions, ReLUs and max-pooling below the classifier.
- `upsampling_autoencoder`: two stride-2 convolutions down (28 → 14 → 7 px) and two upsampling layers back, each
  upsampling layer one of
  "k3s2" (ConvTranspose2d, kernel 3, stride 2: uneven overlap, as in Çallı's MNIST autoencoder, the one lecture 08 prunes),
  "k4s2" (ConvTranspose2d, kernel 4, stride 2: even overlap),
  "resize" (nearest-neighbour ×2, then a 3×3 convolution).
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from tqdm.auto import tqdm
from torch import nn

from course_lib.compression.experiments import train_autoencoder
from course_lib.data import DeviceBatches
from course_lib.optim import Adam
from course_lib.training import fit

UPSAMPLING = ("k3s2", "k4s2", "resize")


def digit_cnn(channels: tuple[int, int] = (8, 16)) -> nn.Sequential:
    c1, c2 = channels
    return nn.Sequential(OrderedDict(
        conv1=nn.Conv2d(1, c1, 5, padding=2), relu1=nn.ReLU(), pool1=nn.MaxPool2d(2),
        conv2=nn.Conv2d(c1, c2, 5, padding=2), relu2=nn.ReLU(), pool2=nn.MaxPool2d(2),
        flatten=nn.Flatten(), fc=nn.Linear(c2 * 7 * 7, 10),
    ))


def train_digit_cnn(images: torch.Tensor, labels: torch.Tensor, epochs: int, seed: int = 0,
                    progress: bool = False) -> nn.Sequential:
    """`digit_cnn` trained with Adam (lr 10⁻³, batches of 64) on ``images`` (N, 1, 28, 28) and ``labels``;
    ``progress`` shows `fit`'s progress bar."""
    torch.manual_seed(seed)
    model = digit_cnn().to(images.device)
    batches = DeviceBatches(images, labels, batch_size=64, generator=torch.Generator().manual_seed(seed))
    fit(model, Adam(model.parameters(), lr=1e-3), nn.functional.cross_entropy, batches, epochs, progress=progress)
    return model.eval()


def _upsample(kind: str, c_in: int, c_out: int) -> nn.Module:
    if kind == "k3s2":
        return nn.ConvTranspose2d(c_in, c_out, 3, stride=2, padding=1, output_padding=1)
    if kind == "k4s2":
        return nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1)
    if kind == "resize":
        return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c_in, c_out, 3, padding=1))
    raise ValueError(f"kind must be one of {UPSAMPLING}, got {kind!r}")


def upsampling_autoencoder(kind: str, channels: tuple[int, int] = (16, 32)) -> nn.Sequential:
    """28×28 → 14×14×c1 → 7×7×c2 → 14×14×c1 → 28×28×1, upsampling by ``kind`` ("k3s2", "k4s2" or "resize")."""
    c1, c2 = channels
    return nn.Sequential(OrderedDict(
        enc1=nn.Sequential(nn.Conv2d(1, c1, 3, stride=2, padding=1), nn.ReLU()),
        enc2=nn.Sequential(nn.Conv2d(c1, c2, 3, stride=2, padding=1), nn.ReLU()),
        dec1=nn.Sequential(_upsample(kind, c2, c1), nn.ReLU()),
        dec2=_upsample(kind, c1, 1),
    ))


def train_upsampling_autoencoders(images: torch.Tensor, epochs: int, seed: int = 0,
                                  progress: bool = False) -> dict[str, nn.Sequential]:
    """One `upsampling_autoencoder` per kind, each trained like lecture 08's (Adam 10⁻², batches of 64, pixel MSE);
    ``progress`` shows a bar over the kinds."""
    models = {}
    for kind in tqdm(UPSAMPLING, desc="autoencoders", unit="model", disable=not progress, leave=False):
        torch.manual_seed(seed)
        model = upsampling_autoencoder(kind).to(images.device)
        train_autoencoder(model, images, epochs, generator=torch.Generator().manual_seed(seed))
        models[kind] = model.eval()
    return models
