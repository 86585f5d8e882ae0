"""An experiment's three outputs: a Markdown table (and its number formats), a JSON file of figures
(NaN as null) and a PNG plot."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np


def markdown_table(header: list[str], rows: list[list[Any]]) -> str:
    """A Markdown table; floats with one decimal (under 0.1: three significant digits; NaN as "n/a")."""
    def cell(value: Any) -> str:
        if isinstance(value, float):
            return "n/a" if not math.isfinite(value) else f"{value:.1f}" if abs(value) >= 0.1 else f"{value:.3g}"
        return str(value)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(value) for value in row) + " |" for row in rows]
    return "\n".join(lines)


def format_value(value: float | None, digits: int = 1) -> str:
    """``value`` with ``digits`` decimals; "–" for a missing one."""
    return "–" if value is None else f"{value:.{digits}f}"


def format_mean_sd(mean: float | None, sd: float | None, digits: int = 1, show_sd: bool = True) -> str:
    """"mean ± sd" with ``digits`` decimals, just "mean" without ``show_sd`` (e.g. a single seed)
    or an sd; "–" for a missing mean."""
    if mean is None:
        return "–"
    return f"{mean:.{digits}f} ± {sd:.{digits}f}" if show_sd and sd is not None else f"{mean:.{digits}f}"


def summary_table(summary: dict[str, dict[str, Any]], labels: dict[str, str]) -> str:
    """Markdown of :func:`hybrid.evaluate.score_tables`' "summary": one row per model of ``labels``
    (model -> row label) with its held-out voltage RMSE over the record and inside 5-95 % SOC
    [mV], held-out SOC MAE [%] and training RMSE inside 5-95 % SOC [mV], each "mean ± sd" over
    seeds (the mean alone for one seed)."""
    def cell(model: str, part: str, key: str, digits: int = 1) -> str:
        block = summary[model]
        return format_mean_sd(block[part][key], block[f"{part}_sd"][key], digits, show_sd=block["seeds"] > 1)

    return markdown_table(
        ["model", "held-out RMSE", "held-out RMSE 5–95 % SOC", "held-out SOC MAE", "train RMSE 5–95 % SOC"],
        [[label, cell(model, "held_out", "rmse_mV"), cell(model, "held_out", "rmse_soc_5_95_mV"),
          cell(model, "held_out", "soc_mae_pct", 2), cell(model, "train", "rmse_soc_5_95_mV")]
         for model, label in labels.items()])


def per_record_table(tables: dict[str, dict[str, Any]], models: list[str], columns: dict[int, str]) -> str:
    """Markdown of :func:`hybrid.evaluate.score_tables`' "per_test": one row per model of
    ``models``, one column per record (``columns``: sample_id -> header), each "RMSE over the
    record / inside 5-95 % SOC" [mV], means over seeds, with the latter's sd for several seeds."""
    def cell(model: str, sample_id: int) -> str:
        scores = tables["per_test"][model][str(sample_id)]
        spread = f" ±{scores['rmse_soc_5_95_mV']['sd']:.1f}" if tables["summary"][model]["seeds"] > 1 else ""
        whole, window = format_value(scores["rmse_mV"]["mean"]), format_value(scores["rmse_soc_5_95_mV"]["mean"])
        return f"{whole} / {window}{spread}"

    rows = [[model, *(cell(model, sample_id) for sample_id in columns)] for model in models]
    return markdown_table(["model", *columns.values()], rows)


def per_test_table(per_test: list[dict[str, Any]]) -> str:
    """Markdown of the evaluation report's ``per_test`` section (rows in its order: held-out tests
    first): one row per test (file, ambient temperature [degC], split), one column per model, each
    "RMSE over the record / inside 5-95 % SOC [mV] / SOC MAE [%]" ("–" for a missing figure)."""
    models = list(dict.fromkeys(name for row in per_test for name in row["scores"]))

    def cell(scores: dict[str, Any] | None) -> str:
        if scores is None:
            return "–"
        return " / ".join([format_value(scores["rmse_mV"]), format_value(scores["rmse_soc_5_95_mV"]),
                           format_value(scores["soc_mae_pct"], 2)])

    rows = [[row["file"] or row["sample_id"], f"{row['ambient_temperature_degC']:g}", row["split"],
             *(cell(row["scores"].get(model)) for model in models)] for row in per_test]
    return markdown_table(["test", "T [°C]", "split", *models], rows)


def write_outputs(out: Path, name: str, table: str, figures: dict[str, Any], figure: Any) -> dict[str, Path]:
    """Write OUT/NAME.md, OUT/NAME.json (NaN as null) and OUT/NAME.png (from the matplotlib
    ``figure``, then closed); print the table. Returns the three paths."""
    from matplotlib import pyplot as plt  # only experiments that plot pay for pyplot

    out.mkdir(parents=True, exist_ok=True)
    paths = {"table": out / f"{name}.md", "figures": out / f"{name}.json", "plot": out / f"{name}.png"}
    paths["table"].write_text(table + "\n")
    paths["figures"].write_text(json.dumps(json_safe(figures), indent=1) + "\n")
    figure.tight_layout()
    figure.savefig(paths["plot"], dpi=110)
    plt.close(figure)
    print(table)
    return paths


def json_safe(value: Any) -> Any:
    """``value`` with dict keys as strings, tuples as lists, numpy numbers as python ones and
    non-finite floats as None, for json.dumps."""
    if isinstance(value, dict):
        return {str(key): json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value
