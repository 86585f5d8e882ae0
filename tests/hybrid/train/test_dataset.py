"""Facts about a training set: its batches hold exactly its split's records, its normalisation is
fitted on the training rows, a fresh training starts from an empty run folder, and a corpus is
generated only when none is there."""

from __future__ import annotations

from pathlib import Path

import pytest

from hybrid.data.features import FeatureOptions, fit_normalisation
from hybrid.data.splits import SplitOptions
from hybrid.models.residual_rnn import ResidualRNNConfig
from hybrid.train import dataset
from hybrid.train.config import TrainConfig
from hybrid.train.dataset import corpus_on_demand, load_training_set

SPLITS = SplitOptions(seed=0, val_fraction=0.25, test_fraction=0.25)


@pytest.fixture(scope="module")
def training_set(smoke_corpus_dir):
    return load_training_set(smoke_corpus_dir, SPLITS, FeatureOptions(soc_head=True))


def test_batches_hold_exactly_the_records_of_their_split(training_set):
    for split in ("train", "val", "test"):
        batches = training_set.batches(split, batch_size=1)  # one record per batch
        assert len(batches) == len(training_set.assignment.ranges[split]) > 0
        assert sum(int(batch.mask.sum()) for batch in batches) <= sum(
            stop - start for start, stop in training_set.assignment.ranges[split].values())
    assert training_set.has("train") and not training_set.has("late_life")
    records = [set(training_set.assignment.ranges[split]) for split in ("train", "val", "test")]
    assert not (records[0] & records[1] or records[0] & records[2] or records[1] & records[2])


def test_normalisation_is_fitted_on_the_training_rows(training_set):
    again = fit_normalisation(training_set.corpus, training_set.assignment, FeatureOptions(soc_head=True), "hybrid")
    assert training_set.normalisation == again
    assert training_set.input_size == len(again["features"]) and len(again["targets"]) == 2  # voltage, SOC


def test_train_fresh_empties_the_run_folder_first(training_set, tmp_path):
    stale = tmp_path / "run" / "stale.txt"
    stale.parent.mkdir()
    stale.write_text("from an older run")
    model = ResidualRNNConfig(input_size=training_set.input_size, output_size=len(training_set.normalisation["targets"]),
                              hidden_size=4, layers=1)
    trained, result = training_set.train_fresh("gru", model, TrainConfig(epochs=1, truncation_steps=100),
                                               tmp_path / "run")
    assert not stale.exists() and (tmp_path / "run" / "best.pt").is_file()
    assert trained.name == "gru" and result.epochs_run == 1


def test_corpus_on_demand_generates_only_a_missing_corpus(smoke_corpus_dir, tmp_path, monkeypatch):
    generated: list[Path] = []
    monkeypatch.setattr(dataset, "generate_corpus", lambda spec, path, progress: generated.append(path))
    assert corpus_on_demand(smoke_corpus_dir, spec=None) == smoke_corpus_dir and generated == []
    assert corpus_on_demand(tmp_path / "new", spec=None) == tmp_path / "new" and generated == [tmp_path / "new"]
