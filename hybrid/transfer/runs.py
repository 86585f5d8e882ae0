"""How every model of the sim-to-real workflow is trained (:class:`TransferOptions`), its model
names, and one resumable training run on whole records (:func:`train_records`).

Run folders under one ``runs`` root (each holds checkpoints and ``finished.json``):

    seed<S>/pretrained                       the hybrid pretrained on the synthetic corpus
    validation/seed<S>/<E>_epochs/<model>    the candidates scored on the validation records
    seed<S>/all/<model>                      the models trained on every training record
    seed<S>/first_<N>/<model>                the data-efficiency curve's runs on N records
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any, Sequence

from pydantic import Field

from hybrid.data import Corpus, FeatureOptions, SplitAssignment, by_record_assignment
from hybrid.models import config_from_dict
from hybrid.train import (BLACK_BOX, CHECKPOINT, FINETUNE_CANDIDATES, FineTune, TrainConfig, TrainedModel,
                          TrainingSet, load_trained, train_model)
from sim.config import StrictModel

log = logging.getLogger(__name__)

LAST = "last.pt"  # measured-data runs keep their final weights: the epoch budget is chosen on validation
SCRATCH = "hybrid_measured_only"  # the hybrid trained on measured data from its seeded start
ZERO_SHOT = "hybrid_pretrained_zero_shot"  # the pretrained hybrid as is
FINETUNED = "hybrid_pretrained_finetuned"  # the pretrained hybrid fine-tuned on measured data
TRAINED = (BLACK_BOX, SCRATCH, FINETUNED)  # the models trained on measured data


class TransferOptions(StrictModel):
    """How the models are trained.

    hybrid_model: the hybrid's model config without sizes (they follow the normalisation), e.g.
        {"kind": "residual_rnn", "cell": "lstm", "hidden_size": 32, "layers": 1}; the black box
        is the same with kind "black_box".
    features: what every model reads (its normalisation is fitted on the training records).
    epochs: the largest epoch budget on measured data; a quarter and a half are tried too.
    pretrain_epochs: epochs on the synthetic corpus.
    learning_rate: AdamW learning rate of pretraining and of training from scratch.
    truncation_steps: TBPTT window [time steps].
    seeds: every trained model is trained once per seed (its initial weights and batch order).
    split_seed: seeds the synthetic corpus's train/validation split of cells.
    candidates: the fine-tuning recipes tried on the validation records.
    batch_size: records per batch.
    """

    hybrid_model: dict[str, Any]
    features: FeatureOptions
    epochs: int = Field(ge=1)
    pretrain_epochs: int = Field(ge=1)
    learning_rate: float = Field(gt=0.0)
    truncation_steps: int = Field(ge=1)
    seeds: tuple[int, ...] = Field(min_length=1)
    split_seed: int = 0
    candidates: tuple[FineTune, ...] = FINETUNE_CANDIDATES
    batch_size: int = Field(8, ge=1)

    @property
    def black_box_model(self) -> dict[str, Any]:
        return {**self.hybrid_model, "kind": BLACK_BOX}

    def train_config(self, epochs: int, learning_rate: float, seed: int) -> TrainConfig:
        """``epochs`` of cosine-annealed AdamW at ``learning_rate``, never stopped early (the
        epoch budget is itself chosen on validation records)."""
        return TrainConfig(epochs=epochs, batch_size=self.batch_size, truncation_steps=self.truncation_steps,
                           learning_rate=learning_rate, schedule="cosine", grad_clip=1.0,
                           early_stopping_patience=max(epochs, 1), seed=seed)


def record_split(corpus: Corpus, train_ids: Sequence[int], test_ids: Sequence[int],
                 val_ids: Sequence[int] | None = None) -> SplitAssignment:
    """:func:`hybrid.data.by_record_assignment` with the row counts of ``corpus``'s records."""
    return by_record_assignment(train_ids, test_ids, {i: cell.rows for i, cell in corpus.cells.items()}, val_ids)


def train_records(name: str, data: TrainingSet, model: dict[str, Any], config: TrainConfig, run_dir: Path, *,
                  init: Path | None = None, recipe: FineTune | None = None, keep: str = CHECKPOINT) -> TrainedModel:
    """Train ``model`` (a config dict without sizes) on ``data``'s "train" split, validating on
    "val", into ``run_dir``; ``init`` (a checkpoint) starts from its weights, fine-tuned with
    ``recipe`` (None: every weight trains). Returns the checkpoint ``keep`` (CHECKPOINT: lowest
    validation loss; LAST: the final weights) loaded as ``name``. A finished run in ``run_dir``
    is loaded as it is, an unfinished one resumed."""
    finished = run_dir / "finished.json"
    if finished.exists():
        return load_trained(run_dir / keep, name)
    model_config = config_from_dict({**model, "input_size": data.input_size,
                                     "output_size": len(data.normalisation["targets"])})
    fine_tuning = {} if init is None or recipe is None else recipe.train_model_options()
    started = time.perf_counter()
    trained, result = train_model(name, model_config, data.batches("train", config.batch_size),
                                  data.batches("val", config.batch_size), config, run_dir,
                                  normalisation=data.normalisation, init=init, **fine_tuning,
                                  extra={"model_name": name, "init_from": str(init or "")},
                                  resume=(run_dir / LAST).exists(), keep=keep)
    seconds = time.perf_counter() - started
    finished.write_text(json.dumps({"best_epoch": result.best_epoch, "best_val_loss": result.best_val_loss,
                                    "epochs_run": result.epochs_run, "seconds": seconds}))
    log.info("%s trained in %.1f s (best epoch %d)", name, seconds, result.best_epoch)
    return trained
