"""Fine-tuning a pretrained run on another corpus: ``hybat train CONFIG --corpus DIR --init RUN``.

The sim-to-real workflow pretrains on a synthetic corpus (``hybat train`` as usual) and then
trains the same models on measured records starting from the pretrained weights. Three things
differ from training from a seeded start:

- the features are scaled by the pretrained run's normalisation (its weights expect it), not
  refitted on the new corpus: :func:`pretrained_normalisation` checks the new corpus has them;
- every model of the run starts from the model of the same name in ``RUN`` (its ``best.pt``),
  which must have the same architecture (:func:`pretrained_checkpoint`);
- how the weights train is ``finetune.recipe`` (:class:`FineTuneOptions`): one recipe, or
  ``choose``: each of :data:`hybrid.train.recipes.FINETUNE_CANDIDATES` trains, and the one with
  the lowest validation loss is kept (the validation split of the new corpus, never its test
  split). Every candidate's run stays under ``NAME/finetune/`` for inspection. Each run keeps
  the weights of its best validation epoch, and epoch 0 is the pretrained model itself, so a
  fine-tuned model is never worse on validation than no fine-tuning at all. ``none`` trains
  nothing: the pretrained models as they are, on the new corpus's splits (zero-shot transfer,
  scored by ``hybat evaluate`` like any run).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from hybrid.data import Corpus, FeatureOptions
from hybrid.data.features import candidate_features
from hybrid.train.checkpoint import TrainedModel, load_checkpoint, load_trained
from hybrid.train.config import TrainConfig
from hybrid.train.loop import TrainResult, evaluate_loss, validation_loss
from hybrid.train.recipes import FINETUNE_CANDIDATES, FineTune
from sim.config import StrictModel
from sim.errors import ConfigError, DataError

FINETUNE_DIR = "finetune"


class FineTuneOptions(StrictModel):
    """How a run started from a pretrained one (``--init RUN``) trains; ignored without it.

    recipe: "full" (every weight trains at train.learning_rate), "head" (only the output layer),
        "l2sp" (every weight, pulled toward the pretrained ones with ``l2sp_strength``),
        "choose": every recipe of FINETUNE_CANDIDATES (three learning rates, head only, L2-SP)
        trains and the lowest validation loss wins, or "none": no training (zero-shot).
    l2sp_strength: the L2-SP penalty [1/weight^2 in loss units] of recipe "l2sp".
    """

    recipe: Literal["full", "head", "l2sp", "choose", "none"] = "choose"
    l2sp_strength: float = Field(0.1, gt=0.0)

    def candidates(self, learning_rate: float) -> tuple[FineTune, ...]:
        """The recipes to train (``learning_rate``: the run's, for a single recipe)."""
        if self.recipe == "choose":
            return FINETUNE_CANDIDATES
        return (FineTune(self.recipe, learning_rate, freeze_rnn=self.recipe == "head",
                         l2sp=self.l2sp_strength if self.recipe == "l2sp" else 0.0),)


def pretrained_normalisation(init_dir: Path, pretrained: dict[str, Any], stored: dict[str, Any], corpus: Corpus,
                             features: FeatureOptions) -> dict[str, Any]:
    """``pretrained`` (the normalisation per family of the run in ``init_dir``, whose features
    options were ``stored``), after checking that ``corpus`` gives every feature it reads with
    this run's ``features`` options, which must be the pretrained run's."""
    if FeatureOptions.model_validate(stored) != features:
        differs = sorted(k for k in {*stored, *features.model_dump()} if stored.get(k) != features.model_dump().get(k))
        raise ConfigError(f"features.{differs[0]} = {features.model_dump().get(differs[0])!r} but the pretrained run "
                          f"{init_dir} used {stored.get(differs[0])!r}; allowed: the pretrained run's features")
    for family, norm in pretrained.items():
        available = set(candidate_features(corpus, features, family))
        missing = [name for name in norm["features"] if name not in available]
        if missing:
            raise DataError(f"--init {init_dir}: the {family} models read {missing[0]!r}, which the corpus "
                            "does not give; allowed: a corpus with the pretrained run's columns")
    return pretrained


def pretrained_checkpoint(init_dir: Path, name: str, model_config: dict[str, Any]) -> Path:
    """``init_dir/name/best.pt``, checked to hold a model of ``model_config``'s architecture."""
    path = init_dir / name / "best.pt"
    if not path.is_file():
        present = sorted(p.parent.name for p in init_dir.glob("*/best.pt"))
        raise ConfigError(f"--init {init_dir}: no model '{name}' to start from; allowed: a run with the same model "
                          f"names (it has {', '.join(present) or 'none'})")
    stored = load_checkpoint(path)["model_config"]
    if stored != model_config:
        differs = sorted(key for key in {*stored, *model_config} if stored.get(key) != model_config.get(key))
        raise ConfigError(f"model '{name}': {differs[0]} = {model_config.get(differs[0])!r} but the pretrained model "
                          f"in {init_dir} has {stored.get(differs[0])!r}; allowed: the pretrained architecture")
    return path


def finetune_model(train: Callable[[FineTune, TrainConfig, Path], Any], options: FineTuneOptions,
                   config: TrainConfig, model_dir: Path) -> tuple[Any, dict[str, Any]]:
    """Train every candidate recipe with ``train(recipe, train_config, run_dir)`` (which returns
    (trained model, fit result)) under ``model_dir/finetune/``, copy the winner's files (lowest
    best validation loss) into ``model_dir`` and return (its trained model and result, facts)."""
    results, skipped = {}, {}
    for recipe in options.candidates(config.learning_rate):
        run_dir = model_dir / FINETUNE_DIR / _slug(recipe.name)
        try:
            results[recipe.name] = (run_dir, *train(recipe, config.model_copy(
                update={"learning_rate": recipe.learning_rate}), run_dir))
        except ConfigError as error:  # "choose" skips head-only for a model without an output layer
            if options.recipe != "choose" or not recipe.freeze_rnn:
                raise
            skipped[recipe.name] = str(error)
    chosen = min(results, key=lambda name: results[name][2].best_val_loss)
    run_dir, trained, result = results[chosen]
    for item in run_dir.iterdir():
        if item.is_file():
            shutil.copy2(item, model_dir / item.name)
    facts = {"recipe": chosen, "run_dir": str(run_dir.relative_to(model_dir)), "val_loss": {name: r[2].best_val_loss for name, r in results.items()},
             **({"skipped": skipped} if skipped else {})}
    return (trained, result), facts


def adopt_pretrained(name: str, start: Path, val_batches, config: TrainConfig,
                     model_dir: Path) -> tuple[TrainedModel, TrainResult]:
    """Recipe "none": the pretrained checkpoint ``start`` copied as ``model_dir``'s best.pt and
    last.pt (an empty history), with its validation loss on the new corpus."""
    model_dir.mkdir(parents=True, exist_ok=True)
    for kept in ("best.pt", "last.pt"):
        shutil.copy2(start, model_dir / kept)
    (model_dir / "history.json").write_text("[]")
    trained = load_trained(model_dir / "best.pt", name)
    loss = evaluate_loss(trained.model, val_batches, config.truncation_steps, validation_loss(config))
    return trained, TrainResult(best_val_loss=loss, best_epoch=0, initial_val_loss=loss, epochs_run=0,
                                stopped_early=False, history=[], run_dir=model_dir)


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in ".-" else "_" for c in name)
