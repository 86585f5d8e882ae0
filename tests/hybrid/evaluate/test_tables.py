"""Facts about an experiment's outputs: number formats of the Markdown tables, NaN written as
null in the figures JSON, and the tables of score_tables' summaries."""

from __future__ import annotations

import json
import math

import numpy as np
from matplotlib.figure import Figure

from hybrid.evaluate.metrics import score_tables
from hybrid.evaluate.tables import (format_mean_sd, format_value, json_safe, markdown_table, per_record_table,
                                    summary_table, write_outputs)


def test_markdown_table_formats_floats_by_size_and_nan_as_na():
    table = markdown_table(["model", "rmse", "tiny", "missing", "count"], [["gru", 12.345, 0.01234, math.nan, 3]])
    header, rule, row = table.splitlines()
    assert header == "| model | rmse | tiny | missing | count |" and rule == "|---|---|---|---|---|"
    assert row == "| gru | 12.3 | 0.0123 | n/a | 3 |"


def test_mean_sd_drops_the_sd_for_one_seed_and_marks_a_missing_mean():
    assert format_mean_sd(12.345, 0.55) == "12.3 ± 0.6"  # 0.55 is stored a little above
    assert format_mean_sd(12.345, 0.55, digits=2, show_sd=False) == "12.35"
    assert format_mean_sd(None, 1.0) == "–" and format_value(None) == "–" and format_value(1.25, 2) == "1.25"


def test_write_outputs_writes_json_with_nan_as_null(tmp_path):
    figure = Figure()
    figure.add_subplot().plot([0, 1], [0, 1])
    paths = write_outputs(tmp_path, "result", "| a |", {"rmse": np.float64(math.nan), 5: (np.int64(2), 1.5)}, figure)
    assert json.loads(paths["figures"].read_text()) == {"rmse": None, "5": [2, 1.5]}
    assert paths["plot"].read_bytes()[:4] == b"\x89PNG" and paths["table"].read_text() == "| a |\n"
    assert json_safe({1.5: float("inf")}) == {"1.5": None}


def per_seed_scores(rmse_by_seed: list[float]) -> list[dict[int, dict]]:
    """Two records (0: training, 1: held out) with the given held-out RMSE per seed."""
    return [{0: {"rmse_mV": 1.0, "rmse_soc_5_95_mV": 1.0, "soc_mae_pct": 0.5},
             1: {"rmse_mV": rmse, "rmse_soc_5_95_mV": rmse / 2, "soc_mae_pct": 1.0}} for rmse in rmse_by_seed]


def test_summary_tables_report_mean_and_sd_over_seeds():
    tables = score_tables({"hybrid": per_seed_scores([10.0, 20.0]), "physics": per_seed_scores([30.0])}, [0], [1])
    summary = summary_table(tables["summary"], {"hybrid": "(1) hybrid", "physics": "(2) physics"})
    rows = summary.splitlines()[2:]
    assert rows[0] == "| (1) hybrid | 15.0 ± 5.0 | 7.5 ± 2.5 | 1.00 ± 0.00 | 1.0 ± 0.0 |"
    assert rows[1] == "| (2) physics | 30.0 | 15.0 | 1.00 | 1.0 |"  # one seed: no sd
    per_record = per_record_table(tables, ["hybrid"], {0: "train", 1: "held out"})
    assert per_record.splitlines()[2] == "| hybrid | 1.0 / 1.0 ±0.0 | 15.0 / 7.5 ±2.5 |"
