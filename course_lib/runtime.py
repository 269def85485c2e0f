"""Where and how an experiment runs: random seeds, the device, CPU threads, and the quick/full scale.

Every notebook starts with one call::

    from course_lib.runtime import setup
    device = setup()          # prints e.g. "course_lib: device cpu, 1 torch thread, seed 0, quick mode"

Three environment variables steer it, so that a test suite, a GPU box and a laptop run the same
notebook unchanged:

=================  ==============================================================================
``COURSE_QUICK``   ``1`` switches every experiment to its small scale (a data subset, few epochs,
                   narrow models); unset or ``0`` runs the full scale. Read in one place: `scale`.
``COURSE_DEVICE``  ``cpu``, ``cuda``, ``cuda:N`` or ``mps`` forces a device; unset or ``auto`` picks
                   CUDA, then Apple MPS, then the CPU.
``COURSE_THREADS`` the number of CPU threads torch may use (default: see `default_threads`).
=================  ==============================================================================
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass

import torch

QUICK_ENV = "COURSE_QUICK"
DEVICE_ENV = "COURSE_DEVICE"
THREADS_ENV = "COURSE_THREADS"

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}


def quick_mode() -> bool:
    """True when ``COURSE_QUICK`` asks for the small scale (the test suite sets it)."""
    value = os.environ.get(QUICK_ENV, "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"{QUICK_ENV}={value!r}: use 1 (quick mode) or 0 (full scale)")


@dataclass(frozen=True)
class Scale:
    """The sizes every experiment reads: one table for the quick mode, one for the full course.

    A notebook never tests ``COURSE_QUICK`` itself; it asks ``scale().mnist_train`` and gets the
    number that fits the current mode.
    """

    mnist_train: int  # MNIST digits used for training
    mnist_heldout: int  # MNIST digits held out for evaluation
    mnist_small: int  # a small training subset, for experiments about overfitting
    epochs: int  # passes over the training digits in a typical experiment
    epochs_long: int  # passes over the small subset, long enough to overfit it
    hidden_units: int  # width of the small MLPs
    timing_repeats: int  # repetitions behind each median time
    xor_steps: int  # training steps per number of active inputs in the g_infty XOR experiment
    ginfty_mnist_train: int  # training digits of the g_infty MNIST experiment
    ginfty_mnist_epochs: int  # its epochs
    ginfty_mnist_widths: tuple[int, int, int]  # channels of its two conv blocks, units of its dense block
    ginfty_mnist_batch: int  # its batch size
    prune_toy_steps: int  # training steps per train/prune cycle of the y = i1 + i2 toy (lecture 08)
    autoencoder_train: int  # training digits of the pruned MNIST autoencoder (lecture 08)
    autoencoder_epochs: int  # its epochs


QUICK = Scale(mnist_train=2_000, mnist_heldout=1_000, mnist_small=500, epochs=2, epochs_long=30,
              hidden_units=64, timing_repeats=5, xor_steps=1_500, ginfty_mnist_train=4_000, ginfty_mnist_epochs=10,
              ginfty_mnist_widths=(8, 16, 64), ginfty_mnist_batch=64, prune_toy_steps=500,
              autoencoder_train=2_000, autoencoder_epochs=3)
FULL = Scale(mnist_train=50_000, mnist_heldout=10_000, mnist_small=1_000, epochs=10, epochs_long=60,
             hidden_units=256, timing_repeats=31, xor_steps=100_000, ginfty_mnist_train=50_000, ginfty_mnist_epochs=5_000,
             ginfty_mnist_widths=(30, 60, 256), ginfty_mnist_batch=512, prune_toy_steps=2_000,
             autoencoder_train=50_000, autoencoder_epochs=10)


def scale() -> Scale:
    """The `Scale` of the current mode: `QUICK` when ``COURSE_QUICK=1``, else `FULL`."""
    return QUICK if quick_mode() else FULL


def seed_everything(seed: int = 0) -> None:
    """Seed Python's, NumPy's and torch's generators (all CUDA devices included)."""
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    random.seed(seed)
    try:
        import numpy
    except ImportError:  # numpy is optional for course_lib itself
        pass
    else:
        numpy.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend and backend.is_available())


def choose_device(preference: str | None = None) -> torch.device:
    """The device to compute on.

    ``preference`` (or ``COURSE_DEVICE`` when it is None) may be ``auto``, ``cpu``, ``cuda``,
    ``cuda:N`` or ``mps``. ``auto`` picks CUDA, then Apple MPS, then the CPU. Asking for a device
    this machine lacks is an error, never a silent fallback.
    """
    wanted = (preference if preference is not None else os.environ.get(DEVICE_ENV, "auto")).strip().lower()
    if wanted in ("", "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if wanted == "cpu":
        return torch.device("cpu")
    if wanted == "mps":
        if not _mps_available():
            raise ValueError(f"{DEVICE_ENV}=mps, but Apple's MPS backend is not available on this machine")
        return torch.device("mps")
    if wanted == "cuda" or wanted.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise ValueError(f"{DEVICE_ENV}={wanted}, but torch sees no CUDA device on this machine")
        device = torch.device(wanted)
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"{DEVICE_ENV}={wanted}: only {torch.cuda.device_count()} CUDA device(s) exist")
        return device
    raise ValueError(f"{DEVICE_ENV}={wanted!r}: allowed values are auto, cpu, cuda, cuda:N and mps")


def default_threads() -> int:
    """CPU threads for torch: ``COURSE_THREADS`` if set, else one thread on machines with at most
    two cores (the course's small models run faster single-threaded there, see the README), else
    half the cores, at most 8."""
    value = os.environ.get(THREADS_ENV)
    if value is not None:
        if not value.strip().isdigit() or int(value) < 1:
            raise ValueError(f"{THREADS_ENV}={value!r}: use a positive whole number")
        return int(value)
    cores = os.cpu_count() or 1
    return 1 if cores <= 2 else min(cores // 2, 8)


def _configure_matplotlib() -> None:
    """Inline figures in a notebook kernel; a file-only backend everywhere else."""
    try:
        from IPython import get_ipython
    except ImportError:
        get_ipython = None
    shell = get_ipython() if get_ipython else None
    if shell is not None and getattr(shell, "kernel", None) is not None:
        shell.run_line_magic("matplotlib", "inline")
    import matplotlib

    matplotlib.rcParams.update({"figure.figsize": (7.0, 3.8), "figure.dpi": 100, "axes.grid": True})


def setup(seed: int = 0, device: str | None = None) -> torch.device:
    """Prepare a notebook: seed every generator, pick the device and thread count, configure
    matplotlib, print one line saying what was chosen, and return the device."""
    seed_everything(seed)
    chosen = choose_device(device)
    threads = default_threads()
    torch.set_num_threads(threads)
    _configure_matplotlib()
    mode = "quick mode" if quick_mode() else "full scale"
    name = chosen.type if chosen.type != "cuda" else f"{chosen} ({torch.cuda.get_device_name(chosen)})"
    print(f"course_lib: device {name}, {threads} torch thread{'s' if threads > 1 else ''}, seed {seed}, {mode}")
    return chosen
