"""Facts about model selection on validation records: each model gets the candidate with the
lowest validation error (mean over seeds), the held-out record plays no part even where it would
prefer another candidate, and "no fine-tuning" is a candidate like the recipes."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hybrid.data.columns import SOC, TIME, VOLTAGE
from hybrid.data.corpus import Record, Corpus
from hybrid.data.features import FeatureOptions
from hybrid.evaluate.predict import RecordPrediction
from hybrid.train.run import BLACK_BOX
from hybrid.transfer import selection
from hybrid.transfer.runs import FINETUNED, SCRATCH, TransferOptions
from hybrid.transfer.selection import NO_FINETUNING, choose, epoch_budgets, select_by_validation
from sim.errors import ConfigError

FIT, VAL, TEST = 0, 1, 2
OPTIONS = TransferOptions(hybrid_model={"kind": "residual_rnn", "cell": "gru", "hidden_size": 4, "layers": 1},
                          features=FeatureOptions(), epochs=4, pretrain_epochs=1, learning_rate=1e-3,
                          truncation_steps=10, seeds=(0, 1))
DEFAULT_ERROR_mV = (50.0, 50.0)
# (model or recipe name, epochs) -> (validation error, held-out error) [mV]; a stub model has these errors
ERRORS_mV = {("lr 1e-4", 2): (10.0, 40.0),  # the best on validation
             ("head only, lr 1e-3", 4): (20.0, 5.0),  # the held-out record would prefer it
             ("pretrained", 0): (30.0, 1.0),  # no fine-tuning: the held-out record's favourite
             (BLACK_BOX, 1): (40.0, 60.0), (BLACK_BOX, 4): (45.0, 10.0),
             (SCRATCH, 2): (15.0, 50.0), (SCRATCH, 4): (16.0, 2.0)}
LUCKY_SEED_mV = {("lr 3e-4", 1, 0): 1.0, ("lr 3e-4", 1, 1): 100.0}  # best on one seed, not on the mean


def record(sample_id: int) -> Record:
    rows = 20
    return Record(sample_id, {TIME: np.arange(rows, dtype=float), VOLTAGE: np.full(rows, 3.3), SOC: np.full(rows, 0.5)},
                {}, 298.15, 2.0, {})


CORPUS = Corpus(Path("."), pd.DataFrame(index=[FIT, VAL, TEST]), {i: record(i) for i in (FIT, VAL, TEST)}, [], [])


@dataclass
class StubModel:
    name: str
    epochs: int
    seed: int
    normalisation: dict = field(default_factory=dict)

    def error_mV(self, sample_id: int) -> float:
        lucky = LUCKY_SEED_mV.get((self.name, self.epochs, self.seed))
        if lucky is not None and sample_id == VAL:
            return lucky
        return ERRORS_mV.get((self.name, self.epochs), DEFAULT_ERROR_mV)[0 if sample_id == VAL else 1]


@pytest.fixture
def stubbed(monkeypatch):
    """Training and prediction replaced by stubs; returns what they were asked for."""
    asked = {"predicted": set(), "trained_on": []}
    seeds = iter([0, 1])

    def train_records(name, data, model, config, run_dir, **_):
        asked["trained_on"].append({split: set(ranges) for split, ranges in data.assignment.ranges.items()})
        return StubModel(name, config.epochs, config.seed)

    def predict_records(model, corpus, sample_ids):
        asked["predicted"].update(sample_ids)
        return {i: RecordPrediction(corpus.cells[i].columns[VOLTAGE] + model.error_mV(i) / 1e3,
                                    corpus.cells[i].columns[SOC]) for i in sample_ids}

    monkeypatch.setattr(selection, "train_records", train_records)
    monkeypatch.setattr(selection, "predict_records", predict_records)
    monkeypatch.setattr(selection, "fit_normalisation", lambda *args: {})
    monkeypatch.setattr(selection, "load_trained", lambda path, name: StubModel("pretrained", 0, next(seeds)))
    return asked


def test_selection_picks_the_lowest_mean_validation_error_and_never_sees_the_held_out_record(stubbed, tmp_path):
    chosen = select_by_validation(CORPUS, [FIT], [VAL], {0: tmp_path / "0.pt", 1: tmp_path / "1.pt"}, OPTIONS,
                                  tmp_path)
    assert chosen.recipe is not None and chosen.recipe.name == "lr 1e-4"
    assert chosen.epochs == {BLACK_BOX: 1, SCRATCH: 2, FINETUNED: 2}
    assert stubbed["predicted"] == {VAL}
    assert all(splits == {"train": {FIT}, "val": {VAL}} for splits in stubbed["trained_on"])
    budgets = epoch_budgets(OPTIONS.epochs)
    assert budgets == [1, 2, 4] and len(chosen.candidates) == 1 + len(budgets) * (2 + len(OPTIONS.candidates))
    lucky = next(c for c in chosen.candidates if (c["recipe"], c["epochs"]) == ("lr 3e-4", 1))
    assert lucky["mean"] == pytest.approx(50.5) and lucky["sd"] == pytest.approx(49.5)


def test_keeping_the_pretrained_weights_is_a_candidate():
    errors = {(model, "from scratch", 1): [5.0] for model in (BLACK_BOX, SCRATCH)}
    errors[(FINETUNED, NO_FINETUNING, 0)] = [3.0, 5.0]
    errors[(FINETUNED, "lr 1e-3", 1)] = [4.0, 4.0]  # the same mean: the first candidate wins the tie
    chosen = choose(errors, OPTIONS.candidates)
    assert chosen.recipe is None and chosen.epochs[FINETUNED] == 0
    assert chosen.summary()["recipe"] == {"name": NO_FINETUNING}


def test_validation_records_must_be_other_records(tmp_path):
    with pytest.raises(ConfigError, match="disjoint"):
        select_by_validation(CORPUS, [FIT, VAL], [VAL], {}, OPTIONS, tmp_path)
