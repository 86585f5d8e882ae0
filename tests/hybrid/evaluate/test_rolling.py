"""Facts about the rolling evaluation: every model is scored on exactly the forecast rows,
hold-last is exact on a constant residual, and a run on the smoke corpus trains a forecaster,
reloads it and reports it in ``rolling`` only."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
import yaml

from hybrid.data import Corpus
from hybrid.evaluate.predict import RecordPrediction, physics_prediction
from hybrid.evaluate.rolling import HOLD_LAST, rolling_table
from hybrid.evaluate.run import evaluate_run
from hybrid.models import Seq2SeqForecaster, build_model, config_to_dict
from hybrid.train import TrainedModel, load_trained
from hybrid.train.run import TrainRunConfig, train_from_config
from sim.config import validate
from tests.hybrid.conftest import SMOKE_RUN
from tests.hybrid.data.test_windows import NORMALISATION, WINDOWS, record
from tests.hybrid.models.test_forecaster import TIME_CONFIG

OFFSET_V = 0.01


def _corpus_with_a_constant_residual() -> Corpus:
    cell = record()
    cell.columns["Voltage [V]"] = cell.columns["Physics voltage [V]"] + OFFSET_V
    return Corpus(None, pd.DataFrame(), {0: cell}, ["Physics voltage [V]"], [])


def _forecaster() -> TrainedModel:
    torch.manual_seed(0)
    model = build_model(TIME_CONFIG).train()  # rolling_table must switch it to free-running itself
    return TrainedModel("rolling", model, NORMALISATION, config_to_dict(TIME_CONFIG), [], 0)


def test_every_model_is_scored_on_the_same_forecast_rows_and_hold_last_is_exact_on_a_constant_residual():
    corpus = _corpus_with_a_constant_residual()
    cell = corpus.cells[0]
    scored = np.ones(cell.rows, dtype=bool)
    scored[::7] = False  # e.g. invalid rows
    predictions = {"physics": {0: physics_prediction(cell)},
                   "exact": {0: RecordPrediction(cell.columns["Voltage [V]"], None)}}
    table = rolling_table(corpus, [_forecaster()], predictions, {0: scored})
    spans = WINDOWS.spans(cell, scored)
    points = sum(int(scored[origin:stop].sum()) for _, origin, stop in spans)
    assert set(table) == {"rolling", HOLD_LAST, "physics", "exact"}
    assert {(entry["points"], entry["windows"], entry["horizon_s"]) for entry in table.values()} == {
        (points, len(spans), WINDOWS.horizon_s)}
    assert np.isclose(table["physics"]["rmse_mV"], 1e3 * OFFSET_V)
    assert table[HOLD_LAST]["rmse_mV"] < 1e-9 and table["exact"]["rmse_mV"] == 0.0
    assert np.isfinite(table["rolling"]["rmse_mV"])


def test_without_a_forecaster_there_is_no_rolling_table():
    corpus = _corpus_with_a_constant_residual()
    predictions = {"physics": {0: physics_prediction(corpus.cells[0])}}
    assert rolling_table(corpus, [], predictions, {0: np.ones(corpus.cells[0].rows, dtype=bool)}) == {}


def test_a_run_trains_reloads_and_scores_a_forecaster_in_rolling_only(smoke_corpus_dir, tmp_path):
    data = yaml.safe_load(SMOKE_RUN.read_text())
    data["models"] = [{"name": "rolling", "model": {"kind": "forecaster", "hidden_size": 16, "context_s": 300,
                                                     "horizon_s": 300, "stride_s": 100}}]
    data["train"] |= {"epochs": 4, "truncation_steps": None}
    run_dir = tmp_path / "run"
    summary = train_from_config(validate(TrainRunConfig, data, "smoke + forecaster"), smoke_corpus_dir, run_dir)
    report = evaluate_run(run_dir, smoke_corpus_dir)
    assert summary["models"]["rolling"]["best_val_loss"] < summary["models"]["rolling"]["initial_val_loss"]
    trained = load_trained(run_dir / "rolling" / "best.pt", "rolling")
    assert isinstance(trained.model, Seq2SeqForecaster) and not trained.model.training
    for split, table in report["rolling"].items():
        assert "rolling" not in report["splits"][split]  # no open-loop model
        assert {"rolling", HOLD_LAST, "physics", "black_box"} <= set(table)
        assert len({entry["points"] for entry in table.values()}) == 1 and table["physics"]["points"] > 0
    assert report["rolling"]["train"]["rolling"]["rmse_mV"] < report["rolling"]["train"]["physics"]["rmse_mV"]
    assert report["throughput"]["rolling"]["inference_steps_per_s"] is None
