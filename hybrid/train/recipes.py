"""Train one model: build it (initial weights seeded), optionally start from a checkpoint's weights
with a fine-tuning recipe, fit it, and load the checkpoint to keep.

Recipes (all need ``init``, except "full"):

- ``full``: every weight trains (from ``init``'s weights when given, else from the seeded start);
- ``head``: only the output head (``model.head``) trains, every other weight stays frozen;
- ``l2sp``: every weight trains with the L2-SP penalty ``l2sp_strength / 2 * |w - w0|^2`` toward
  the weights ``w0`` of ``init``, added to the gradient as ``l2sp_strength * (w - w0)``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from torch import nn

from hybrid.data import SequenceBatch
from hybrid.models import ModelConfig, build_model, config_to_dict
from hybrid.train.checkpoint import TrainedModel, load_checkpoint, load_trained, seed_everything
from hybrid.train.config import TrainConfig
from hybrid.train.loop import TrainResult, fit
from sim.errors import ConfigError

Recipe = Literal["full", "head", "l2sp"]
RECIPES = ("full", "head", "l2sp")


@dataclass(frozen=True)
class FineTune:
    """A fine-tuning recipe with its learning rate, as data: ``name`` labels it in tables;
    ``learning_rate`` is AdamW's; ``freeze_rnn`` trains the linear head only ("head"); ``l2sp`` > 0
    adds ``l2sp * (w - w_pretrained)`` to every gradient ("l2sp"); neither: "full"."""

    name: str
    learning_rate: float
    freeze_rnn: bool = False
    l2sp: float = 0.0

    def __post_init__(self) -> None:
        if self.freeze_rnn and self.l2sp > 0:
            raise ConfigError(f"FineTune {self.name!r}: freeze_rnn with l2sp = {self.l2sp:g}; allowed: one of the two")

    def train_model_options(self) -> dict[str, Any]:
        """The keyword arguments ``recipe`` (and ``l2sp_strength``) of :func:`train_model`."""
        if self.freeze_rnn:
            return {"recipe": "head"}
        return {"recipe": "l2sp", "l2sp_strength": self.l2sp} if self.l2sp > 0 else {"recipe": "full"}


# The recipes tried on validation records: three learning rates, head only, L2-SP.
FINETUNE_CANDIDATES = (FineTune("lr 1e-3", 1e-3), FineTune("lr 3e-4", 3e-4), FineTune("lr 1e-4", 1e-4),
                       FineTune("head only, lr 1e-3", 1e-3, freeze_rnn=True),
                       FineTune("L2-SP 0.1, lr 1e-3", 1e-3, l2sp=0.1))


def train_model(name: str, model_config: ModelConfig,
                train_batches: Sequence[SequenceBatch] | Callable[[int], Sequence[SequenceBatch]],
                val_batches: Sequence[SequenceBatch], config: TrainConfig, run_dir: Path, *,
                normalisation: dict[str, Any], init: Path | None = None, recipe: Recipe = "full",
                l2sp_strength: float = 0.0, extra: dict | None = None, resume: bool = False,
                keep: str = "best.pt") -> tuple[TrainedModel, TrainResult]:
    """Train a model of ``model_config`` with :func:`hybrid.train.loop.fit` into ``run_dir``.

    The initial weights follow ``config.seed``; ``init`` (a checkpoint path) replaces them with
    that checkpoint's weights, trained by ``recipe`` (see the module docstring; ``l2sp_strength``
    [1/weight^2 units of the loss] > 0 for "l2sp"). ``normalisation`` and ``extra`` are stored in
    every checkpoint; ``resume`` continues the run left in ``run_dir``. Returns the checkpoint
    ``keep`` ("best.pt": lowest validation loss; "last.pt": the final weights) loaded as
    ``name``, in eval mode, and fit's result.
    """
    if recipe not in RECIPES:
        raise ConfigError(f"recipe = {recipe!r}; allowed: {', '.join(RECIPES)}")
    if recipe != "full" and init is None:
        raise ConfigError(f"recipe = {recipe!r} fine-tunes a pretrained model; allowed: give init (a checkpoint), "
                          "or recipe 'full'")
    if (recipe == "l2sp") != (l2sp_strength > 0):
        raise ConfigError(f"l2sp_strength = {l2sp_strength:g} with recipe {recipe!r}; allowed: > 0 exactly "
                          "with recipe 'l2sp'")
    seed_everything(config.seed)  # before building: the initial weights follow the seed
    model = build_model(model_config)
    if init is not None:
        model.load_state_dict(load_checkpoint(init)["model_state"])
        if recipe == "head":
            freeze_all_but_head(model)
        if recipe == "l2sp":
            anchor_to_current_weights(model, l2sp_strength)
    result = fit(model, train_batches, val_batches, config, run_dir=run_dir, model_config=config_to_dict(model_config),
                 normalisation=normalisation, extra=extra, resume=resume)
    return load_trained(Path(run_dir) / keep, name), result


def freeze_all_but_head(model: nn.Module) -> None:
    """Stop every weight outside ``model.head`` (the linear output layer) from training."""
    head = getattr(model, "head", None)
    if not isinstance(head, nn.Module):
        raise ConfigError(f"recipe 'head' needs a model with an output layer 'head'; {type(model).__name__} has "
                          "none: allowed recipes 'full' or 'l2sp'")
    kept = {id(parameter) for parameter in head.parameters()}
    for parameter in model.parameters():
        if id(parameter) not in kept:
            parameter.requires_grad_(False)


def anchor_to_current_weights(model: nn.Module, strength: float) -> None:
    """L2-SP: add ``strength`` * (w - w0) to each trainable weight's gradient, w0 = its value now."""
    for parameter in model.parameters():
        if parameter.requires_grad:
            start = parameter.detach().clone()
            parameter.register_hook(lambda grad, p=parameter, w0=start: grad + strength * (p.detach() - w0))
