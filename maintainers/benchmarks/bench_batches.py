"""One epoch of MNIST mini-batches: course_lib's DeviceBatches against torch.utils.data.DataLoader.

    python maintainers/benchmarks/bench_batches.py [--batch-sizes 64 256] [--repeats 5] [--device cpu|cuda]

Three ways to deliver every training digit once, shuffled, as (x, y) batches on the device:

- DeviceBatches: tensors already on the device; one randperm per epoch, one indexing per batch.
- DataLoader(TensorDataset): the same tensors, indexed sample by sample and collated by torch.
- DataLoader(PIL + ToTensor): the usual torchvision pipeline, uint8 images turned into tensors per sample.

Each epoch ends when the last batch is on the device (synchronized). Printed: the median seconds per
epoch over several epochs, and each DataLoader's time divided by DeviceBatches' (measured in this run).
"""

from __future__ import annotations

import argparse

import torch
import torchvision.transforms as T

from course_lib.data import MNIST_MEAN, MNIST_STD, DeviceBatches, DigitImages, load_mnist, mnist_digits
from course_lib.runtime import choose_device, default_threads
from course_lib.timing import median_time


def epoch_seconds(batches, device: torch.device, repeats: int) -> float:
    def one_epoch():
        for x, y in batches:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
    return median_time(one_epoch, repeats=repeats, warmup=1, device=device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default=None, help="cpu, cuda, mps (default: COURSE_DEVICE or the best available)")
    args = parser.parse_args()
    torch.set_num_threads(default_threads())
    device = choose_device(args.device)
    mnist = load_mnist(device="cpu")
    x_cpu, y_cpu = mnist.train_x, mnist.train_y
    x_dev, y_dev = x_cpu.to(device), y_cpu.to(device)
    digits = mnist_digits()
    images = DigitImages(digits.train_x, digits.train_y, T.Compose([T.ToTensor(), T.Normalize([MNIST_MEAN], [MNIST_STD])]))
    pin = device.type == "cuda"
    print(f"{x_cpu.shape[0]} digits, device {device}, {torch.get_num_threads()} torch thread(s), median of {args.repeats} epochs")
    print(f"{'batch':>6} {'DeviceBatches':>14} {'DataLoader(tensors)':>20} {'ratio':>6} {'DataLoader(PIL)':>16} {'ratio':>6}")
    for batch_size in args.batch_sizes:
        ours = epoch_seconds(DeviceBatches(x_dev, y_dev, batch_size=batch_size, generator=torch.Generator().manual_seed(0)), device, args.repeats)
        tensors = epoch_seconds(torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x_cpu, y_cpu), batch_size=batch_size,
                                                            shuffle=True, pin_memory=pin), device, args.repeats)
        pil = epoch_seconds(torch.utils.data.DataLoader(images, batch_size=batch_size, shuffle=True, pin_memory=pin),
                            device, max(1, args.repeats // 2))
        print(f"{batch_size:>6} {ours * 1e3:>11.1f} ms {tensors * 1e3:>17.1f} ms {tensors / ours:>5.0f}× {pil * 1e3:>13.1f} ms {pil / ours:>5.0f}×")


if __name__ == "__main__":
    main()
