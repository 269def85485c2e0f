"""Resumable training runs: a checkpoint that survives a kernel restart and an interrupted cell.

A run at the ``paper`` scale lasts hours. It saves, every few minutes and when it is interrupted
(the notebook's stop button raises ``KeyboardInterrupt``), everything needed to continue exactly
where it stopped:

    model      the parameters and buffers (a g_∞ layer re-creates the sub-layers it had grown)
    optimizer  its state and its parameter groups, each group named by its parameters' names, so
               that groups added during training (g_∞ growth) come back in the same order
    rng        torch's global generator (dropout draws from it) and the run's own generators
    progress   the run's log so far and the step it reached

Started again with the same checkpoint path, the run loads it and goes on; with the same settings on
the same device, the result is the one an uninterrupted run gives, bit for bit on the CPU.

Writing is atomic: the checkpoint goes to a temporary file that then replaces the old one, so an
interruption while saving leaves the previous checkpoint intact.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

CHECKPOINT_ENV = "COURSE_CHECKPOINT_DIR"


def checkpoint_dir() -> Path:
    """Where checkpoints live: ``COURSE_CHECKPOINT_DIR`` if set, else ``checkpoints/`` at the top of the course."""
    configured = os.environ.get(CHECKPOINT_ENV)
    if configured:
        return Path(configured).expanduser().resolve()
    return Path(__file__).resolve().parent.parent / "checkpoints"


def checkpoint_path(name: str) -> Path:
    """The checkpoint file of the run called ``name`` (letters, digits, ``-``, ``_`` and ``.``)."""
    if not name or any(not (ch.isalnum() or ch in "-_.") for ch in name):
        raise ValueError(f"name must be letters, digits, '-', '_' or '.', got {name!r}")
    return checkpoint_dir() / f"{name}.pt"


def parameter_groups(model: nn.Module, optimizer: torch.optim.Optimizer) -> list[list[str]]:
    """The optimizer's parameter groups, each as the names (in ``model``) of its parameters, in order."""
    names = {id(p): name for name, p in model.named_parameters()}
    groups = []
    for group in optimizer.param_groups:
        missing = [p for p in group["params"] if id(p) not in names]
        if missing:
            raise ValueError(f"the optimizer holds {len(missing)} parameter(s) that are not in the model")
        groups.append([names[id(p)] for p in group["params"]])
    return groups


def save_checkpoint(path: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer,
                    generators: dict[str, torch.Generator], progress: dict[str, Any]) -> None:
    """Write model, optimizer (with its groups by name), generators and ``progress`` to ``path``, atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "groups": parameter_groups(model, optimizer),
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "generators": {name: g.get_state() for name, g in generators.items()},
        "progress": progress,
    }
    partial = path.with_name(path.name + ".partial")
    torch.save(state, partial)
    os.replace(partial, path)


def load_checkpoint(path: str | Path, model: nn.Module,
                    make_optimizer: Callable[[list[dict]], torch.optim.Optimizer],
                    generators: dict[str, torch.Generator]) -> tuple[torch.optim.Optimizer, dict[str, Any]]:
    """Restore ``model`` and ``generators`` from ``path``; return a new optimizer in the saved state and the progress.

    ``make_optimizer`` receives the parameter groups (``[{"params": [...]}, ...]``, in the saved order) and
    returns the optimizer, e.g. ``lambda groups: torch.optim.Adam(groups, lr=1e-3)``; the saved state then
    sets every hyper-parameter and moment.
    """
    state = torch.load(Path(path), map_location="cpu", weights_only=False)
    model.load_state_dict(state["model"])
    parameters = dict(model.named_parameters())
    unknown = [name for group in state["groups"] for name in group if name not in parameters]
    if unknown:
        raise ValueError(f"{path} holds parameters this model lacks: {unknown[:3]}")
    optimizer = make_optimizer([{"params": [parameters[name] for name in group]} for group in state["groups"]])
    optimizer.load_state_dict(state["optimizer"])
    torch.set_rng_state(state["torch_rng"])
    if state["cuda_rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])
    for name, generator in generators.items():
        generator.set_state(state["generators"][name])
    return optimizer, state["progress"]


class DeferredInterrupt:
    """Hold the stop button's ``KeyboardInterrupt`` until the current training step is complete.

    Inside ``with DeferredInterrupt() as stop:`` a SIGINT only sets ``stop.requested``; the loop checks it
    between steps, saves a checkpoint and raises ``KeyboardInterrupt`` itself, so the model, the optimizer
    and the log are never left half-updated. Outside the main thread (where Python cannot catch signals)
    it does nothing and the interrupt arrives as usual.
    """

    def __init__(self) -> None:
        self.requested = False
        self._previous = None

    def _handler(self, signum, frame) -> None:
        self.requested = True

    def __enter__(self) -> "DeferredInterrupt":
        try:
            self._previous = signal.signal(signal.SIGINT, self._handler)
        except ValueError:  # not the main thread
            self._previous = None
        return self

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
