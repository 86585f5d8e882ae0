"""The transfer study's tables: seed means per held-out test, the targets, and the data-efficiency curve."""

import pytest

from hybrid.data import Fold
from hybrid.transfer.tables import CONTEXT_MODEL, CONTEXT_VARIANT, curve_rows, curve_target, held_out_rows, summarise_rows

FOLD = Fold("-15C_val_5C", "leave_one_out", (-15.0,), (5.0,), ("dyn/m15.csv",), ("dyn/p05.csv",),
            ("dyn/p25.csv", "dyn/m25.csv"), "dyn/p25.csv")
MODELS = ("physics_nominal", "physics", "ecm", "black_box")


def per_test(hybrid_mV: float, ecm_mV: float = 30.0) -> list[dict]:
    """One seed's held-out per_test rows (hybat evaluate's shape) for the fold's one test."""
    scores = {name: {"rmse_soc_5_95_mV": ecm_mV if name == "ecm" else 40.0, "soc_mae_pct": 0.5} for name in MODELS}
    scores["lstm"] = {"rmse_soc_5_95_mV": hybrid_mV, "soc_mae_pct": 0.2}
    return [{"file": "dyn/m15.csv", "ambient_temperature_degC": -15.0, "scores": scores}]


def test_held_out_rows_average_over_seeds_and_score_the_deterministic_models_once():
    runs = {"scratch": [per_test(30.0), per_test(50.0, ecm_mV=99.0)], "zero_shot": [per_test(20.0), per_test(20.0)],
            "fine_tuned": [per_test(10.0), per_test(14.0)]}
    [row] = held_out_rows(FOLD, runs, "lstm")
    assert row["hybrid_scratch"]["rmse_soc_5_95_mV"] == {"mean": 40.0, "sd": 10.0}
    assert row["ecm"]["seeds"] == 1 and row["ecm"]["rmse_soc_5_95_mV"]["mean"] == 30.0  # seed 0's fit only
    summary = summarise_rows([row])
    targets = {target["target"]: target for target in summary["targets"]}
    assert targets["fine-tuned / ECM, mean RMSE 5–95 % SOC"]["value"] == pytest.approx(12.0 / 30.0)
    assert targets["fine-tuned / ECM, mean RMSE 5–95 % SOC"]["met"]
    assert targets["zero-shot / calibrated physics, mean RMSE 5–95 % SOC"]["value"] == pytest.approx(0.5)


def test_the_curve_ends_with_the_full_runs_and_judges_every_point():
    full = {"scratch": [per_test(30.0)], "fine_tuned": [per_test(20.0)], "zero_shot": [per_test(25.0)]}
    curve = {1: {"scratch": [per_test(60.0)], "fine_tuned": [per_test(70.0)]}}
    rows = curve_rows(FOLD, full, curve, ("dyn/p25.csv", "dyn/m25.csv"), "lstm")
    assert [(row["train_tests"], row["added"]) for row in rows] == [(1, "dyn/p25.csv"), (2, "dyn/m25.csv")]
    assert rows[1]["fine_tuned"]["mean"] == 20.0
    assert curve_target(rows) == {"points": 2, "fine_tuned_at_or_below_scratch": 1, "met": False}
    assert curve_target([]) is None



def test_the_context_run_adds_its_columns_and_judges_zero_shot_on_the_rows_after_the_context():
    def context_test(hybrid_mV: float) -> list[dict]:
        [row] = per_test(99.0)
        row["scores"] = {"physics": {"rmse_soc_5_95_mV": 40.0, "soc_mae_pct": 0.5},
                         CONTEXT_MODEL: {"rmse_soc_5_95_mV": hybrid_mV, "soc_mae_pct": 0.5}}
        return [row]

    runs = {"scratch": [per_test(30.0)], "zero_shot": [per_test(20.0)], "fine_tuned": [per_test(10.0)]}
    [plain] = held_out_rows(FOLD, runs, "lstm")
    assert "zero_shot_context" not in plain and "zero_shot_context" not in summarise_rows([plain])["columns"]

    [row] = held_out_rows(FOLD, {**runs, CONTEXT_VARIANT: [context_test(16.0), context_test(24.0)]}, "lstm")
    assert row["zero_shot_context"]["rmse_soc_5_95_mV"] == {"mean": 20.0, "sd": 4.0}
    assert row["physics_after_context"]["seeds"] == 1
    targets = {target["target"]: target for target in summarise_rows([row])["targets"]}
    assert targets["zero-shot with context / calibrated physics, after the context"]["value"] == pytest.approx(0.5)
    assert targets["zero-shot with context / calibrated physics, after the context"]["met"]
