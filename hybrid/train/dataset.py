"""What a training reads: a corpus (generated on demand), its split assignment and one family's
normalisation, with the batches of each split."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hybrid.data import (Corpus, FeatureOptions, SequenceBatch, SplitAssignment, SplitOptions, assign_splits,
                         fit_normalisation, load_corpus, make_batches)
from hybrid.models import ModelConfig
from hybrid.train.checkpoint import TrainedModel
from hybrid.train.config import TrainConfig
from hybrid.train.loop import TrainResult
from hybrid.train.recipes import train_model
from sim.corpus import CorpusSpec, generate_corpus


@dataclass
class TrainingSet:
    """A corpus with its splits and the normalisation of one model family (its features and targets)."""

    corpus: Corpus
    assignment: SplitAssignment
    normalisation: dict[str, Any]

    @property
    def input_size(self) -> int:
        return len(self.normalisation["features"])

    def batches(self, split: str, batch_size: int) -> list[SequenceBatch]:
        """The normalised batches (``batch_size`` records each) of ``split``'s rows."""
        return make_batches(self.corpus, self.assignment.ranges[split], self.normalisation, batch_size)

    def has(self, split: str) -> bool:
        return bool(self.assignment.ranges.get(split))

    def train_fresh(self, name: str, model_config: ModelConfig, config: TrainConfig,
                    run_dir: Path) -> tuple[TrainedModel, TrainResult]:
        """A new model of ``model_config`` trained on "train", validated on "val", in ``run_dir``
        (emptied first: a scratch run); returns its best-validation weights and fit's result."""
        shutil.rmtree(run_dir, ignore_errors=True)
        return train_model(name, model_config, self.batches("train", config.batch_size),
                           self.batches("val", config.batch_size), config, run_dir, normalisation=self.normalisation)


def load_training_set(corpus_dir: Path, splits: SplitOptions, features: FeatureOptions = FeatureOptions(),
                      family: str = "hybrid") -> TrainingSet:
    """The corpus in ``corpus_dir`` split by ``splits``, normalised for ``family`` ("hybrid" or
    "black_box") with ``features`` fitted on the training rows."""
    corpus = load_corpus(corpus_dir)
    assignment = assign_splits(corpus, splits)
    return TrainingSet(corpus, assignment, fit_normalisation(corpus, assignment, features, family))


def corpus_on_demand(path: Path, spec: CorpusSpec) -> Path:
    """``path`` if it holds a finished corpus, else ``spec`` generated there (serial backend)."""
    if not (path / "samples.parquet").is_file():
        generate_corpus(spec, path, progress=False)
    return path
