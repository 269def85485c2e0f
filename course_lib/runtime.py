"""Where and how an experiment runs: random seeds, the device, CPU threads, and the scale.

Every notebook starts with one call::

    from course_lib.runtime import setup
    device = setup()          # prints e.g. "course_lib: device cpu, 1 torch thread, seed 0, lecture scale"

Environment variables steer it, so that a test suite, a GPU box and a laptop run the same notebook
unchanged:

=================  ==============================================================================
``COURSE_SCALE``   ``quick`` (the tests: seconds per notebook), ``lecture`` (the default: what a
                   laptop affords during a 90-minute session) or ``paper`` (the sources' settings:
                   hours, meant for a GPU). Read in one place: `scale`.
``COURSE_QUICK``   the older switch: ``1`` means ``COURSE_SCALE=quick``, ``0`` the default.
``COURSE_DEVICE``  ``cpu``, ``cuda``, ``cuda:N`` or ``mps`` forces a device; unset or ``auto`` picks
                   CUDA, then Apple MPS, then the CPU.
``COURSE_THREADS`` the number of CPU threads torch may use (default: see `default_threads`).
=================  ==============================================================================

The ``lecture`` scale is sized by measurement: every lecture runs top to bottom in at most five
minutes on a 2-core laptop CPU, and no cell (or move of a panel's control) takes more than a minute.
``maintainers/benchmarks/time_lectures.py`` measures it; each lecture states its times at its top.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass

import torch

SCALE_ENV = "COURSE_SCALE"
QUICK_ENV = "COURSE_QUICK"
DEVICE_ENV = "COURSE_DEVICE"
THREADS_ENV = "COURSE_THREADS"

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}


@dataclass(frozen=True)
class Scale:
    """The sizes every experiment reads: one table per scale.

    A notebook never reads the environment itself; it asks ``scale().mnist_train`` and gets the
    number that fits the current scale.
    """

    name: str  # quick, lecture or paper
    mnist_train: int  # MNIST digits used for training
    mnist_heldout: int  # MNIST digits held out for evaluation
    mnist_small: int  # a small training subset, for experiments about overfitting
    epochs: int  # passes over the training digits in a typical experiment
    epochs_long: int  # passes over the small subset, long enough to overfit it
    hidden_units: int  # width of the small MLPs
    cnn_train: int  # MNIST digits for training the deeper convolutional stacks (lecture 05)
    timing_repeats: int  # repetitions behind each median time
    xor_steps: int  # training steps per number of active inputs in the g_infty XOR experiment
    ginfty_mnist_train: int  # training digits of the g_infty MNIST experiment
    ginfty_mnist_epochs: int  # its epochs
    ginfty_mnist_widths: tuple[int, int, int]  # channels of its two conv blocks, units of its dense block
    ginfty_mnist_batch: int  # its batch size
    prune_toy_steps: int  # training steps per train/prune cycle of the y = i1 + i2 toy (lecture 08)
    autoencoder_train: int  # training digits of the pruned MNIST autoencoder (lecture 08)
    autoencoder_epochs: int  # its epochs
    batch_scaling_train: int  # training digits of the linear-scaling-rule sweep over batch sizes 32–1024 (lecture 02, part 2)
    batch_scaling_epochs: int  # its epochs, the same for every batch size
    full_example_train: int  # training digits of the slides' full example, the 2-conv network (lecture 02, part 2)
    full_example_epochs: int  # its epochs (the slides: 10)


QUICK = Scale(name="quick", mnist_train=2_000, mnist_heldout=1_000, mnist_small=500, epochs=2, epochs_long=30,
              hidden_units=64, cnn_train=2_000, timing_repeats=5, xor_steps=1_500, ginfty_mnist_train=4_000, ginfty_mnist_epochs=10,
              ginfty_mnist_widths=(8, 16, 64), ginfty_mnist_batch=64, prune_toy_steps=500,
              autoencoder_train=2_000, autoencoder_epochs=3, batch_scaling_train=8_000, batch_scaling_epochs=6,
              full_example_train=1_000, full_example_epochs=3)
LECTURE = Scale(name="lecture", mnist_train=10_000, mnist_heldout=5_000, mnist_small=1_000, epochs=3, epochs_long=40,
                hidden_units=128, cnn_train=3_000, timing_repeats=11, xor_steps=2_000, ginfty_mnist_train=6_000, ginfty_mnist_epochs=10,
                ginfty_mnist_widths=(8, 16, 64), ginfty_mnist_batch=64, prune_toy_steps=1_000,
                autoencoder_train=6_000, autoencoder_epochs=3, batch_scaling_train=8_000, batch_scaling_epochs=6,
                full_example_train=4_000, full_example_epochs=10)
PAPER = Scale(name="paper", mnist_train=50_000, mnist_heldout=10_000, mnist_small=1_000, epochs=10, epochs_long=60,
              hidden_units=256, cnn_train=50_000, timing_repeats=31, xor_steps=100_000, ginfty_mnist_train=50_000, ginfty_mnist_epochs=5_000,
              ginfty_mnist_widths=(30, 60, 256), ginfty_mnist_batch=512, prune_toy_steps=2_000,
              autoencoder_train=50_000, autoencoder_epochs=10, batch_scaling_train=50_000, batch_scaling_epochs=20,
              full_example_train=60_000, full_example_epochs=10)
SCALES = {s.name: s for s in (QUICK, LECTURE, PAPER)}
DEFAULT_SCALE = "lecture"


def scale_name() -> str:
    """The scale asked for: ``COURSE_SCALE``, else ``quick`` when ``COURSE_QUICK=1``, else ``lecture``.

    Contradicting settings (``COURSE_QUICK=1`` with ``COURSE_SCALE=paper``) are an error, never a guess.
    """
    quick = os.environ.get(QUICK_ENV, "").strip().lower()
    if quick not in _TRUE | _FALSE:
        raise ValueError(f"{QUICK_ENV}={quick!r}: use 1 (the quick scale) or 0 (the default scale); "
                         f"or set {SCALE_ENV} to one of {', '.join(SCALES)}")
    named = os.environ.get(SCALE_ENV, "").strip().lower()
    if named and named not in SCALES:
        raise ValueError(f"{SCALE_ENV}={named!r}: allowed values are {', '.join(SCALES)}")
    if named and quick in _TRUE and named != "quick":
        raise ValueError(f"{SCALE_ENV}={named} contradicts {QUICK_ENV}={quick}: unset one of them")
    if named:
        return named
    return "quick" if quick in _TRUE else DEFAULT_SCALE


def quick_mode() -> bool:
    """True at the quick scale (the test suite's)."""
    return scale_name() == "quick"


def scale() -> Scale:
    """The `Scale` asked for by the environment (see `scale_name`)."""
    return SCALES[scale_name()]


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
    mode = f"{scale_name()} scale (COURSE_SCALE=quick, lecture or paper)"
    name = chosen.type if chosen.type != "cuda" else f"{chosen} ({torch.cuda.get_device_name(chosen)})"
    print(f"course_lib: device {name}, {threads} torch thread{'s' if threads > 1 else ''}, seed {seed}, {mode}")
    return chosen
