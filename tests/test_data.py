import gzip
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from course_lib import data

COURSE_ROOT = Path(__file__).resolve().parent.parent


def write_idx(path: Path, tensor: torch.Tensor, compress: bool) -> None:
    header = bytes([0, 0, 0x08, tensor.ndim]) + b"".join(s.to_bytes(4, "big") for s in tensor.shape)
    payload = header + tensor.to(torch.uint8).numpy().tobytes()
    path.write_bytes(gzip.compress(payload) if compress else payload)


@pytest.mark.parametrize("compress", [True, False])
def test_read_idx_round_trip(tmp_path, compress):
    images = torch.randint(0, 256, (5, 28, 28), dtype=torch.uint8)
    path = tmp_path / ("images.gz" if compress else "images")
    write_idx(path, images, compress)
    assert torch.equal(data.read_idx(path), images)


def test_read_idx_rejects_truncated_and_foreign_files(tmp_path):
    path = tmp_path / "labels"
    write_idx(path, torch.arange(10), compress=False)
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(ValueError, match="truncated"):
        data.read_idx(path)
    path.write_bytes(b"PK\x03\x04 not an idx file")
    with pytest.raises(ValueError, match="not an IDX file"):
        data.read_idx(path)


def test_missing_data_gives_an_error_naming_files_and_folder(tmp_path, monkeypatch):
    monkeypatch.setenv(data.DATA_ENV, str(tmp_path / "nothing-here"))
    monkeypatch.setenv(data.OFFLINE_ENV, "1")
    with pytest.raises(FileNotFoundError) as error:
        data.load_mnist()
    message = str(error.value)
    assert str(tmp_path / "nothing-here" / "MNIST" / "raw") in message
    for name in data.MNIST_MD5:
        assert name in message
    assert data.DATA_ENV in message and "COURSE_OFFLINE is set" in message


def test_the_written_out_md5_sums_are_torchvisions():
    import torchvision

    assert data.MNIST_MD5 == dict(torchvision.datasets.MNIST.resources)


def test_importing_the_data_module_does_not_import_torchvision():
    """torchvision costs over a second to import; only a download needs it (a fresh interpreter tells)."""
    code = "import sys, course_lib.data; print('torchvision' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_a_damaged_file_is_reported_by_its_md5(tmp_path, monkeypatch):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    (raw / "t10k-images-idx3-ubyte.gz").write_bytes(b"garbage")
    monkeypatch.setenv(data.DATA_ENV, str(tmp_path))
    monkeypatch.setenv(data.OFFLINE_ENV, "1")
    with pytest.raises(ValueError, match="damaged.*MD5"):
        data.load_mnist()


def test_unpacked_synthetic_files_load_with_the_test_only_split(tmp_path, monkeypatch, capsys):
    """Unpacked files carry no MD5 to check; the split logic is the same as for the real data."""
    monkeypatch.setattr(data, "_announced", set())  # each line is printed once per process
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    images = torch.randint(0, 256, (10_000, 28, 28), dtype=torch.uint8)
    labels = torch.arange(10_000) % 10
    write_idx(raw / "t10k-images-idx3-ubyte", images, compress=False)
    write_idx(raw / "t10k-labels-idx1-ubyte", labels, compress=False)
    monkeypatch.setenv(data.DATA_ENV, str(tmp_path))
    monkeypatch.setenv(data.OFFLINE_ENV, "1")
    mnist = data.load_mnist(normalize=False)
    assert mnist.train_x.shape == (8_000, 1, 28, 28) and mnist.heldout_x.shape == (2_000, 1, 28, 28)
    assert mnist.train_x.dtype == torch.float32 and mnist.train_y.dtype == torch.int64
    assert 0.0 <= mnist.train_x.min() and mnist.train_x.max() <= 1.0
    # the two parts are a partition of the 10 000 digits: together they hold every label once
    together = torch.cat([mnist.train_y, mnist.heldout_y])
    assert torch.equal(torch.bincount(together), torch.full((10,), 1_000))
    # and the pixels travelled with their labels: image k of the file has label k % 10
    order = torch.randperm(10_000, generator=torch.Generator().manual_seed(data.TEST_ONLY_SEED))
    assert torch.equal(mnist.train_x[:5, 0] * 255, images[order[:5]].float())
    assert "test split" in capsys.readouterr().out
    larger = data.load_mnist(train_size=9_000, heldout_size=5)
    assert larger.train_x.shape[0] == 8_000 and larger.heldout_x.shape[0] == 5
    assert "train_size=9000 asked for, but only 8000 digits are available" in capsys.readouterr().out
    with pytest.raises(ValueError, match="train_size must be a positive int"):
        data.load_mnist(train_size=0)


def test_simulating_the_full_dataset_repeats_the_test_split_and_says_so(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(data, "_announced", set())  # each line is printed once per process
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    images = torch.randint(0, 256, (10_000, 28, 28), dtype=torch.uint8)
    write_idx(raw / "t10k-images-idx3-ubyte", images, compress=False)
    write_idx(raw / "t10k-labels-idx1-ubyte", torch.arange(10_000) % 10, compress=False)
    monkeypatch.setenv(data.DATA_ENV, str(tmp_path))
    monkeypatch.setenv(data.OFFLINE_ENV, "1")
    plain = data.mnist_digits()
    monkeypatch.setenv(data.SIMULATE_ENV, "1")
    simulated = data.mnist_digits()
    assert simulated.train_x.shape == (60_000, 28, 28) and simulated.heldout_x.shape == (10_000, 28, 28)
    # 7.5 copies of the same 8 000 digits, labels travelling with them; the held-out digits stay apart
    assert torch.equal(simulated.train_x[8_000:16_000], plain.train_x)
    assert torch.equal(simulated.train_y[56_000:], plain.train_y[:4_000])
    assert torch.equal(simulated.heldout_x[8_000:], plain.heldout_x)
    assert "repeated to 60000 and 10000 digits" in capsys.readouterr().out
    monkeypatch.setenv(data.SIMULATE_ENV, "sometimes")
    with pytest.raises(ValueError, match="COURSE_SIMULATE_FULL_MNIST='sometimes'"):
        data.mnist_digits()


def shared_mnist_dir():
    """The real MNIST test split, where this checkout has it (CI points COURSE_DATA_DIR at it)."""
    candidates = [os.environ.get(data.DATA_ENV), COURSE_ROOT.parent / "shared" / "data", COURSE_ROOT / "data"]
    for candidate in candidates:
        if candidate and (Path(candidate) / "MNIST" / "raw" / "t10k-labels-idx1-ubyte.gz").exists():
            return Path(candidate)
    return None


@pytest.mark.skipif(shared_mnist_dir() is None, reason="the real MNIST files are not on this machine")
def test_real_mnist_loads_offline(monkeypatch):
    monkeypatch.setenv(data.DATA_ENV, str(shared_mnist_dir()))
    monkeypatch.setenv(data.OFFLINE_ENV, "1")
    mnist = data.load_mnist(train_size=1_000, heldout_size=500)
    assert mnist.train_x.shape == (1_000, 1, 28, 28) and mnist.heldout_y.shape == (500,)
    # standardized with MNIST's statistics: mean near 0, standard deviation near 1
    assert abs(mnist.train_x.mean().item()) < 0.05 and abs(mnist.train_x.std().item() - 1) < 0.05
    assert set(mnist.train_y.tolist()) == set(range(10))
    full = data.read_idx(shared_mnist_dir() / "MNIST" / "raw" / "t10k-labels-idx1-ubyte.gz")
    assert full[:4].tolist() == [7, 2, 1, 0]  # the well-known first test labels


def test_xor_parity_targets_are_the_parity_of_the_first_bits():
    generator = torch.Generator().manual_seed(0)
    for n_active in range(0, 9):
        x, y = data.xor_parity(512, n_active, generator=generator)
        assert x.shape == (512, 8) and y.shape == (512, 1)
        assert set(x.unique().tolist()) <= {0.0, 1.0}
        expected = x[:, :n_active].sum(dim=1, keepdim=True) % 2
        assert torch.equal(y, expected)
    _, y0 = data.xor_parity(100, 0)
    assert y0.sum() == 0
    x1, y1 = data.xor_parity(100, 1)
    assert torch.equal(y1[:, 0], x1[:, 0])
    with pytest.raises(ValueError, match="n_active"):
        data.xor_parity(10, 9)


def test_device_batches_visit_every_sample_once_per_epoch():
    x = torch.arange(103).float().unsqueeze(1)
    y = torch.arange(103)
    batches = data.DeviceBatches(x, y, batch_size=10, generator=torch.Generator().manual_seed(0))
    assert len(batches) == 11
    epochs = []
    for _ in range(2):
        seen = []
        for xb, yb in batches:
            assert torch.equal(xb[:, 0].long(), yb)  # inputs and targets stay paired
            seen.append(yb)
        sizes = [len(b) for b in seen]
        assert sizes == [10] * 10 + [3]
        order = torch.cat(seen)
        assert sorted(order.tolist()) == list(range(103))  # without replacement
        epochs.append(order)
    assert not torch.equal(epochs[0], epochs[1])  # a fresh permutation each epoch
    assert not torch.equal(epochs[0], torch.arange(103))


def test_device_batches_are_reproducible_and_can_drop_the_last_batch():
    x = torch.randn(50, 3)
    first = [b for (b,) in data.DeviceBatches(x, batch_size=8, generator=torch.Generator().manual_seed(1))]
    second = [b for (b,) in data.DeviceBatches(x, batch_size=8, generator=torch.Generator().manual_seed(1))]
    assert all(torch.equal(a, b) for a, b in zip(first, second))
    dropped = data.DeviceBatches(x, batch_size=8, drop_last=True)
    assert len(dropped) == 6 and [len(b) for (b,) in dropped] == [8] * 6
    ordered = [b for (b,) in data.DeviceBatches(x, batch_size=20, shuffle=False)]
    assert torch.equal(torch.cat(ordered), x)


def test_device_batches_reject_bad_arguments():
    with pytest.raises(ValueError, match="batch_size"):
        data.DeviceBatches(torch.zeros(4), batch_size=0)
    with pytest.raises(ValueError, match="first dimension"):
        data.DeviceBatches(torch.zeros(4), torch.zeros(5), batch_size=2)
    with pytest.raises(ValueError, match="no batch"):
        data.DeviceBatches(torch.zeros(4), batch_size=5, drop_last=True)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_device_batches_stay_on_the_gpu():
    x = torch.randn(64, 2, device="cuda")
    for (xb,) in data.DeviceBatches(x, batch_size=16, generator=torch.Generator().manual_seed(0)):
        assert xb.device.type == "cuda"


def test_mnist_digits_are_the_stored_bytes_and_load_mnist_normalizes_them(tmp_path, monkeypatch):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    images = torch.randint(0, 256, (10_000, 28, 28), dtype=torch.uint8)
    write_idx(raw / "t10k-images-idx3-ubyte", images, compress=False)
    write_idx(raw / "t10k-labels-idx1-ubyte", torch.arange(10_000) % 10, compress=False)
    monkeypatch.setenv(data.DATA_ENV, str(tmp_path))
    monkeypatch.setenv(data.OFFLINE_ENV, "1")
    digits = data.mnist_digits(train_size=100, heldout_size=50)
    assert digits.train_x.dtype == torch.uint8 and digits.train_x.shape == (100, 28, 28)
    floats = data.load_mnist(train_size=100, heldout_size=50)
    expected = (digits.train_x.float().unsqueeze(1) / 255 - data.MNIST_MEAN) / data.MNIST_STD
    torch.testing.assert_close(floats.train_x, expected)
    assert torch.equal(floats.heldout_y, digits.heldout_y)


def test_digit_images_serve_one_transformed_sample_at_a_time():
    import torchvision.transforms as T

    images = torch.randint(0, 256, (6, 28, 28), dtype=torch.uint8)
    labels = torch.arange(6)
    dataset = data.DigitImages(images, labels, T.Compose([T.ToTensor(), T.Normalize([data.MNIST_MEAN], [data.MNIST_STD])]))
    assert len(dataset) == 6
    x, y = dataset[4]
    assert x.shape == (1, 28, 28) and y == 4
    torch.testing.assert_close(x, (images[4].float().unsqueeze(0) / 255 - data.MNIST_MEAN) / data.MNIST_STD)
    batch_x, batch_y = next(iter(torch.utils.data.DataLoader(dataset, batch_size=3)))
    assert batch_x.shape == (3, 1, 28, 28) and batch_y.tolist() == [0, 1, 2]
    pil, _ = data.DigitImages(images, labels)[0]
    assert pil.size == (28, 28)
    with pytest.raises(ValueError, match="uint8"):
        data.DigitImages(images.float(), labels)


# ---------------------------------------------------------------------------------------------------------------
# Where the data directory is, what read_idx accepts, and the messages a student reads.


def test_the_data_directory_defaults_to_data_at_the_top_of_the_course(monkeypatch):
    monkeypatch.delenv(data.DATA_ENV, raising=False)
    assert data.data_dir() == COURSE_ROOT / "data"


def test_read_idx_refuses_foreign_and_short_files_by_name_and_reads_full_32_bit_sizes(tmp_path):
    """The magic is two zero bytes and the type 0x08; a file ends exactly where its header says; every size is a
    big-endian 32-bit number (sizes of 2**24 and more included)."""
    path = tmp_path / "file"

    def error_of(raw: bytes) -> str:
        path.write_bytes(raw)
        with pytest.raises(ValueError) as error:
            data.read_idx(path)
        return str(error.value)

    foreign = f"{path} is not an IDX file of unsigned bytes"
    assert error_of(bytes([0, 1, 8, 1, 0, 0, 0, 1, 5])) == foreign  # second magic byte not zero
    assert error_of(bytes([1, 0, 8, 1, 0, 0, 0, 1, 5])) == foreign  # first magic byte not zero
    assert error_of(bytes([0, 0, 9, 1, 0, 0, 0, 1, 5])) == foreign  # signed bytes
    assert error_of(bytes([0, 0, 8])) == foreign  # shorter than the magic
    # the four magic bytes of a scalar, without its one data byte
    assert error_of(bytes([0, 0, 8, 0])) == f"{path} is truncated or padded: 4 bytes, the header announces 5"
    # a header cut short: two dimensions announced, one and a half sizes present
    assert error_of(bytes([0, 0, 8, 2, 0, 0, 0, 1, 0, 0])) == (
        f"{path} is truncated: 10 bytes, shorter than its 12-byte header")
    path.write_bytes(bytes([0, 0, 8, 0, 7]))
    scalar = data.read_idx(path)
    assert scalar.shape == () and scalar.item() == 7
    # headers announcing 2**24 + 2 labels, and images of 1 × 2**24 pixels, with (almost) no data behind them
    assert error_of(bytes([0, 0, 8, 1, 1, 0, 0, 2, 3, 4])) == (
        f"{path} is truncated or padded: 10 bytes, the header announces {8 + 2**24 + 2}")
    assert error_of(bytes([0, 0, 8, 2, 0, 0, 0, 1, 1, 0, 0, 0])) == (
        f"{path} is truncated or padded: 12 bytes, the header announces {12 + 2**24}")


def write_mnist_files(raw: Path, train: int | None, test: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Unpacked MNIST files of random digits in ``raw`` (no training files when ``train`` is None): their tensors."""
    raw.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator().manual_seed(seed)
    tensors = {}
    for split, size in (("train", train), ("t10k", test)):
        if size is None:
            continue
        tensors[f"{split}_x"] = torch.randint(0, 256, (size, 28, 28), dtype=torch.uint8, generator=generator)
        tensors[f"{split}_y"] = torch.randint(0, 10, (size,), generator=generator)
        write_idx(raw / f"{split}-images-idx3-ubyte", tensors[f"{split}_x"], compress=False)
        write_idx(raw / f"{split}-labels-idx1-ubyte", tensors[f"{split}_y"], compress=False)
    return tensors


class FakeTorchvisionMNIST:
    """Stands in for ``torchvision.datasets.MNIST`` (nothing reaches the network): with ``download=True`` it
    "downloads" by writing the four files, and like torchvision it fails when the files are then missing."""

    calls: list[dict] = []
    failure: Exception | None = None
    sandbox: Path = Path("/nonexistent")

    def __init__(self, root, train: bool = True, download: bool = False):
        type(self).calls.append(dict(root=root, train=train, download=download))
        raw = Path(root) / "MNIST" / "raw"
        if download:
            if type(self).failure is not None:
                raise type(self).failure
            if not raw.resolve().is_relative_to(type(self).sandbox):
                raise PermissionError(f"{root} is outside the test's folder")
            write_mnist_files(raw, train=12, test=7)
        if not all((raw / name[: -len(".gz")]).exists() for name in data.MNIST_MD5):
            raise RuntimeError("Dataset not found. You can use download=True to download it")


@pytest.fixture
def fake_download(monkeypatch, tmp_path):
    """torchvision's MNIST replaced by `FakeTorchvisionMNIST`, a fresh memory of failed downloads and notices."""
    import torchvision

    fake = type("Fake", (FakeTorchvisionMNIST,), {"calls": [], "failure": None, "sandbox": tmp_path.resolve()})
    monkeypatch.setattr(torchvision.datasets, "MNIST", fake)
    monkeypatch.setattr(data, "_download_failures", {})
    monkeypatch.setattr(data, "_announced", set())
    monkeypatch.delenv(data.OFFLINE_ENV, raising=False)
    monkeypatch.delenv(data.SIMULATE_ENV, raising=False)
    return fake


def missing_message(raw: Path, detail: str) -> str:
    return (f"MNIST is not in {raw}{detail}. Put at least t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz "
            "there (all four files, with train-images-idx3-ubyte.gz and train-labels-idx1-ubyte.gz, for the full "
            f"dataset), or set {data.DATA_ENV} to a folder that holds MNIST/raw/.")


def test_missing_training_files_are_downloaded_into_the_data_directory(tmp_path, monkeypatch, fake_download, capsys):
    """By default the files are fetched through torchvision into ``<data dir>/MNIST/raw``, even when the data
    directory does not exist yet (its nearest existing parent is writable); then the full dataset is used."""
    root = tmp_path / "not" / "yet" / "there"
    monkeypatch.setenv(data.DATA_ENV, str(root))
    monkeypatch.setenv(data.OFFLINE_ENV, "0")
    digits = data.mnist_digits()
    assert [(call["root"], call["download"]) for call in fake_download.calls] == [(str(root), True)]
    raw = root / "MNIST" / "raw"
    stored = {split: data.read_idx(raw / f"{split}-images-idx3-ubyte") for split in ("train", "t10k")}
    assert torch.equal(digits.train_x, stored["train"]) and torch.equal(digits.heldout_x, stored["t10k"])
    assert digits.source == f"MNIST train (60 000) and test (10 000) from {raw}"
    assert capsys.readouterr().out == ""


def test_download_false_and_present_training_files_download_nothing(tmp_path, monkeypatch, fake_download):
    monkeypatch.setenv(data.DATA_ENV, str(tmp_path))
    raw = tmp_path / "MNIST" / "raw"
    with pytest.raises(FileNotFoundError) as error:
        data.load_mnist(download=False)
    assert str(error.value) == missing_message(raw, "")
    with pytest.raises(FileNotFoundError) as error:
        data.mnist_digits(download=False)
    assert str(error.value) == missing_message(raw, "")
    write_mnist_files(raw, train=12, test=7)
    data.mnist_digits()  # all four files there: nothing to download
    assert fake_download.calls == []


@pytest.mark.parametrize("value", ["1", "true", "yes", "on", " On ", "TRUE"])
def test_course_offline_prevents_the_download_and_says_so(tmp_path, monkeypatch, fake_download, value):
    monkeypatch.setenv(data.DATA_ENV, str(tmp_path))
    monkeypatch.setenv(data.OFFLINE_ENV, value)
    with pytest.raises(FileNotFoundError) as error:
        data.mnist_digits()
    assert str(error.value) == missing_message(tmp_path / "MNIST" / "raw", " (no download: COURSE_OFFLINE is set)")
    assert fake_download.calls == []


def test_a_read_only_data_directory_is_not_downloaded_into(tmp_path, monkeypatch, fake_download):
    """The nearest existing folder on the way to the data directory decides whether it can be written."""
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: real_access(path, mode) and not (
        Path(path) == tmp_path and mode == os.W_OK))
    root = tmp_path / "data"
    monkeypatch.setenv(data.DATA_ENV, str(root))
    with pytest.raises(FileNotFoundError) as error:
        data.mnist_digits()
    assert str(error.value) == missing_message(root / "MNIST" / "raw", f" (no download: {root} is not writable)")
    assert fake_download.calls == []


def test_a_failed_download_is_reported_by_its_first_line_and_not_tried_again(tmp_path, monkeypatch, fake_download):
    fake_download.failure = RuntimeError("Error downloading train-images-idx3-ubyte.gz:\nTried 2 mirrors.")
    monkeypatch.setenv(data.DATA_ENV, str(tmp_path / "a"))
    expected = missing_message(tmp_path / "a" / "MNIST" / "raw", " (no download: the download failed: RuntimeError: "
                                                                  "Error downloading train-images-idx3-ubyte.gz:)")
    for _ in range(2):
        with pytest.raises(FileNotFoundError) as error:
            data.mnist_digits()
        assert str(error.value) == expected
    assert len(fake_download.calls) == 1  # offline, later loads go straight to the local files
    fake_download.failure = OSError("")  # an error without a message
    monkeypatch.setenv(data.DATA_ENV, str(tmp_path / "b"))
    with pytest.raises(FileNotFoundError) as error:
        data.mnist_digits()
    assert str(error.value) == missing_message(tmp_path / "b" / "MNIST" / "raw",
                                               " (no download: the download failed: OSError: )")


def test_all_four_files_give_the_official_split_quietly(tmp_path, monkeypatch, fake_download, capsys):
    raw = tmp_path / "MNIST" / "raw"
    stored = write_mnist_files(raw, train=12, test=7)
    monkeypatch.setenv(data.DATA_ENV, str(tmp_path))
    digits = data.mnist_digits()
    for name, tensor in (("train_x", digits.train_x), ("train_y", digits.train_y), ("heldout_x", digits.heldout_x),
                         ("heldout_y", digits.heldout_y)):
        assert torch.equal(tensor, stored[name.replace("heldout", "t10k")]), name
    source = f"MNIST train (60 000) and test (10 000) from {raw}"
    assert digits.source == source
    assert repr(digits) == f"MNISTData(train (12, 28, 28), held-out (7, 28, 28), on cpu; {source})"
    assert data.load_mnist().source == source
    assert capsys.readouterr().out == ""


def test_a_gzipped_file_is_used_when_its_md5_is_torchvisions_and_named_when_not(tmp_path, monkeypatch,
                                                                                fake_download):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    stored = write_mnist_files(raw, train=None, test=7)
    for name in data.TEST_FILES:
        unpacked = raw / name[: -len(".gz")]
        (raw / name).write_bytes(gzip.compress(unpacked.read_bytes()))
        unpacked.write_bytes(b"not read: the gzipped file comes first")
        monkeypatch.setitem(data.MNIST_MD5, name, data._md5(raw / name))
    monkeypatch.setenv(data.DATA_ENV, str(tmp_path))
    monkeypatch.setenv(data.OFFLINE_ENV, "1")
    images, labels = data._read_split(data._find(raw, data.TEST_FILES[0]), data._find(raw, data.TEST_FILES[1]))
    assert torch.equal(images, stored["t10k_x"]) and torch.equal(labels, stored["t10k_y"])
    damaged = raw / data.TEST_FILES[1]
    damaged.write_bytes(b"garbage")
    with pytest.raises(ValueError) as error:
        data.mnist_digits()
    assert str(error.value) == (f"{damaged} is damaged: its MD5 is {data._md5(damaged)}, torchvision's is "
                                f"{data.MNIST_MD5[data.TEST_FILES[1]]}. Delete it and download it again.")


@pytest.fixture(scope="module")
def only_the_test_split(tmp_path_factory):
    """A data directory holding a (random) test split of 10 000 digits and no training files."""
    root = tmp_path_factory.mktemp("test-split-only")
    write_mnist_files(root / "MNIST" / "raw", train=None, test=10_000)
    return root


def test_the_test_only_split_is_announced_once_with_its_sizes(only_the_test_split, monkeypatch, fake_download, capsys):
    monkeypatch.setenv(data.DATA_ENV, str(only_the_test_split))
    monkeypatch.setenv(data.OFFLINE_ENV, "1")
    source = (f"test split only, from {only_the_test_split / 'MNIST' / 'raw'}: 8000 of its digits train, 2000 are held "
              "out (fixed split, seed 0)")
    digits = data.mnist_digits(train_size=10, heldout_size=10)
    assert digits.source == source
    assert capsys.readouterr().out == f"MNIST: {source}.\n"
    assert data.load_mnist(train_size=10, heldout_size=10).source == source
    assert capsys.readouterr().out == ""  # once per process
    monkeypatch.setenv(data.SIMULATE_ENV, "1")
    simulated = data.mnist_digits(train_size=10, heldout_size=10)
    assert simulated.source == (f"{source}, repeated to 60000 and 10000 digits (COURSE_SIMULATE_FULL_MNIST=1: the "
                                "full dataset's times, not its accuracies)")
    assert capsys.readouterr().out == f"MNIST: {simulated.source}.\n"


def test_sizes_are_positive_ints_cut_to_what_is_available(only_the_test_split, monkeypatch, fake_download, capsys):
    monkeypatch.setenv(data.DATA_ENV, str(only_the_test_split))
    monkeypatch.setenv(data.OFFLINE_ENV, "1")
    data.mnist_digits()
    capsys.readouterr()
    exactly = data.mnist_digits(train_size=8_000, heldout_size=1)  # exactly what there is, and the smallest size
    assert exactly.train_x.shape[0] == 8_000 and exactly.heldout_x.shape[0] == 1
    assert capsys.readouterr().out == ""
    more = data.mnist_digits(train_size=1, heldout_size=2_001)
    assert more.train_y.shape == (1,) and more.heldout_y.shape == (2_000,)
    assert capsys.readouterr().out == ("MNIST: heldout_size=2001 asked for, but only 2000 digits are available: "
                                       "using 2000.\n")
    for arguments, message in (({"train_size": True}, "train_size must be a positive int, got True"),
                               ({"train_size": 2.0}, "train_size must be a positive int, got 2.0"),
                               ({"heldout_size": 0}, "heldout_size must be a positive int, got 0")):
        with pytest.raises(ValueError) as error:
            data.mnist_digits(**arguments)
        assert str(error.value) == message


def test_repeating_to_a_size_repeats_along_the_first_dimension():
    assert data._repeat_to(torch.arange(3), 7).tolist() == [0, 1, 2, 0, 1, 2, 0]
    assert torch.equal(data._repeat_to(torch.eye(2), 3), torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]]))


@pytest.mark.parametrize("value, simulate", [("", False), ("0", False), ("false", False), ("No", False),
                                             (" off ", False), ("1", True), ("TRUE", True), ("yes", True),
                                             ("on", True)])
def test_simulate_full_mnist_reads_the_usual_spellings_of_yes_and_no(monkeypatch, value, simulate):
    monkeypatch.setenv(data.SIMULATE_ENV, value)
    assert data.simulate_full_mnist() is simulate


def test_load_mnist_puts_float32_images_and_labels_on_the_requested_device(tmp_path, monkeypatch, fake_download):
    """On any device, and in float32 even where torch's default float type is float64."""
    write_mnist_files(tmp_path / "MNIST" / "raw", train=12, test=7)
    monkeypatch.setenv(data.DATA_ENV, str(tmp_path))
    on_meta = data.load_mnist(device="meta")  # a device without storage, there on every machine
    assert [t.device.type for t in (on_meta.train_x, on_meta.train_y, on_meta.heldout_x, on_meta.heldout_y)] == [
        "meta"] * 4
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        mnist = data.load_mnist(normalize=False)
    finally:
        torch.set_default_dtype(default)
    assert mnist.train_x.dtype == torch.float32 and mnist.heldout_x.dtype == torch.float32


def test_digit_images_name_the_label_shape_they_need():
    with pytest.raises(ValueError) as error:
        data.DigitImages(torch.zeros(6, 28, 28, dtype=torch.uint8), torch.zeros(5))
    assert str(error.value) == "labels must have shape (6,), got (5,)"


def test_xor_parity_sizes_are_checked_and_a_seed_gives_the_same_bits_on_any_device():
    for arguments, message in (((10, 0, 0), "num_bits must be a positive int, got 0"),
                               ((0, 1), "num_samples must be a positive int, got 0")):
        with pytest.raises(ValueError) as error:
            data.xor_parity(*arguments)
        assert str(error.value) == message
    x, y = data.xor_parity(1, 1, num_bits=1)  # the smallest task
    assert x.shape == (1, 1) and torch.equal(y, x)
    first = data.xor_parity(256, 3, generator=torch.Generator().manual_seed(5))
    torch.manual_seed(0)  # the global generator plays no part
    second = data.xor_parity(256, 3, generator=torch.Generator().manual_seed(5))
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])
    assert set(first[0].unique().tolist()) == {0.0, 1.0} and set(first[1].unique().tolist()) == {0.0, 1.0}
    assert [t.device.type for t in data.xor_parity(4, 2, device="meta")] == ["meta", "meta"]


def test_device_batches_messages_and_the_smallest_sizes():
    for arguments, keywords, message in (
            ((), {"batch_size": 2}, "DeviceBatches needs at least one tensor"),
            ((torch.zeros(3), torch.zeros(3, device="meta")), {"batch_size": 1},
             "tensors must live on one device, got ['cpu', 'meta']"),
            ((torch.zeros(0),), {"batch_size": 1}, "batch_size=1 with drop_last=False leaves no batch from 0 samples")):
        with pytest.raises(ValueError) as error:
            data.DeviceBatches(*arguments, **keywords)
        assert str(error.value) == message
    one = torch.tensor([4.0])
    assert [b.tolist() for (b,) in data.DeviceBatches(one, batch_size=1)] == [[4.0]]
    x = torch.arange(5.0)
    whole = [b for (b,) in data.DeviceBatches(x, batch_size=5, drop_last=True)]  # one full batch, nothing dropped
    assert len(whole) == 1 and sorted(whole[0].tolist()) == x.tolist()
