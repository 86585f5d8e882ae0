"""Facts about the evaluation report of the smoke run: the documented shape, and determinism."""

from __future__ import annotations

import json

from hybrid.evaluate.run import evaluate_run

MODELS = {"physics", "black_box", "gru", "gru-m1", "gru_context", "gru_context_none"}  # gru-m1: the ensemble member;
# gru_context_none: the context model without context
STATS = {"rmse_mV", "mae_mV", "max_mV", "points", "vs_physics", "vs_floor"}


def test_metrics_have_the_documented_shape(smoke_run):
    run_dir, summary, report = smoke_run
    assert json.loads((run_dir / "metrics.json").read_text()) == json.loads(json.dumps(report))
    report = json.loads(json.dumps(report))  # a copy to take apart
    assert set(report["splits"]) == {"train", "val", "test"}  # no ageing, one temperature, no design hold-out
    for split, table in report["splits"].items():
        floor = table.pop("floor")  # the smoke corpus has the nominal plant
        assert set(table) == MODELS, split
        for stats in table.values():
            assert set(stats) == STATS and 0 < stats["mae_mV"] <= stats["rmse_mV"] <= stats["max_mV"]
            assert stats["vs_floor"] == stats["rmse_mV"] / floor["rmse_mV"]
        assert table["physics"]["vs_physics"] == 1.0
        assert floor["coverage"] == 1.0 and floor["noise_mV"] == 0.5
        assert floor["noise_mV"] < floor["rmse_mV"] < table["physics"]["rmse_mV"]  # spread is part of the floor
        assert set(report["timescales"][split]) == MODELS
        assert {"pulse", "rest"} <= set(report["timescales"][split]["gru"])
        assert set(report["soc"][split]) == MODELS
        assert report["validity"][split]["invalid_rows"] == 0
        assert 0 < report["validity"][split]["context_rows"] < report["validity"][split]["rows"]
        assert table["physics"]["points"] == report["validity"][split]["rows"] - report["validity"][split]["context_rows"]
    physics_quarters = report["long_horizon"]["physics"]["quarter_rmse_mV"]
    assert len(physics_quarters) == 4 and all(value > 0 for value in physics_quarters)
    assert report["soh"] == {}  # no capacity checks in the smoke protocols
    assert report["temperature"] == {}  # no temperature head in the smoke run
    for name in ("black_box", "gru", "gru_context"):
        assert report["throughput"][name]["train_steps_per_s"] > 0
        assert report["throughput"][name]["inference_steps_per_s"] > 0
        assert report["models"][name]["causal"] and report["models"][name]["parameters"] > 0
    assert "voltage_overlay.png" in report["plots"]
    for name in report["plots"]:
        assert (run_dir / "plots" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_evaluation_is_deterministic(smoke_run, smoke_corpus_dir):
    run_dir, _, report = smoke_run
    again = evaluate_run(run_dir, smoke_corpus_dir)
    assert again["splits"] == report["splits"] and again["soc"] == report["soc"]
