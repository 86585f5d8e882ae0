"""Evaluation: physics, black box and hybrids side by side, in mV, on every split.

Every model runs causally over each whole record from its first row, carrying its own state
(free-running: no teacher forcing, no resets, no chunk boundaries); a split only chooses which
rows are scored. So late-life errors include everything the state accumulated over early
life, and the same predictions serve every section of the report:

- ``splits``: RMSE, MAE and max |error| [mV] of the voltage per split and model; ``physics``
  is the hybrid with residual 0.
- ``timescales``: the same per row class: ``pulse`` (current flowing on the fast grid, time
  step <= ``fast_step_s``: pulses and dynamic profiles), ``rest`` (|I| < ``rest_c_rate``
  C) and ``sustained`` (current flowing on the coarse grid: CC/CV cycling).
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
  reference, see :class:`hybrid.data.corpus.FeatureOptions`) per split; invalid rows are never scored.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from hybrid.data import (
    CHARGE,
    CURRENT,
    PHYSICS_SOC,
    PHYSICS_TEMPERATURE,
    PHYSICS_VOLTAGE,
    SOC,
    SPLIT_NAMES,
    TEMPERATURE,
    TIME,
    TIME_STEP,
    VOLTAGE,
    Cell,
    Corpus,
    SplitAssignment,
    cell_inputs,
    decode_outputs,
)
from hybrid.models import build_model, config_from_dict
from hybrid.train import load_checkpoint, torch_threads
from hybrid.train.run import BLACK_BOX, PHYSICS, EvaluationOptions

log = logging.getLogger(__name__)

TIMESCALES = ("pulse", "rest", "sustained")
CAPACITY_EXTRAPOLATION_LIMIT = 1.2  # at most this times the discharged charge when extrapolating


@dataclass
class TrainedModel:
    """A model loaded from a checkpoint with what it needs to predict."""

    name: str
    model: nn.Module
    normalisation: dict[str, Any]
    model_config: dict[str, Any]
    history: list[dict[str, float]]
    best_epoch: int

    @property
    def family(self) -> str:
        return self.normalisation["family"]


def load_trained(path: str | Path, name: str) -> TrainedModel:
    """The model of checkpoint ``path`` (loaded with weights_only=True), in eval mode."""
    checkpoint = load_checkpoint(path)
    model = build_model(config_from_dict(checkpoint["model_config"]))
    model.load_state_dict(checkpoint["model_state"])
    model.eval()
    progress = checkpoint["progress"]
    return TrainedModel(name, model, checkpoint["normalisation"], checkpoint["model_config"],
                        progress["history"], progress["best_epoch"])


@dataclass
class RecordPrediction:
    """A model's voltage [V] (rows,), SOC (rows,) or None and cell temperature [K] (rows,) or
    None over one whole record."""

    voltage_V: np.ndarray
    soc: np.ndarray | None
    temperature_K: np.ndarray | None = None


@torch.no_grad()
def predict_record(trained: TrainedModel, cell: Cell) -> RecordPrediction:
    """Run ``trained`` over the whole record of ``cell`` in one causal pass from its first row."""
    inputs = torch.from_numpy(cell_inputs(cell, trained.normalisation)).unsqueeze(0)  # (1, time, features)
    outputs, _ = trained.model(inputs)  # (1, time, targets)
    return RecordPrediction(*decode_outputs(outputs[0].double().numpy(), cell, trained.normalisation))


def physics_prediction(cell: Cell) -> RecordPrediction:
    return RecordPrediction(cell.columns[PHYSICS_VOLTAGE], cell.columns.get(PHYSICS_SOC),
                            cell.columns.get(PHYSICS_TEMPERATURE))


Predictions = dict[str, dict[int, RecordPrediction]]  # model -> sample_id -> prediction


def predict_corpus(models: list[TrainedModel], corpus: Corpus,
                   sample_ids: list[int]) -> tuple[Predictions, dict[str, float]]:
    """Predictions of physics and every model on ``sample_ids``, and CPU inference steps/s per model."""
    predictions: Predictions = {PHYSICS: {i: physics_prediction(corpus.cells[i]) for i in sample_ids}}
    steps = sum(corpus.cells[i].rows for i in sample_ids)
    throughput = {}
    for trained in models:
        started = time.perf_counter()
        with torch_threads(1):  # one record at a time: tiny kernels, see TrainConfig.threads
            records = tqdm(sample_ids, desc=f"predict {trained.name}", unit="record", disable=None, leave=False)
            predictions[trained.name] = {i: predict_record(trained, corpus.cells[i]) for i in records}
        throughput[trained.name] = steps / (time.perf_counter() - started)
        log.info("%s: %d records, %d steps at %.0f steps/s", trained.name, len(sample_ids), steps,
                 throughput[trained.name])
    return predictions, throughput


# --- metrics ------------------------------------------------------------------------------


def error_stats(errors_V: np.ndarray) -> dict[str, float]:
    """RMSE, MAE and max |error| in mV, and the number of points."""
    errors = np.abs(np.asarray(errors_V, dtype=float)) * 1e3
    return {"rmse_mV": float(np.sqrt(np.mean(errors ** 2))), "mae_mV": float(np.mean(errors)),
            "max_mV": float(np.max(errors)), "points": int(errors.size)}


def percent_stats(errors_pct: np.ndarray) -> dict[str, float]:
    """RMSE, MAE and max |error| in % (points), and the number of points."""
    errors = np.abs(np.asarray(errors_pct, dtype=float))
    return {"rmse_pct": float(np.sqrt(np.mean(errors ** 2))), "mae_pct": float(np.mean(errors)),
            "max_pct": float(np.max(errors)), "points": int(errors.size)}


def kelvin_stats(errors_K: np.ndarray) -> dict[str, float]:
    """RMSE, MAE and max |error| in K, and the number of points."""
    errors = np.abs(np.asarray(errors_K, dtype=float))
    return {"rmse_K": float(np.sqrt(np.mean(errors ** 2))), "mae_K": float(np.mean(errors)),
            "max_K": float(np.max(errors)), "points": int(errors.size)}


def timescale_masks(cell: Cell, options: EvaluationOptions) -> dict[str, np.ndarray]:
    """(rows,) bool per timescale class: pulse, rest, sustained (see the module docstring)."""
    capacity = cell.capacity_Ah if np.isfinite(cell.capacity_Ah) else np.max(np.abs(cell.columns[CURRENT]))
    rest = np.abs(cell.columns[CURRENT]) < options.rest_c_rate * capacity
    step = cell.column(TIME_STEP)
    fast = (step > 0.0) & (step <= options.fast_step_s)  # the first row has no step
    return {"pulse": ~rest & fast, "rest": rest, "sustained": ~rest & ~fast}


def _scored(corpus: Corpus, ranges: dict[int, tuple[int, int]], max_residual_V: float) -> dict[int, np.ndarray]:
    """sample_id -> (rows,) bool: inside the range and valid."""
    masks = {}
    for sample_id, (start, stop) in ranges.items():
        mask = corpus.cells[sample_id].valid_rows(max_residual_V).copy()
        mask[:start] = False
        mask[stop:] = False
        masks[sample_id] = mask
    return masks


def _voltage_errors(corpus: Corpus, prediction: dict[int, RecordPrediction],
                    masks: dict[int, np.ndarray]) -> np.ndarray:
    return np.concatenate([(prediction[i].voltage_V - corpus.cells[i].columns[VOLTAGE])[mask]
                           for i, mask in masks.items()])


def _table(corpus: Corpus, predictions: Predictions, masks: dict[int, np.ndarray]) -> dict[str, dict]:
    """model -> voltage error stats over the masked rows; {} when no row is masked."""
    if not any(mask.any() for mask in masks.values()):
        return {}
    return {name: error_stats(_voltage_errors(corpus, prediction, masks)) for name, prediction in predictions.items()}


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


# --- state of health ----------------------------------------------------------------------


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


def capacity_checks(cell: Cell, predictions: Predictions, options: EvaluationOptions,
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
                    options: EvaluationOptions, max_residual_V: float, plot_dir: Path | None = None) -> dict[str, Any]:
    """The full report (see the module docstring) for ``models`` beside physics."""
    ids = sorted({i for name in assignment.names() for i in assignment.ranges[name]})
    predictions, inference = predict_corpus(models, corpus, ids)
    names = list(predictions)
    checks = {i: capacity_checks(corpus.cells[i], predictions, options, max_residual_V) for i in ids}
    report: dict[str, Any] = {key: {} for key in ("splits", "timescales", "soc", "temperature", "soh", "validity")}
    for split in assignment.names():
        ranges = assignment.ranges[split]
        masks = _scored(corpus, ranges, max_residual_V)
        report["splits"][split] = _table(corpus, predictions, masks)
        report["timescales"][split] = {name: {} for name in names}
        classes = {i: timescale_masks(corpus.cells[i], options) for i in ranges}
        for timescale in TIMESCALES:
            table = _table(corpus, predictions, {i: mask & classes[i][timescale] for i, mask in masks.items()})
            for name, stats in table.items():
                report["timescales"][split][name][timescale] = stats
        report["soc"][split] = _soc_table(corpus, predictions, masks)
        report["temperature"][split] = _temperature_table(corpus, predictions, masks)
        report["soh"][split] = _soh_table(checks, ranges, names)
        rows = sum(stop - start for start, stop in ranges.values())
        report["validity"][split] = {"cells": len(ranges), "rows": rows,
                                     "invalid_rows": rows - sum(int(mask.sum()) for mask in masks.values())}
    for key in ("soc", "temperature", "soh"):
        report[key] = {split: table for split, table in report[key].items() if table}
    report["long_horizon"] = _long_horizon(corpus, assignment, predictions, max_residual_V)
    report["throughput"] = {trained.name: {
        "train_steps_per_s": float(np.mean([epoch["steps_per_second"] for epoch in trained.history]))
        if trained.history else None,
        "inference_steps_per_s": inference[trained.name]} for trained in models}
    report["models"] = {trained.name: {
        "family": trained.family, "kind": trained.model_config["kind"], "causal": bool(trained.model.causal),
        "parameters": sum(p.numel() for p in trained.model.parameters()), "best_epoch": trained.best_epoch,
        "features": trained.normalisation["features"]} for trained in models}
    if options.plots and plot_dir is not None:
        report["plots"] = write_plots(corpus, assignment, predictions, checks, options, max_residual_V, Path(plot_dir))
    return report


# --- plots --------------------------------------------------------------------------------


def write_plots(corpus: Corpus, assignment: SplitAssignment, predictions: Predictions,
                checks: dict[int, list[dict]], options: EvaluationOptions, max_residual_V: float,
                plot_dir: Path) -> list[str]:
    """PNG plots in ``plot_dir``; returns their file names. Uses matplotlib's Figure (Agg
    canvas) directly, so the caller's pyplot backend is untouched."""
    plot_dir.mkdir(parents=True, exist_ok=True)
    split = next(name for name in ("test", "val", "train", *SPLIT_NAMES) if assignment.ranges.get(name))
    sample_id = min(assignment.ranges[split])
    figures = {
        "voltage_overlay.png": _voltage_overlay(corpus.cells[sample_id], predictions, options, split),
        "residual_scatter.png": _residual_scatter(corpus, predictions,
                                                  _scored(corpus, assignment.ranges[split], max_residual_V), split),
        "error_vs_cycle.png": _error_vs_cycle(corpus, assignment, predictions, max_residual_V),
        "capacity_checks.png": _capacity_plot(checks, predictions),
    }
    written = []
    for file_name, figure in figures.items():
        if figure is not None:
            figure.savefig(plot_dir / file_name, dpi=110)
            written.append(file_name)
    return written


def _figure(rows: int, columns: int, width: float = 10.0, height: float = 3.2):
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height * rows), layout="constrained")
    return figure, figure.subplots(rows, columns, squeeze=False)


def _hybrids(predictions: Predictions) -> list[str]:
    return [name for name in predictions if name not in (PHYSICS, BLACK_BOX)]


def _voltage_overlay(cell: Cell, predictions: Predictions, options: EvaluationOptions, split: str):
    """Reference, physics and model voltages over the whole record and around the first pulse."""
    figure, axes = _figure(2, 1)
    hours = (cell.columns[TIME] - cell.columns[TIME][0]) / 3600.0
    pulse = np.flatnonzero(timescale_masks(cell, options)["pulse"])
    if pulse.size:
        start = cell.columns[TIME][pulse[0]]
        zoom = (cell.columns[TIME] >= start - 60.0) & (cell.columns[TIME] <= start + 240.0)
    else:
        zoom = hours <= hours[-1] * 0.1
    for ax, rows, title in ((axes[0, 0], slice(None), "whole record"), (axes[1, 0], zoom, "first pulse")):
        ax.plot(hours[rows], cell.columns[VOLTAGE][rows], color="black", lw=1.2, label="reference")
        for name, prediction in predictions.items():
            ax.plot(hours[rows], prediction[cell.sample_id].voltage_V[rows], lw=0.9, label=name)
        ax.set_title(f"sample {cell.sample_id} ({split}): {title}")
        ax.set_xlabel("time [h]")
        ax.set_ylabel("voltage [V]")
    axes[0, 0].legend(fontsize=7, ncol=3)
    return figure


def _residual_scatter(corpus: Corpus, predictions: Predictions, masks: dict[int, np.ndarray], split: str):
    """True residual vs each hybrid's predicted residual [mV] on one split."""
    hybrids = _hybrids(predictions)
    if not hybrids:
        return None
    figure, axes = _figure(1, len(hybrids), width=4.0 * len(hybrids), height=4.0)
    true = np.concatenate([(corpus.cells[i].columns[VOLTAGE] - corpus.cells[i].columns[PHYSICS_VOLTAGE])[m]
                           for i, m in masks.items()]) * 1e3
    every = max(1, true.size // 5000)
    for ax, name in zip(axes[0], hybrids):
        predicted = np.concatenate([(predictions[name][i].voltage_V - corpus.cells[i].columns[PHYSICS_VOLTAGE])[m]
                                    for i, m in masks.items()]) * 1e3
        ax.scatter(true[::every], predicted[::every], s=2, alpha=0.4)
        limits = [min(true.min(), predicted.min()), max(true.max(), predicted.max())]
        ax.plot(limits, limits, color="black", lw=0.8)
        ax.set_title(f"{name} ({split})")
        ax.set_xlabel("true residual [mV]")
        ax.set_ylabel("predicted residual [mV]")
    return figure


def _error_vs_cycle(corpus: Corpus, assignment: SplitAssignment, predictions: Predictions, max_residual_V: float):
    """RMSE [mV] per cycle number, pooled over the evaluated cells that have a cycle summary."""
    ids = [i for i in sorted({i for name in assignment.names() for i in assignment.ranges[name]})
           if "Start time [s]" in corpus.cells[i].cycles]
    if not ids:
        return None
    squares: dict[str, dict[int, list[float]]] = {name: {} for name in predictions}
    for i in ids:
        cell = corpus.cells[i]
        cycle = np.searchsorted(np.asarray(cell.cycles["Start time [s]"], float), cell.columns[TIME], side="right")
        valid = cell.valid_rows(max_residual_V)
        for name, prediction in predictions.items():
            error = (prediction[i].voltage_V - cell.columns[VOLTAGE]) ** 2
            for number in np.unique(cycle[valid]):
                squares[name].setdefault(int(number), []).extend(error[valid & (cycle == number)])
    figure, axes = _figure(1, 1)
    for name, by_cycle in squares.items():
        numbers = sorted(by_cycle)
        axes[0, 0].plot(numbers, [1e3 * np.sqrt(np.mean(by_cycle[n])) for n in numbers], marker=".", label=name)
    axes[0, 0].set_xlabel("cycle number (reference summary)")
    axes[0, 0].set_ylabel("voltage RMSE [mV]")
    axes[0, 0].set_yscale("log")
    axes[0, 0].legend(fontsize=7)
    return figure


def _capacity_plot(checks: dict[int, list[dict]], predictions: Predictions):
    """Capacity at each check of the cell with the most checks: reference and every model."""
    sample_id = max(checks, key=lambda i: len(checks[i]), default=None)
    if sample_id is None or not checks[sample_id]:
        return None
    cell_checks = checks[sample_id]
    hours = [check["time_s"] / 3600.0 for check in cell_checks]
    figure, axes = _figure(1, 1)
    axes[0, 0].plot(hours, [check["reference_Ah"] for check in cell_checks], color="black", marker="o",
                    label="reference")
    for name in predictions:
        axes[0, 0].plot(hours, [check[name] for check in cell_checks], marker=".", label=name)
    axes[0, 0].set_title(f"capacity checks, sample {sample_id}")
    axes[0, 0].set_xlabel("time [h]")
    axes[0, 0].set_ylabel("capacity to cut-off [A.h]")
    axes[0, 0].legend(fontsize=7)
    return figure
