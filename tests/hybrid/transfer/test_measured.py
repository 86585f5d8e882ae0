"""Facts about training on measured records: each model trains for its chosen epochs (the
fine-tuned hybrid from the pretrained checkpoint, in its normalisation), no chosen recipe keeps
the pretrained model, and the data-efficiency curve trains on the first n records in order."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from hybrid.data.columns import SOC, VOLTAGE
from hybrid.evaluate.predict import RecordPrediction
from hybrid.train.recipes import FineTune
from hybrid.train.run import BLACK_BOX
from hybrid.transfer import measured
from hybrid.transfer.measured import data_efficiency, finetune, train_measured
from hybrid.transfer.runs import FINETUNED, SCRATCH, ZERO_SHOT, record_split
from hybrid.transfer.selection import Selection
from tests.hybrid.transfer.test_selection import CORPUS, OPTIONS, record

RECIPE = FineTune("lr 1e-4", 1e-4)
SELECTION = Selection(RECIPE, {BLACK_BOX: 1, SCRATCH: 2, FINETUNED: 4}, [])
PRETRAINED = Path("pretrained.pt")


@dataclass
class StubModel:
    name: str
    records: tuple[int, ...] = ()
    normalisation: dict = field(default_factory=lambda: {"from": "pretrained"})


@pytest.fixture
def runs(monkeypatch):
    """Training and loading replaced by stubs; returns the training calls."""
    calls = []

    def train_records(name, data, model, config, run_dir, **options):
        calls.append({"name": name, "epochs": config.epochs, "lr": config.learning_rate,
                      "records": tuple(sorted(data.assignment.ranges["train"])), "norm": data.normalisation, **options})
        return StubModel(name, calls[-1]["records"])

    monkeypatch.setattr(measured, "train_records", train_records)
    monkeypatch.setattr(measured, "load_trained", lambda path, name: StubModel(name))
    monkeypatch.setattr(measured, "fit_normalisation", lambda corpus, assignment, features, family: {"family": family})
    return calls


def test_each_model_trains_for_its_chosen_epochs(runs, tmp_path):
    models = train_measured(CORPUS, record_split(CORPUS, [0, 1], [2]), PRETRAINED, SELECTION, OPTIONS, 0,
                            tmp_path)
    assert list(models) == [BLACK_BOX, SCRATCH, ZERO_SHOT, FINETUNED]
    trained = {call["name"]: call for call in runs}
    assert {name: call["epochs"] for name, call in trained.items()} == {BLACK_BOX: 1, SCRATCH: 2, FINETUNED: 4}
    assert trained[BLACK_BOX]["norm"] == {"family": "black_box"} and trained[SCRATCH]["norm"] == {"family": "hybrid"}
    tuned = trained[FINETUNED]
    assert tuned["init"] == PRETRAINED and tuned["recipe"] == RECIPE and tuned["lr"] == RECIPE.learning_rate
    assert tuned["norm"] == {"from": "pretrained"} and all(call["records"] == (0, 1) for call in runs)


def test_no_chosen_recipe_keeps_the_pretrained_model(runs, tmp_path):
    kept = finetune(CORPUS, record_split(CORPUS, [0], [2]), PRETRAINED,
                    Selection(None, {FINETUNED: 0}, []), OPTIONS, 0, tmp_path)
    assert kept.name == FINETUNED and runs == []


def test_the_curve_trains_on_the_first_records_in_order(runs, monkeypatch, tmp_path):
    corpus = type(CORPUS)(CORPUS.path, CORPUS.samples, {i: record(i) for i in range(4)}, [], [])

    def predict_records(model, corpus, sample_ids):  # error [mV] = 10 x the number of training records
        return {i: RecordPrediction(corpus.cells[i].columns[VOLTAGE] + 0.01 * len(model.records),
                                    corpus.cells[i].columns[SOC]) for i in sample_ids}

    monkeypatch.setattr(measured, "predict_records", predict_records)
    main = {name: [{3: {"rmse_mV": 99.0, "rmse_soc_5_95_mV": 99.0, "soc_mae_pct": 0.0}}] for name in (SCRATCH, FINETUNED)}
    points = data_efficiency(corpus, [2, 0, 1], [3], {0: PRETRAINED}, SELECTION, OPTIONS.model_copy(update={"seeds": (0,)}),
                             tmp_path, main)
    assert [point["records"] for point in points] == [[2], [2, 0], [2, 0, 1]]
    assert {call["records"] for call in runs} == {(2,), (0, 2)}  # all three: the main run's, not retrained
    assert [point[SCRATCH]["rmse_mV"]["mean"] for point in points] == pytest.approx([10.0, 20.0, 99.0])
