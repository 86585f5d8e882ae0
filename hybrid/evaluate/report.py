"""The evaluation report: physics, black box and hybrids side by side, in mV, on every split.

Every model runs causally over each whole record from its first row, carrying its own state
(free-running: no teacher forcing, no resets, no chunk boundaries); a split only chooses which
rows are scored (:mod:`hybrid.evaluate.predict`). So late-life errors include everything the state accumulated over early
life, and the same predictions serve every section of the report:

- ``splits``: RMSE, MAE and max |error| [mV] of the voltage per split and model; ``physics``
  is the hybrid with residual 0. Each model's entry has its RMSE as a ratio to physics
  (``vs_physics``) and to the floor (``vs_floor``). With a corpus generated with ``floor: true``
  each split has a ``floor`` entry: the error of the plant at nominal variability driven by
  the same current (what no model can beat without knowing the cell), its ``noise_mV`` (the
  sensor noise) and ``coverage``.
- ``timescales``: the same per timescale class (``pulse``, ``rest``, ``sustained``; see
  :mod:`hybrid.evaluate.rows`).
- ``long_horizon``: over whole records, RMSE per quarter of the record's duration (drift of
  the free-running state) and for cells with a late-life threshold, early vs late life.
- ``soc``: state-of-charge error [% points] of each model's SOC output (hybrids: physics SOC +
  predicted SOC residual; black box: its SOC output; physics: the physics SOC) against the
  reference "State of charge".
- ``temperature``: with a temperature head, cell temperature error [K] of each model's
  temperature output (hybrids: physics temperature + predicted residual; black box: its
  output; physics: the physics cell temperature) against the reference "Cell temperature [K]".
- ``soh``: capacity error [% of the cell's first reference capacity check] at each capacity
  check (reference cycles tagged "capacity"). A model's capacity is the charge discharged
  until *its* voltage reaches the cut-off the cycler stopped at (the reference's minimum
  voltage in that discharge), extrapolated along the last dV/dQ slope when it has not
  reached it by the end of the record's discharge. The physics model is driven by the
  measured current, so its charge counter always equals the reference's; only the voltage
  tells the capacity, and the hybrid-corrected voltage tells it better.
- ``validity``: rows and invalid rows (a physics solve outside ``max_residual_V`` of the
  reference, see :class:`hybrid.data.features.FeatureOptions`) per split; invalid rows are never scored.
  ``context_rows``: valid rows inside a context-conditioned model's context window, scored for
  no model (every model is scored on the same rows).
- ``rolling``: with a forecaster (kind ``forecaster``), the voltage error [mV] of its rolling
  forecasts from the measured history, beside hold-last, physics and the open-loop models on
  the same rows (:mod:`hybrid.evaluate.rolling`). A forecaster is in no other section: it is
  no open-loop model (its ``inference_steps_per_s`` is null).
- ``per_test``: with ``baselines`` (a measured corpus), one row per record with the voltage
  RMSE over the record and inside 5-95 % SOC and the SOC MAE of every model beside the
  baselines (nominal physics, ECM), held-out tests first (:mod:`hybrid.evaluate.measured`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from hybrid.data import CHARGE, CURRENT, SOC, TEMPERATURE, TIME, VOLTAGE, Record, Corpus, SplitAssignment
from hybrid.data.columns import NOMINAL_PLANT_VOLTAGE
from hybrid.evaluate.measured import per_test_rows, side_by_side
from hybrid.evaluate.metrics import error_stats, kelvin_stats, percent_stats
from hybrid.evaluate.plots import write_plots
from hybrid.evaluate.predict import Predictions, RecordPrediction, context_rows, predict_corpus
from hybrid.evaluate.rolling import rolling_table
from hybrid.evaluate.rows import TIMESCALES, scored_rows, timescale_masks
from hybrid.train import PHYSICS, EvaluationOptions, TrainedModel

log = logging.getLogger(__name__)

CAPACITY_EXTRAPOLATION_LIMIT = 1.2  # at most this times the discharged charge when extrapolating


def _voltage_errors(corpus: Corpus, prediction: dict[int, RecordPrediction],
                    masks: dict[int, np.ndarray]) -> np.ndarray:
    return np.concatenate([(prediction[i].voltage_V - corpus.cells[i].columns[VOLTAGE])[mask]
                           for i, mask in masks.items()])


def _table(corpus: Corpus, predictions: Predictions, masks: dict[int, np.ndarray]) -> dict[str, dict]:
    """model -> voltage error stats over the masked rows; {} when no row is masked."""
    if not any(mask.any() for mask in masks.values()):
        return {}
    return {name: error_stats(_voltage_errors(corpus, prediction, masks)) for name, prediction in predictions.items()}


def floor_stats(corpus: Corpus, masks: dict[int, np.ndarray]) -> dict[str, Any] | None:
    """Error stats [mV] of the nominal plant's voltage (NOMINAL_PLANT_VOLTAGE, a corpus's floor
    option) against the measured voltage over the masked rows where it is known, with
    ``noise_mV`` (the sensor's voltage noise, from the corpus spec) and ``coverage`` (the
    fraction of masked rows it covers); None when the corpus has no floor column."""
    if not masks or any(NOMINAL_PLANT_VOLTAGE not in corpus.cells[i].columns for i in masks):
        return None
    errors, scored = [], 0
    for i, mask in masks.items():
        error = (corpus.cells[i].columns[NOMINAL_PLANT_VOLTAGE] - corpus.cells[i].columns[VOLTAGE])[mask]
        errors.append(error[np.isfinite(error)])
        scored += int(mask.sum())
    errors = np.concatenate(errors)
    if not errors.size:
        return None
    noise = ((corpus.spec.get("reference") or {}).get("sensor") or {}).get("voltage_noise_V")
    return {**error_stats(errors), "noise_mV": None if noise is None else 1e3 * noise,
            "coverage": errors.size / scored}


def _with_floor(table: dict[str, dict], corpus: Corpus, masks: dict[int, np.ndarray]) -> dict[str, dict]:
    """``table`` plus a ``floor`` entry (if the corpus has one) and each model's RMSE as a ratio
    to physics (``vs_physics``) and to the floor (``vs_floor``)."""
    floor = floor_stats(corpus, masks)
    physics = table.get(PHYSICS, {}).get("rmse_mV")
    for stats in table.values():
        stats["vs_physics"] = stats["rmse_mV"] / physics if physics else None
        stats["vs_floor"] = stats["rmse_mV"] / floor["rmse_mV"] if floor and floor["rmse_mV"] else None
    return table | ({"floor": floor} if floor and table else {})


def _soc_table(corpus: Corpus, predictions: Predictions, masks: dict[int, np.ndarray]) -> dict[str, dict]:
    if not any(mask.any() for mask in masks.values()) or any(SOC not in corpus.cells[i].columns for i in masks):
        return {}
    table = {}
    for name, prediction in predictions.items():
        if all(prediction[i].soc is not None for i in masks):
            table[name] = percent_stats(np.concatenate(
                [100.0 * (prediction[i].soc - corpus.cells[i].columns[SOC])[mask] for i, mask in masks.items()]))
    return table


def _temperature_table(corpus: Corpus, predictions: Predictions, masks: dict[int, np.ndarray]) -> dict[str, dict]:
    """model -> cell temperature error stats [K] of the models that estimate it; {} unless a
    trained model has a temperature head (physics alone is no table)."""
    if not any(mask.any() for mask in masks.values()) or any(TEMPERATURE not in corpus.cells[i].columns for i in masks):
        return {}
    table = {}
    for name, prediction in predictions.items():
        if all(prediction[i].temperature_K is not None for i in masks):
            errors = [(prediction[i].temperature_K - corpus.cells[i].columns[TEMPERATURE])[mask]
                      for i, mask in masks.items()]
            table[name] = kelvin_stats(np.concatenate(errors))
    return table if set(table) - {PHYSICS} else {}


def _long_horizon(corpus: Corpus, assignment: SplitAssignment, predictions: Predictions,
                  max_residual_V: float) -> dict[str, Any]:
    """Whole-record errors: per quarter of each record's duration, and early vs late life."""
    ids = sorted({i for name in assignment.names() for i in assignment.ranges[name]})
    valid = {i: corpus.cells[i].valid_rows(max_residual_V) for i in ids}
    quarters = []
    for quarter in range(4):
        masks = {}
        for i in ids:
            time_s = corpus.cells[i].columns[TIME]
            fraction = (time_s - time_s[0]) / max(time_s[-1] - time_s[0], 1e-9)
            masks[i] = valid[i] & (fraction >= quarter / 4) & ((fraction < (quarter + 1) / 4) | (quarter == 3))
        quarters.append(_table(corpus, predictions, masks))
    result: dict[str, Any] = {name: {"quarter_rmse_mV": [q[name]["rmse_mV"] if q else None for q in quarters]}
                              for name in predictions}
    aged = {i: row for i, row in assignment.late_life_start.items() if i in valid}
    if aged:
        late = {i: np.arange(len(valid[i])) >= row for i, row in aged.items()}
        for stage, masks in (("early_life", {i: valid[i] & ~late[i] for i in aged}),
                             ("late_life", {i: valid[i] & late[i] for i in aged})):
            for name, stats in _table(corpus, predictions, masks).items():
                result[name][stage] = stats
    hours = [(corpus.cells[i].columns[TIME][-1] - corpus.cells[i].columns[TIME][0]) / 3600.0 for i in ids]
    result["records"] = {"count": len(ids), "mean_hours": float(np.mean(hours)), "max_hours": float(np.max(hours))}
    return result


def capacity_to_cutoff(charge_Ah: np.ndarray, voltage_V: np.ndarray, cutoff_V: float) -> float:
    """Charge [A.h] discharged when ``voltage_V`` first reaches ``cutoff_V`` along one discharge
    (charge_Ah from 0, increasing); extrapolated along the last slope if it never does."""
    below = np.flatnonzero(voltage_V <= cutoff_V)
    if below.size and below[0] > 0:
        k = below[0]
        weight = (voltage_V[k - 1] - cutoff_V) / (voltage_V[k - 1] - voltage_V[k])
        return float(charge_Ah[k - 1] + weight * (charge_Ah[k] - charge_Ah[k - 1]))
    if below.size:
        return float(charge_Ah[0])
    slope = (voltage_V[-1] - voltage_V[-2]) / max(charge_Ah[-1] - charge_Ah[-2], 1e-12)  # V per A.h
    if slope >= 0:
        return float(charge_Ah[-1])
    extrapolated = charge_Ah[-1] + (cutoff_V - voltage_V[-1]) / slope
    return float(min(extrapolated, CAPACITY_EXTRAPOLATION_LIMIT * charge_Ah[-1]))


def capacity_checks(cell: Record, predictions: Predictions, options: EvaluationOptions,
                    max_residual_V: float) -> list[dict[str, Any]]:
    """One entry per capacity check of ``cell``: its first row, the reference capacity and
    each model's capacity [A.h]. Checks with an invalid physics row are skipped."""
    if "Tag" not in cell.cycles:
        return []
    time_s, current = cell.columns[TIME], cell.columns[CURRENT]
    threshold = options.rest_c_rate * cell.capacity_Ah
    valid = cell.valid_rows(max_residual_V)
    checks = []
    for start_s, end_s in zip(cell.cycles["Start time [s]"][cell.cycles["Tag"] == "capacity"],
                              cell.cycles["End time [s]"][cell.cycles["Tag"] == "capacity"]):
        rows = _first_discharge(time_s, current, start_s, end_s, threshold)
        if rows is None or not valid[rows].all():
            continue
        before = max(rows[0] - 1, 0)
        charge = cell.columns[CHARGE][rows] - cell.columns[CHARGE][before]
        reference_voltage = cell.columns[VOLTAGE][rows]
        cutoff = float(reference_voltage.min())
        checks.append({"row": int(rows[0]), "time_s": float(time_s[rows[0]]),
                       "reference_Ah": capacity_to_cutoff(charge, reference_voltage, cutoff),
                       **{name: capacity_to_cutoff(charge, prediction[cell.sample_id].voltage_V[rows], cutoff)
                          for name, prediction in predictions.items()}})
    return checks


def _first_discharge(time_s: np.ndarray, current: np.ndarray, start_s: float, end_s: float,
                     threshold_A: float) -> np.ndarray | None:
    """Row indices of the first discharge run within [start_s, end_s]; None if under 3 rows."""
    inside = np.flatnonzero((time_s >= start_s) & (time_s <= end_s))
    discharging = inside[current[inside] > threshold_A]
    if discharging.size < 3:
        return None
    stops = np.flatnonzero(np.diff(discharging) > 1)
    run = discharging[: stops[0] + 1] if stops.size else discharging
    return run if run.size >= 3 else None


def _soh_table(checks: dict[int, list[dict]], ranges: dict[int, tuple[int, int]], models: list[str]) -> dict:
    """model -> capacity error stats [% of the first reference check] over the checks in ``ranges``."""
    errors: dict[str, list[float]] = {name: [] for name in models}
    for sample_id, (start, stop) in ranges.items():
        cell_checks = checks.get(sample_id, [])
        if not cell_checks:
            continue
        first = cell_checks[0]["reference_Ah"]
        for check in cell_checks:
            if start <= check["row"] < stop:
                for name in models:
                    errors[name].append(100.0 * (check[name] - check["reference_Ah"]) / first)
    return {name: percent_stats(np.array(values)) for name, values in errors.items() if values}


# --- the report ---------------------------------------------------------------------------


def evaluate_models(corpus: Corpus, assignment: SplitAssignment, models: list[TrainedModel],
                    options: EvaluationOptions, max_residual_V: float, plot_dir: Path | None = None,
                    baselines: Predictions | None = None) -> dict[str, Any]:
    """The full report (see the module docstring) for ``models`` beside physics; ``baselines``:
    predictions of fixed models (sample_id -> prediction on every evaluated record) scored in
    ``per_test`` only, which the report has when they are given (even empty)."""
    ids = sorted({i for name in assignment.names() for i in assignment.ranges[name]})
    predictions, inference = predict_corpus(models, corpus, ids)
    names = list(predictions)
    checks = {i: capacity_checks(corpus.cells[i], predictions, options, max_residual_V) for i in ids}
    report: dict[str, Any] = {key: {} for key in ("splits", "timescales", "soc", "temperature", "soh", "validity",
                                                  "rolling")}
    # rows any model reads as its context are scored for no model (like for like)
    first_scored = {i: max([context_rows(trained, corpus.cells[i]) for trained in models], default=0) for i in ids}
    for split in assignment.names():
        ranges = assignment.ranges[split]
        valid = scored_rows(corpus, ranges, max_residual_V)
        masks = {i: mask.copy() for i, mask in valid.items()}
        for i, mask in masks.items():
            mask[:first_scored[i]] = False
        report["splits"][split] = _with_floor(_table(corpus, predictions, masks), corpus, masks)
        report["timescales"][split] = {name: {} for name in names}
        classes = {i: timescale_masks(corpus.cells[i], options) for i in ranges}
        for timescale in TIMESCALES:
            table = _table(corpus, predictions, {i: mask & classes[i][timescale] for i, mask in masks.items()})
            for name, stats in table.items():
                report["timescales"][split][name][timescale] = stats
        report["soc"][split] = _soc_table(corpus, predictions, masks)
        report["temperature"][split] = _temperature_table(corpus, predictions, masks)
        report["rolling"][split] = rolling_table(corpus, models, predictions, masks)
        report["soh"][split] = _soh_table(checks, ranges, names)
        rows = sum(stop - start for start, stop in ranges.values())
        report["validity"][split] = {"cells": len(ranges), "rows": rows,
                                     "invalid_rows": rows - sum(int(mask.sum()) for mask in valid.values()),
                                     "context_rows": sum(int(valid[i].sum() - masks[i].sum()) for i in masks)}
    for key in ("soc", "temperature", "soh", "rolling"):
        report[key] = {split: table for split, table in report[key].items() if table}
    report["long_horizon"] = _long_horizon(corpus, assignment, predictions, max_residual_V)
    report["throughput"] = {trained.name: {
        "train_steps_per_s": float(np.mean([epoch["steps_per_second"] for epoch in trained.history]))
        if trained.history else None,
        "inference_steps_per_s": inference.get(trained.name)} for trained in models}
    report["models"] = {trained.name: {
        "family": trained.family, "kind": trained.model_config["kind"], "causal": bool(trained.model.causal),
        "parameters": sum(p.numel() for p in trained.model.parameters()), "best_epoch": trained.best_epoch,
        "features": trained.normalisation["features"]} for trained in models}
    if baselines is not None:
        report["per_test"] = per_test_rows(corpus, assignment, side_by_side(predictions, baselines), first_scored,
                                           max_residual_V)
    if options.plots and plot_dir is not None:
        report["plots"] = write_plots(corpus, assignment, predictions, checks, options, max_residual_V, Path(plot_dir))
    return report
