import gzip
import os
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
