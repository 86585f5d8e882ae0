"""Facts about the error metrics: the RMSE, the error statistics and the record scores."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hybrid.evaluate.metrics import (error_stats, over_seeds, percent_stats, rmse_mV, score_record, score_tables,
                                     summarise)
from hybrid.evaluate.predict import RecordPrediction


def test_rmse_of_a_known_error_and_of_no_rows():
    assert rmse_mV(np.array([0.003, -0.004])) == pytest.approx(math.sqrt(12.5))  # 3 and 4 mV
    assert math.isnan(rmse_mV(np.empty(0)))


def test_error_stats_are_ordered_and_in_the_named_unit():
    stats = error_stats(np.array([0.001, -0.002, 0.004]))
    assert stats["points"] == 3 and stats["max_mV"] == pytest.approx(4.0)
    assert stats["mae_mV"] <= stats["rmse_mV"] <= stats["max_mV"]
    assert stats["rmse_mV"] == pytest.approx(rmse_mV(np.array([0.001, -0.002, 0.004])))
    assert set(percent_stats(np.array([1.0]))) == {"rmse_pct", "mae_pct", "max_pct", "points"}


def test_score_record_keeps_the_soc_window_and_skips_non_finite_rows():
    reference_V = np.full(5, 3.3)
    reference_soc = np.array([1.0, 0.9, 0.5, 0.1, 0.0])  # rows 1..3 inside 5-95 %
    voltage = reference_V + np.array([0.010, 0.002, np.nan, -0.002, 0.010])
    scores = score_record(RecordPrediction(voltage, reference_soc + 0.01), reference_V, reference_soc)
    assert scores["rows_scored"] == 4 and scores["rows"] == 5
    assert scores["rmse_soc_5_95_mV"] == pytest.approx(2.0)
    assert scores["rmse_mV"] == pytest.approx(math.sqrt((100 + 4 + 4 + 100) / 4))
    assert scores["soc_mae_pct"] == pytest.approx(1.0)
    assert score_record(RecordPrediction(voltage, None), reference_V, reference_soc)["soc_mae_pct"] is None


def test_means_over_records_and_seeds():
    per_seed = [{1: {"rmse_mV": 2.0, "rmse_soc_5_95_mV": None, "soc_mae_pct": 1.0}},
                {1: {"rmse_mV": 4.0, "rmse_soc_5_95_mV": None, "soc_mae_pct": 1.0}}]
    summary = summarise(per_seed, [1])
    assert summary["rmse_mV"] == {"mean": 3.0, "sd": 1.0}
    assert summary["rmse_soc_5_95_mV"] == {"mean": None, "sd": None}
    assert over_seeds([None, 5.0]) == {"mean": 5.0, "sd": 0.0}


def test_score_tables_split_training_and_held_out_records():
    def scores(rmse: float) -> dict:
        return {"rmse_mV": rmse, "rmse_soc_5_95_mV": rmse, "soc_mae_pct": 0.0}

    per_seed = [{0: scores(1.0), 1: scores(10.0)}, {0: scores(3.0)}]  # the second seed did not score record 1
    tables = score_tables({"m": per_seed}, train_ids=[0], test_ids=[1])
    summary = tables["summary"]["m"]
    assert summary["train"]["rmse_mV"] == 2.0 and summary["train_sd"]["rmse_mV"] == 1.0
    assert summary["held_out"]["rmse_mV"] == 10.0 and summary["seeds"] == 2
    assert tables["per_test"]["m"]["1"]["rmse_mV"] == {"mean": 10.0, "sd": 0.0}
    assert tables["per_test_per_seed"]["m"][1] == {"0": scores(3.0)}
