"""Facts about one transfer training run: the options train for exactly the chosen epochs (no early
stop), the black box is the hybrid's model with kind black_box, whole records split by id, and a
finished run is loaded instead of trained again."""

from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError

from hybrid.data.features import FeatureOptions, fit_normalisation
from hybrid.data.corpus import load_corpus
from hybrid.train.dataset import TrainingSet
from hybrid.transfer import runs
from hybrid.transfer.runs import LAST, record_split, train_records
from tests.hybrid.transfer.test_selection import OPTIONS


def test_options_train_exactly_the_given_epochs():
    config = OPTIONS.train_config(epochs=7, learning_rate=3e-4, seed=5)
    assert (config.epochs, config.early_stopping_patience, config.learning_rate, config.seed) == (7, 7, 3e-4, 5)
    assert config.truncation_steps == OPTIONS.truncation_steps and config.schedule == "cosine"
    assert OPTIONS.black_box_model == {**OPTIONS.hybrid_model, "kind": "black_box"}
    with pytest.raises(ValidationError, match="seeds"):
        OPTIONS.model_validate({**OPTIONS.model_dump(), "seeds": ()})


def test_a_finished_run_is_loaded_not_trained_again(smoke_corpus_dir, tmp_path, monkeypatch):
    corpus = load_corpus(smoke_corpus_dir)
    train_ids, test_ids = corpus.sample_ids[:2], corpus.sample_ids[2:]
    assignment = record_split(corpus, train_ids, test_ids)
    assert {i: stop for i, (_, stop) in assignment.ranges["test"].items()} == {i: corpus.cells[i].rows for i in test_ids}
    data = TrainingSet(corpus, assignment, fit_normalisation(corpus, assignment, FeatureOptions(), "hybrid"))
    config = OPTIONS.train_config(epochs=1, learning_rate=1e-3, seed=0)
    first = train_records("gru", data, OPTIONS.hybrid_model, config, tmp_path, keep=LAST)
    assert (tmp_path / "finished.json").is_file()

    def no_training(*args, **kwargs):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(runs, "train_model", no_training)
    again = train_records("gru", data, OPTIONS.hybrid_model, config, tmp_path, keep=LAST)
    for name, weights in first.model.state_dict().items():
        assert torch.equal(weights, again.model.state_dict()[name]), name
