"""Facts about the evaluation report of the smoke run: the documented shape, and determinism."""

from __future__ import annotations

import json

from hybrid.evaluate.run import evaluate_run

MODELS = {"physics", "black_box", "gru"}
STATS = {"rmse_mV", "mae_mV", "max_mV", "points"}


def test_metrics_have_the_documented_shape(smoke_run):
    run_dir, summary, report = smoke_run
    assert json.loads((run_dir / "metrics.json").read_text()) == json.loads(json.dumps(report))
    assert set(report["splits"]) == {"train", "val", "test"}  # no ageing, one temperature, no design hold-out
    for split, table in report["splits"].items():
        assert set(table) == MODELS, split
        for stats in table.values():
            assert set(stats) == STATS and 0 < stats["mae_mV"] <= stats["rmse_mV"] <= stats["max_mV"]
        assert set(report["timescales"][split]) == MODELS
        assert {"pulse", "rest"} <= set(report["timescales"][split]["gru"])
        assert set(report["soc"][split]) == MODELS
        assert report["validity"][split]["invalid_rows"] == 0
    physics_quarters = report["long_horizon"]["physics"]["quarter_rmse_mV"]
    assert len(physics_quarters) == 4 and all(value > 0 for value in physics_quarters)
    assert report["soh"] == {}  # no capacity checks in the smoke protocols
    assert report["temperature"] == {}  # no temperature head in the smoke run
    for name in ("black_box", "gru"):
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
