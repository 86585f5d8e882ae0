"""How far the physics model is from the reference in a corpus, overall and by timescale.

Usage:
    python experiments/corpus_residuals.py CORPUS_DIR [--out table.md]

Prints a Markdown table and one JSON line: RMSE [mV] of Voltage - Physics voltage over all
usable rows, and split by timescale:
    fast       rows inside short current pulses and drive-cycle segments (time step <= 2 s,
               current flowing)
    relaxation rows at rest (|I| < C/50), where hysteresis and diffusion show
    early life / late life   ageing-campaign rows before the first cycle-tagged block and after
               the last two thirds of the campaign's cycles
plus the drift of the mean residual from the first to the last capacity check of each ageing
campaign (the irreversible timescale).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

from hybrid.evaluate import rmse_mV


def _life_masks(series: pd.DataFrame, cycles: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, list[float]]:
    """Early/late-life row masks and per-campaign capacity-check residual drift [mV]."""
    early = np.zeros(len(series), dtype=bool)
    late = np.zeros(len(series), dtype=bool)
    drifts = []
    reference = cycles[cycles["Source"] == "reference"]
    for sample_id, blocks in reference.groupby("sample_id"):
        cycle_blocks = blocks[blocks["Tag"] == "cycle"]
        if len(cycle_blocks) < 3:
            continue
        rows = (series["sample_id"] == sample_id).to_numpy()
        time_s = series["Time [s]"].to_numpy()
        boundary = cycle_blocks["End time [s]"].iloc[int(2 * len(cycle_blocks) / 3) - 1]
        early |= rows & (time_s < cycle_blocks["Start time [s]"].iloc[0])
        late |= rows & (time_s > boundary)
        checks = blocks[blocks["Tag"] == "capacity"]
        residual = (series["Voltage [V]"] - series["Physics voltage [V]"]).to_numpy()
        means = [residual[rows & (time_s >= start) & (time_s <= end)].mean()
                 for start, end in zip(checks["Start time [s]"], checks["End time [s]"])]
        if len(means) >= 2:
            drifts.append(1000.0 * (means[-1] - means[0]))
    return early, late, drifts


def corpus_residuals(corpus: Path) -> dict:
    finished = corpus / "samples.parquet"
    # a corpus still being written has only its journal of finished samples
    samples = pd.read_parquet(finished if finished.exists() else corpus / "samples")
    usable = samples.loc[samples["status"] != "failed", ["sample_id", "capacity_Ah"]]
    series = pd.read_parquet(corpus / "series").merge(usable, on="sample_id")
    series = series.sort_values(["sample_id", "Time [s]"], kind="stable").reset_index(drop=True)
    cycles = pd.read_parquet(corpus / "cycles")
    residual = (series["Voltage [V]"] - series["Physics voltage [V]"]).to_numpy()
    current = series["Current [A]"].to_numpy()
    step = series.groupby("sample_id")["Time [s]"].diff().fillna(0).to_numpy()
    resting = np.abs(current) < series["capacity_Ah"].to_numpy() / 50
    fast = ~resting & (step > 0) & (step <= 2.0)
    early, late, drifts = _life_masks(series, cycles)
    return {
        "samples": int(len(usable)), "failed": int((samples["status"] == "failed").sum()),
        "rows": int(len(series)),
        "rmse_mV": {"all": rmse_mV(residual), "fast": rmse_mV(residual[fast]),
                    "relaxation": rmse_mV(residual[resting]), "early_life": rmse_mV(residual[early]),
                    "late_life": rmse_mV(residual[late])},
        "capacity_check_drift_mV": {"campaigns": len(drifts),
                                    "mean": float(np.mean(drifts)) if drifts else float("nan"),
                                    "min": float(np.min(drifts)) if drifts else float("nan"),
                                    "max": float(np.max(drifts)) if drifts else float("nan")},
    }


def markdown(figures: dict) -> str:
    rmse = figures["rmse_mV"]
    drift = figures["capacity_check_drift_mV"]
    lines = ["| rows | all | fast | relaxation | early life | late life | capacity-check drift (mean, range) |",
             "|---|---|---|---|---|---|---|",
             f"| {figures['rows']} | {rmse['all']:.1f} | {rmse['fast']:.1f} | {rmse['relaxation']:.1f} | "
             f"{rmse['early_life']:.1f} | {rmse['late_life']:.1f} | {drift['mean']:.1f} "
             f"({drift['min']:.1f} to {drift['max']:.1f}) |"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", type=Path)
    parser.add_argument("--out", type=Path, default=None, help="write the Markdown table here")
    args = parser.parse_args(argv)
    figures = corpus_residuals(args.corpus)
    table = markdown(figures)
    print(table)
    print(json.dumps(figures))
    if args.out:
        args.out.write_text(table + "\n")
    return figures


if __name__ == "__main__":
    main()
