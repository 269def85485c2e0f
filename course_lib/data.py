"""The course's data: MNIST (downloaded or local), the XOR-parity task, and device-resident batches.

Where MNIST lives
-----------------
One data directory holds everything: ``COURSE_DATA_DIR`` if set, else ``data/`` at the top of the
course. MNIST's four files sit in ``<data dir>/MNIST/raw/`` in torchvision's layout, gzipped
(checked against torchvision's MD5 sums) or already unpacked::

    train-images-idx3-ubyte.gz   train-labels-idx1-ubyte.gz     60 000 training digits
    t10k-images-idx3-ubyte.gz    t10k-labels-idx1-ubyte.gz      10 000 test digits

When the training files are missing, `load_mnist` downloads them through torchvision if the data
directory is writable and ``COURSE_OFFLINE`` is not set; with no network it goes on with what is
there. With the test split alone, it splits those 10 000 digits into a training part and a held-out
part (a fixed permutation drawn with seed 0: 8 000 and 2 000 digits) and says so in one line.

Timing with the test split alone
--------------------------------
``COURSE_SIMULATE_FULL_MNIST=1`` stands in for the full download where only the test split exists:
the 8 000 training digits are repeated up to MNIST's 60 000 and the 2 000 held-out ones up to
10 000, and a line says so. Every experiment then takes as long as it would with the real dataset
(``maintainers/benchmarks/time_lectures.py`` measures the lectures this way), but learns from 8 000 distinct
digits only: accuracies are not those of the full dataset.

Device-resident batches
-----------------------
`DeviceBatches` cuts shuffled mini-batches out of tensors that already live on the device: one
``randperm`` per epoch and one indexing per batch, with no per-sample Python and no copies between
host and device (compare ``torch.utils.data.DataLoader``, which indexes and collates sample by
sample; ``maintainers/benchmarks/bench_batches.py`` measures the difference).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import struct
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch
from PIL import Image

DATA_ENV = "COURSE_DATA_DIR"
OFFLINE_ENV = "COURSE_OFFLINE"
SIMULATE_ENV = "COURSE_SIMULATE_FULL_MNIST"

# The four files and their MD5 sums, as torchvision publishes them (``torchvision.datasets.MNIST.resources``; a test
# keeps the two equal). Written out, not read from torchvision: importing torchvision takes over a second, and every
# notebook and every graded submission imports this module, while only a download needs torchvision.
MNIST_MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
TRAIN_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz")
TEST_FILES = ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")

# Mean and standard deviation of MNIST's training pixels (scaled to [0, 1]).
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081

# With only the test split: how many of its 10 000 digits train, and the seed of the fixed split.
TEST_ONLY_TRAIN = 8_000
TEST_ONLY_SEED = 0
# The sizes of the real splits, which COURSE_SIMULATE_FULL_MNIST=1 fills by repetition.
FULL_TRAIN, FULL_TEST = 60_000, 10_000

_IDX_DTYPES = {0x08: torch.uint8}


def data_dir() -> Path:
    """The one folder the course keeps its datasets in (``COURSE_DATA_DIR`` or ``<course>/data``)."""
    configured = os.environ.get(DATA_ENV)
    if configured:
        return Path(configured).expanduser().resolve()
    return Path(__file__).resolve().parent.parent / "data"


def read_idx(path: str | Path) -> torch.Tensor:
    """Read an IDX file (LeCun's MNIST format), gzipped or not, into a uint8 tensor.

    Format: two zero bytes, a type byte (0x08 = unsigned byte), the number of dimensions d, then d
    big-endian 32-bit sizes and the data in C order. Images give (N, 28, 28), labels (N,).
    """
    path = Path(path)
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise ValueError(f"{path} is not an IDX file of unsigned bytes")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path} is truncated: {len(raw)} bytes, shorter than its {header}-byte header")
    shape = struct.unpack(f">{ndim}I", raw[4:header])  # ndim big-endian (>) unsigned 32-bit (I) sizes
    expected = header + int(torch.Size(shape).numel())
    if len(raw) != expected:
        raise ValueError(f"{path} is truncated or padded: {len(raw)} bytes, the header announces {expected}")
    return torch.frombuffer(bytearray(raw[header:]), dtype=torch.uint8).reshape(shape)


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _find(raw_dir: Path, name: str) -> Path | None:
    """The gzipped file if present (its MD5 is checked), else the unpacked one, else None."""
    packed = raw_dir / name
    if packed.exists():
        digest = _md5(packed)
        if digest != MNIST_MD5[name]:
            raise ValueError(
                f"{packed} is damaged: its MD5 is {digest}, torchvision's is {MNIST_MD5[name]}. "
                "Delete it and download it again."
            )
        return packed
    unpacked = raw_dir / name[: -len(".gz")]
    return unpacked if unpacked.exists() else None


_download_failures: dict[Path, str] = {}


def _try_download(root: Path) -> str | None:
    """Download MNIST into ``root/MNIST/raw`` through torchvision; return why not, or None on success.

    A failed download is not tried again in the same process: offline, every later load goes
    straight to the local files.
    """
    if root in _download_failures:
        return _download_failures[root]
    if os.environ.get(OFFLINE_ENV, "").strip().lower() in {"1", "true", "yes", "on"}:
        return f"{OFFLINE_ENV} is set"
    probe = root
    while not probe.exists():
        probe = probe.parent
    if not os.access(probe, os.W_OK):
        return f"{root} is not writable"
    try:
        import torchvision  # here, not at the top: see MNIST_MD5

        torchvision.datasets.MNIST(root=str(root), train=True, download=True)
    except Exception as error:  # no network, a mirror down, a proxy: all mean "use local files"
        first_line = (str(error).strip().splitlines() or [""])[0]
        _download_failures[root] = f"the download failed: {error.__class__.__name__}: {first_line}"
        return _download_failures[root]
    return None


@lru_cache(maxsize=4)
def _read_split(images: Path, labels: Path) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = read_idx(images), read_idx(labels)
    if x.ndim != 3 or y.ndim != 1 or x.shape[0] != y.shape[0]:
        raise ValueError(f"{images.name} {tuple(x.shape)} and {labels.name} {tuple(y.shape)} do not describe one dataset")
    return x, y.long()


@dataclass(frozen=True)
class MNISTData:
    """MNIST tensors: labels (N,) int64 in 0..9; images (N, 1, 28, 28) float32 on a device from
    `load_mnist`, or (N, 28, 28) uint8 on the CPU from `mnist_digits`."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    heldout_x: torch.Tensor
    heldout_y: torch.Tensor
    source: str  # where the digits came from, in words

    def __repr__(self) -> str:
        return (
            f"MNISTData(train {tuple(self.train_x.shape)}, held-out {tuple(self.heldout_x.shape)}, "
            f"on {self.train_x.device}; {self.source})"
        )


_announced: set[str] = set()


def _announce(line: str) -> None:
    if line not in _announced:
        _announced.add(line)
        print(line)


def simulate_full_mnist() -> bool:
    """True when ``COURSE_SIMULATE_FULL_MNIST`` asks to repeat the test split up to the full dataset's sizes."""
    value = os.environ.get(SIMULATE_ENV, "").strip().lower()
    if value in {"", "0", "false", "no", "off"}:
        return False
    if value in {"1", "true", "yes", "on"}:
        return True
    raise ValueError(f"{SIMULATE_ENV}={value!r}: use 1 (repeat the offline digits to 60 000) or 0")


def _repeat_to(t: torch.Tensor, size: int) -> torch.Tensor:
    """``t`` repeated along its first dimension and cut to ``size`` rows."""
    copies = -(-size // t.shape[0])
    return t.repeat(copies, *([1] * (t.dim() - 1)))[:size]


def mnist_digits(train_size: int | None = None, heldout_size: int | None = None, download: bool = True) -> MNISTData:
    """MNIST as stored: the first ``train_size`` training and ``heldout_size`` held-out digits, as uint8
    images (N, 28, 28) with values 0..255 and int64 labels, on the CPU.

    With the full dataset the held-out digits are the official test set; with the test split alone see
    the module's docstring. A size larger than what is available is cut to what is available, with a
    one-line notice. `load_mnist` turns these into normalized float tensors on a device.
    """
    root = data_dir()
    raw_dir = root / "MNIST" / "raw"
    found = {name: _find(raw_dir, name) for name in MNIST_MD5}
    why_no_download = None
    if download and not all(found[name] for name in TRAIN_FILES):
        why_no_download = _try_download(root)
        found = {name: _find(raw_dir, name) for name in MNIST_MD5}
    if not all(found[name] for name in TEST_FILES):
        detail = f" (no download: {why_no_download})" if why_no_download else ""
        raise FileNotFoundError(
            f"MNIST is not in {raw_dir}{detail}. Put at least {TEST_FILES[0]} and {TEST_FILES[1]} there "
            f"(all four files, with {TRAIN_FILES[0]} and {TRAIN_FILES[1]}, for the full dataset), "
            f"or set {DATA_ENV} to a folder that holds MNIST/raw/."
        )

    test_x, test_y = _read_split(found[TEST_FILES[0]], found[TEST_FILES[1]])
    if all(found[name] for name in TRAIN_FILES):
        train_x, train_y = _read_split(found[TRAIN_FILES[0]], found[TRAIN_FILES[1]])
        heldout_x, heldout_y = test_x, test_y
        source = f"MNIST train (60 000) and test (10 000) from {raw_dir}"
    else:
        order = torch.randperm(test_x.shape[0], generator=torch.Generator().manual_seed(TEST_ONLY_SEED))
        train_idx, heldout_idx = order[:TEST_ONLY_TRAIN], order[TEST_ONLY_TRAIN:]
        train_x, train_y = test_x[train_idx], test_y[train_idx]
        heldout_x, heldout_y = test_x[heldout_idx], test_y[heldout_idx]
        source = (
            f"test split only, from {raw_dir}: {TEST_ONLY_TRAIN} of its digits train, "
            f"{test_x.shape[0] - TEST_ONLY_TRAIN} are held out (fixed split, seed {TEST_ONLY_SEED})"
        )
        if simulate_full_mnist():
            train_x, train_y = _repeat_to(train_x, FULL_TRAIN), _repeat_to(train_y, FULL_TRAIN)
            heldout_x, heldout_y = _repeat_to(heldout_x, FULL_TEST), _repeat_to(heldout_y, FULL_TEST)
            source += (f", repeated to {FULL_TRAIN} and {FULL_TEST} digits ({SIMULATE_ENV}=1: the full dataset's "
                       f"times, not its accuracies)")
        _announce(f"MNIST: {source}.")

    def take(x: torch.Tensor, y: torch.Tensor, size: int | None, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        if size is None:
            size = x.shape[0]
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"{name} must be a positive int, got {size!r}")
        if size > x.shape[0]:
            _announce(f"MNIST: {name}={size} asked for, but only {x.shape[0]} digits are available: using {x.shape[0]}.")
            size = x.shape[0]
        return x[:size].clone(), y[:size].clone()

    train_x, train_y = take(train_x, train_y, train_size, "train_size")
    heldout_x, heldout_y = take(heldout_x, heldout_y, heldout_size, "heldout_size")
    return MNISTData(train_x, train_y, heldout_x, heldout_y, source)


def load_mnist(
    train_size: int | None = None,
    heldout_size: int | None = None,
    device: torch.device | str = "cpu",
    normalize: bool = True,
    download: bool = True,
) -> MNISTData:
    """MNIST as float tensors on ``device``: images (N, 1, 28, 28), labels (N,); sizes as in `mnist_digits`.

    Pixels are scaled to [0, 1], then standardized with MNIST's mean and standard deviation when
    ``normalize`` is true: x ← (x/255 − 0.1307) / 0.3081.
    """
    digits = mnist_digits(train_size, heldout_size, download)

    def as_float(images: torch.Tensor) -> torch.Tensor:
        x = images.to(device=device, dtype=torch.float32).unsqueeze(1) / 255.0
        return (x - MNIST_MEAN) / MNIST_STD if normalize else x

    return MNISTData(as_float(digits.train_x), digits.train_y.to(device), as_float(digits.heldout_x),
                     digits.heldout_y.to(device), digits.source)


class DigitImages(torch.utils.data.Dataset):
    """Digits served one at a time, as torchvision's datasets serve them: ``dataset[i]`` turns uint8 image i
    (28, 28) into a PIL image, applies ``transform`` (e.g. ``ToTensor`` then ``Normalize``) and returns it
    with its label. This is what a ``DataLoader`` iterates over, sample by sample, for data that does not fit
    in memory; compare `DeviceBatches`, which cuts whole batches out of tensors already on the device.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform=None):
        if images.dtype != torch.uint8 or images.ndim != 3:
            raise ValueError(f"images must be uint8 of shape (N, H, W), got {images.dtype} {tuple(images.shape)}")
        if labels.shape != images.shape[:1]:
            raise ValueError(f"labels must have shape ({images.shape[0]},), got {tuple(labels.shape)}")
        self.images, self.labels, self.transform = images.cpu().numpy(), labels.cpu(), transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        image = Image.fromarray(self.images[index])
        return (self.transform(image) if self.transform is not None else image), self.labels[index]


def xor_parity(
    num_samples: int,
    n_active: int,
    num_bits: int = 8,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
) -> tuple[torch.Tensor, torch.Tensor]:
    """The g_infty paper's XOR task: ``num_bits`` random bits, the target is the parity of the first ``n_active``.

    x ∈ {0, 1}^(num_samples × num_bits), each bit Bernoulli(1/2);  y = (x_1 + … + x_n) mod 2, shape
    (num_samples, 1), both float32. With n_active = 0 the target is always 0; the remaining bits are
    distractors. Bits are drawn on the CPU from ``generator`` (so a seed gives the same data on any
    device), then moved to ``device``.
    """
    if not isinstance(num_bits, int) or num_bits < 1:
        raise ValueError(f"num_bits must be a positive int, got {num_bits!r}")
    if not isinstance(n_active, int) or not 0 <= n_active <= num_bits:
        raise ValueError(f"n_active must be an int between 0 and num_bits={num_bits}, got {n_active!r}")
    if not isinstance(num_samples, int) or num_samples < 1:
        raise ValueError(f"num_samples must be a positive int, got {num_samples!r}")
    bits = torch.randint(0, 2, (num_samples, num_bits), generator=generator)
    parity = bits[:, :n_active].sum(dim=1, keepdim=True) % 2
    return bits.float().to(device), parity.float().to(device)


class DeviceBatches:
    """Mini-batches cut from tensors that already live on one device.

    ``DeviceBatches(x, y, batch_size=64)`` yields ``(x[idx], y[idx])`` for consecutive blocks ``idx``
    of a fresh random permutation of 0..N−1 at every epoch: sampling without replacement, every
    sample exactly once per epoch. The last batch is smaller when B does not divide N, unless
    ``drop_last``. The permutation is drawn on the CPU from ``generator`` (seeded: the same order on
    every device) and moved once per epoch. Shapes: every tensor (N, ...) → batches (B, ...).
    """

    def __init__(
        self,
        *tensors: torch.Tensor,
        batch_size: int,
        shuffle: bool = True,
        drop_last: bool = False,
        generator: torch.Generator | None = None,
    ):
        if not tensors:
            raise ValueError("DeviceBatches needs at least one tensor")
        n = tensors[0].shape[0]
        for t in tensors:
            if t.shape[0] != n:
                raise ValueError(f"tensors must share their first dimension, got {[tuple(t.shape) for t in tensors]}")
            if t.device != tensors[0].device:
                raise ValueError(f"tensors must live on one device, got {[str(t.device) for t in tensors]}")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        if n == 0 or (drop_last and batch_size > n):
            raise ValueError(f"batch_size={batch_size} with drop_last={drop_last} leaves no batch from {n} samples")
        self.tensors = tensors
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.generator = generator

    def __len__(self) -> int:
        n = self.tensors[0].shape[0]
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self):
        n = self.tensors[0].shape[0]
        stop = n - n % self.batch_size if self.drop_last else n
        if self.shuffle:
            order = torch.randperm(n, generator=self.generator).to(self.tensors[0].device)
            for start in range(0, stop, self.batch_size):
                idx = order[start: start + self.batch_size]
                yield tuple(t[idx] for t in self.tensors)
        else:
            for start in range(0, stop, self.batch_size):
                yield tuple(t[start: start + self.batch_size] for t in self.tensors)
