"""Physics-only baseline on measured data: voltage RMSE of the nominal and the calibrated
physics model on every measured test in the shared data.

Usage:
    python experiments/measured_baseline.py [--data-dir DIR] [--configs NAME ...]
        [--resample-period-s S] [--pattern GLOB] [--calibration shared|per_test]
        [--work DIR] [--out results.md]

    --data-dir            the measured data (default: $HYBAT_REAL_DATA, else ../shared/data/real)
    --configs             configs/measured/<NAME>.yaml to run (default: a123_dynamic
                          samsung30q_hppc samsung30q_rate)
    --resample-period-s   resample every record (the calibration record too) onto this grid
                          instead of the measured one: faster, smoother (the fit grid stays
                          the config's)
    --pattern             replace the configs' test patterns with this glob (relative to the
                          config's data dir, e.g. "hppc/DNN01_*"); a config it matches nothing
                          in reports an error in the JSON line
    --calibration         override the configs' calibration mode (per_test fits every test)
    --work                where the paired corpora go (default: a temporary folder); a run
                          left there by the same command is resumed
    --out                 also write the Markdown table to this file

Each config is paired with sim.measured.pairing.pair_measured (calibrate, then drive the physics model
with each test's measured current), so the numbers are those a paired corpus holds:
RMSE before = nominal cell, RMSE after = calibrated cell, both over the whole record (up to
where a record ends, see the configs). Prints a Markdown table and one JSON line of figures.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import tempfile
import time
from pathlib import Path

import pandas as pd

from sim.config import load_config
from sim.measured import REAL_DATA_VARIABLE, PairingSpec, default_real_data_dir, pair_measured

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "measured"
DEFAULT_CONFIGS = ("a123_dynamic", "samsung30q_hppc", "samsung30q_rate")


def adjusted_spec(name: str, resample_period_s: float | None, pattern: str | None,
                  calibration_mode: str | None) -> PairingSpec:
    """The config ``name`` with the command line's overrides."""
    spec = load_config(CONFIGS / f"{name}.yaml", PairingSpec)
    data = spec.model_dump()
    if resample_period_s is not None:
        data["resample_period_s"] = resample_period_s
    if pattern is not None:
        data["tests"] = [{**group, "pattern": pattern} for group in data["tests"]]
    if calibration_mode is not None:
        data["calibration"]["mode"] = calibration_mode
    return PairingSpec.model_validate(data)


def run(names: list[str], work: Path, **overrides) -> tuple[pd.DataFrame, dict]:
    rows, figures = [], {}
    for name in names:
        spec = adjusted_spec(name, **overrides)
        started = time.perf_counter()
        try:
            out = work / name
            manifest = pair_measured(spec, out, resume=out.exists(), progress=False)
        except Exception as error:  # one config's problem must not hide the others' numbers
            figures[name] = {"error": f"{type(error).__name__}: {error}"}
            continue
        samples = pd.read_parquet(work / name / "samples.parquet")
        samples.insert(0, "config", name)
        rows.append(samples)
        calibration = manifest.get("calibration") or {}
        figures[name] = {
            "tests": manifest["counts"]["samples"], "failed": manifest["counts"]["failed"],
            "mean_rmse_before_mV": _mean(samples.get("rmse_before_mV")),
            "mean_rmse_after_mV": _mean(samples.get("rmse_after_mV")),
            "calibration": {key: calibration.get(key) for key in ("values", "wall_s", "evaluations",
                                                                  "capacity_after_Ah", "throughput_capacity_Ah")},
            "wall_s": round(time.perf_counter() - started, 1),
        }
    return (pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()), figures


def _mean(values) -> float | None:
    finite = [float(value) for value in (values if values is not None else []) if pd.notna(value)]
    return round(statistics.fmean(finite), 1) if finite else None


def markdown_table(samples: pd.DataFrame) -> str:
    header = ("| config | test | ambient °C | status | throughput Ah | physics Ah (nominal → calibrated) "
              "| RMSE before mV | RMSE after mV |")
    lines = [header, "|---" * (header.count("|") - 1) + "|"]
    for row in samples.itertuples(index=False):
        row = row._asdict()
        lines.append("| {config} | {test} | {ambient} | {status} | {throughput} | {nominal} → {physics} "
                     "| {before} | {after} |".format(
                         config=row["config"], test=Path(row["file"]).name.split(".")[0],
                         ambient=_fmt(row.get("ambient_temperature_K"), offset=-273.15, digits=1),
                         status=row["status"], throughput=_fmt(row.get("throughput_capacity_Ah"), digits=3),
                         nominal=_fmt(row.get("nominal_capacity_Ah"), digits=3),
                         physics=_fmt(row.get("physics_capacity_Ah"), digits=3),
                         before=_fmt(row.get("rmse_before_mV"), digits=1),
                         after=_fmt(row.get("rmse_after_mV"), digits=1)))
    return "\n".join(lines)


def _fmt(value, digits: int, offset: float = 0.0) -> str:
    return "–" if value is None or pd.isna(value) else f"{float(value) + offset:.{digits}f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=default_real_data_dir())
    parser.add_argument("--configs", nargs="+", default=list(DEFAULT_CONFIGS))
    parser.add_argument("--resample-period-s", type=float, default=None)
    parser.add_argument("--pattern", default=None)
    parser.add_argument("--calibration", choices=["shared", "per_test"], default=None)
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    os.environ[REAL_DATA_VARIABLE] = str(args.data_dir.resolve())
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="measured_baseline_") as scratch:
        work = args.work or Path(scratch)
        samples, figures = run(args.configs, work, resample_period_s=args.resample_period_s,
                               pattern=args.pattern, calibration_mode=args.calibration)
    table = markdown_table(samples) if len(samples) else "(no tests)"
    print(table)
    if args.out is not None:
        args.out.write_text(table + "\n")
    print(json.dumps({"experiment": "measured_baseline", "resample_period_s": args.resample_period_s,
                      "pattern": args.pattern, "configs": figures,
                      "wall_s": round(time.perf_counter() - started, 1)}, default=str))


if __name__ == "__main__":
    main()
