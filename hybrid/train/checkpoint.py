"""Checkpoints of :func:`hybrid.train.loop.fit`: the writer of ``last.pt`` / ``best.pt``, their
reader, the training counters and RNG states they restore, and the atomic save.

Checkpoints hold only tensors, plain containers, numbers and strings, so they load with
``torch.load(path, weights_only=True)``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import platform
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from hybrid.models import build_model, config_from_dict
from hybrid.train.config import TrainConfig
from sim.config import package_versions
from sim.errors import ConfigError, DataError

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = 1
# Keys of the training config that may change on resume without breaking reproducibility.
_RESUMABLE_CHANGES = {"early_stopping_patience", "min_delta", "log_every", "device", "threads"}


@dataclass
class Progress:
    """Counters that a checkpoint must restore for an exact resume (epochs count from 1)."""

    epoch: int = 0
    global_step: int = 0
    initial_val_loss: float = math.inf
    best_val_loss: float = math.inf
    best_epoch: int = 0
    epochs_without_improvement: int = 0
    best_train_loss: float = math.inf
    history: list[dict[str, float]] = field(default_factory=list)

    def record_epoch(self, train_loss: float, val_loss: float, min_delta: float, **timing: float) -> bool:
        """Count a finished epoch; True if its validation loss is a new best (by more than min_delta)."""
        self.epoch += 1
        improved = val_loss < self.best_val_loss - min_delta
        if improved:
            self.best_val_loss, self.best_epoch = val_loss, self.epoch
        self.epochs_without_improvement = 0 if improved else self.epochs_without_improvement + 1
        self.best_train_loss = min(self.best_train_loss, train_loss)
        self.history.append({"epoch": self.epoch, "train_loss": train_loss, "val_loss": val_loss, **timing})
        return improved


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch RNGs (call before building the model for reproducible weights)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def plain_json(name: str, value: Any) -> Any:
    """``value`` as plain python (dict/list/str/number), so it loads with weights_only=True."""
    if not isinstance(value, dict):
        raise ConfigError(f"{name}: got {type(value).__name__}; expected a dict")
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError) as error:
        raise ConfigError(f"{name}: not JSON-serialisable ({error}); allowed: dicts/lists of numbers and strings") from None


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint written by fit() (tensors on CPU); DataError if missing or unreadable."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: checkpoint not found")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for a damaged or foreign file
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise DataError(f"{path}: not a readable checkpoint ({first_line})") from None
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != CHECKPOINT_FORMAT:
        raise DataError(f"{path}: not a hybat checkpoint of format {CHECKPOINT_FORMAT}")
    return checkpoint


@dataclass
class TrainedModel:
    """A model loaded from a checkpoint with what it needs to predict."""

    name: str
    model: nn.Module
    normalisation: dict[str, Any]
    model_config: dict[str, Any]
    history: list[dict[str, float]]
    best_epoch: int

    @property
    def family(self) -> str:
        return self.normalisation["family"]


def load_trained(path: str | Path, name: str) -> TrainedModel:
    """The model of checkpoint ``path`` (loaded with weights_only=True), in eval mode."""
    checkpoint = load_checkpoint(path)
    model = build_model(config_from_dict(checkpoint["model_config"]))
    model.load_state_dict(checkpoint["model_state"])
    model.eval()
    progress = checkpoint["progress"]
    return TrainedModel(name, model, checkpoint["normalisation"], checkpoint["model_config"],
                        progress["history"], progress["best_epoch"])


class CheckpointWriter:
    """Writes and restores last.pt / best.pt, and owns the gradient-norm log."""

    def __init__(self, run_dir: Path, model: nn.Module, optimizer: torch.optim.Optimizer,
                 scheduler: torch.optim.lr_scheduler.LRScheduler, config: TrainConfig, stored: dict[str, Any]):
        self.run_dir, self.model, self.optimizer, self.scheduler = run_dir, model, optimizer, scheduler
        self.config, self.stored = config, stored
        self.last, self.best = run_dir / "last.pt", run_dir / "best.pt"
        self.grad_log = run_dir / "grad_norms.jsonl"

    def start_fresh(self) -> Progress:
        if self.last.exists():
            raise ConfigError(f"run_dir = {str(self.run_dir)!r} already holds last.pt; allowed: resume=True "
                              "to continue it, or a new run_dir")
        seed_everything(self.config.seed)
        self.grad_log.write_text("")
        return Progress()

    def restore(self) -> Progress:
        checkpoint = load_checkpoint(self.last)
        if checkpoint["model_config"] != self.stored["model_config"]:
            raise ConfigError(f"model_config = {self.stored['model_config']} differs from the checkpoint's "
                              f"{checkpoint['model_config']}; allowed: the same model to resume")
        changed = sorted(key for key, value in self.config.model_dump(mode="json").items()
                         if checkpoint["train_config"].get(key) != value and key not in _RESUMABLE_CHANGES)
        if changed:
            log.warning("resuming %s with changed settings %s: the run will differ from an uninterrupted one",
                        self.last, changed)
        self.model.load_state_dict(checkpoint["model_state"])
        self.optimizer.load_state_dict(checkpoint["optimizer_state"])
        self.scheduler.load_state_dict(checkpoint["scheduler_state"])
        _set_rng_states(checkpoint["rng_states"])
        progress = Progress(**checkpoint["progress"])
        self._truncate_grad_log(progress.global_step)
        log.info("resumed %s at epoch %d (best val %.4g)", self.last, progress.epoch, progress.best_val_loss)
        return progress

    def save(self, progress: Progress, best: bool) -> None:
        payload = {
            "format": CHECKPOINT_FORMAT, **self.stored,
            "train_config": self.config.model_dump(mode="json"),
            "versions": {"python": platform.python_version(), **package_versions(("torch", "numpy", "hybat"))},
            "progress": asdict(progress), "model_state": _to_cpu(self.model.state_dict()),
            "optimizer_state": _to_cpu(self.optimizer.state_dict()), "scheduler_state": self.scheduler.state_dict(),
            "rng_states": _rng_states(),
        }
        _atomic_save(payload, self.last)
        if best:
            _atomic_save(payload, self.best)
        (self.run_dir / "history.json").write_text(json.dumps(progress.history, indent=1))

    def _truncate_grad_log(self, global_step: int) -> None:
        """Drop lines written after the checkpoint (by the interrupted part of an epoch)."""
        lines = self.grad_log.read_text().splitlines() if self.grad_log.exists() else []
        kept = [line for line in lines if json.loads(line)["step"] <= global_step]
        self.grad_log.write_text("".join(line + "\n" for line in kept))


def _atomic_save(payload: dict[str, Any], path: Path) -> None:
    """Write to a temporary name, then rename: a crash never leaves a half-written checkpoint."""
    temporary = path.with_suffix(".pt.tmp")
    torch.save(payload, temporary)
    os.replace(temporary, path)


def _to_cpu(value: Any) -> Any:
    if isinstance(value, Tensor):
        return value.detach().cpu()
    if isinstance(value, dict):
        return {key: _to_cpu(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_to_cpu(item) for item in value)
    return value


def _rng_states() -> dict[str, Any]:
    """python, numpy and torch RNG states as plain containers and tensors."""
    kind, keys, position, has_gauss, cached_gaussian = np.random.get_state()
    version, python_state, gauss_next = random.getstate()
    states = {"python": [version, list(python_state), gauss_next],
              "numpy": [kind, keys.tolist(), int(position), int(has_gauss), float(cached_gaussian)],
              "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def _set_rng_states(states: dict[str, Any]) -> None:
    version, python_state, gauss_next = states["python"]
    random.setstate((version, tuple(python_state), gauss_next))
    kind, keys, position, has_gauss, cached_gaussian = states["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), position, has_gauss, cached_gaussian))
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
