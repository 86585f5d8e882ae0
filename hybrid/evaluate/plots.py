"""Plots of the evaluation report (voltage overlay, residual scatter, error per cycle, capacity
checks) and of experiments (error traces per record, a curve with error bars)."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import cycle
from pathlib import Path

import numpy as np

from hybrid.data import PHYSICS_VOLTAGE, SPLIT_NAMES, TIME, VOLTAGE, Record, Corpus, SplitAssignment
from hybrid.evaluate.predict import Predictions
from hybrid.evaluate.rows import scored_rows, timescale_masks
from hybrid.train import BLACK_BOX, PHYSICS, EvaluationOptions


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
                                                  scored_rows(corpus, assignment.ranges[split], max_residual_V), split),
        "error_vs_cycle.png": _error_vs_cycle(corpus, assignment, predictions, max_residual_V),
        "capacity_checks.png": _capacity_plot(checks, predictions),
    }
    written = []
    for file_name, figure in figures.items():
        if figure is not None:
            figure.savefig(plot_dir / file_name, dpi=110)
            written.append(file_name)
    return written


REFERENCE_STYLES = (("grey", "--"), ("tab:green", ":"), ("tab:red", "-."))  # colour, line style


def error_traces(corpus: Corpus, predictions: Predictions, sample_ids: Sequence[int], titles: dict[int, str],
                 path: Path, limit_mV: float = 150.0) -> Path:
    """Prediction - reference voltage [mV] against time [h]: one panel per record of ``sample_ids``
    (titled by ``titles``), one line per model of ``predictions``, the y axis at +-``limit_mV``.
    Writes the PNG ``path`` and returns it."""
    figure, axes = _figure(len(sample_ids), 1)
    for axis, sample_id in zip(axes[:, 0], sample_ids):
        cell = corpus.cells[sample_id]
        hours = cell.columns[TIME] / 3600.0
        for name, by_record in predictions.items():
            voltage = by_record[sample_id].voltage_V
            rows = min(len(voltage), len(hours))
            axis.plot(hours[:rows], (voltage[:rows] - cell.columns[VOLTAGE][:rows]) * 1e3, lw=0.6, label=name)
        axis.set_ylim(-limit_mV, limit_mV)
        axis.set_title(titles[sample_id])
        axis.set_ylabel("error [mV]")
    axes[-1, 0].set_xlabel("time [h]")
    axes[0, 0].legend(fontsize=7, ncol=4)
    figure.savefig(path, dpi=120)
    return path


def curve_plot(x: Sequence[float], series: dict[str, tuple[Sequence[float], Sequence[float | None]]],
               references: dict[str, float], labels: tuple[str, str], path: Path) -> Path:
    """Each of ``series`` (label -> (means, sds; None as 0)) against ``x`` with sd error bars, each
    of ``references`` (label -> value) as a horizontal line; ``labels``: the (x, y) axis labels.
    Writes the PNG ``path`` and returns it."""
    figure, axes = _figure(1, 1, width=6.0, height=4.0)
    axis = axes[0, 0]
    for label, (means, sds) in series.items():
        axis.errorbar(x, means, yerr=[sd or 0.0 for sd in sds], fmt="o-", capsize=3, label=label)
    for (label, value), (colour, style) in zip(references.items(), cycle(REFERENCE_STYLES)):
        axis.axhline(value, color=colour, ls=style, label=label)
    axis.set_xticks(x)
    axis.set_xlabel(labels[0])
    axis.set_ylabel(labels[1])
    axis.legend(fontsize=8)
    figure.savefig(path, dpi=120)
    return path


def _figure(rows: int, columns: int, width: float = 10.0, height: float = 3.2):
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height * rows), layout="constrained")
    return figure, figure.subplots(rows, columns, squeeze=False)


def _hybrids(predictions: Predictions) -> list[str]:
    return [name for name in predictions if name not in (PHYSICS, BLACK_BOX)]


def _voltage_overlay(cell: Record, predictions: Predictions, options: EvaluationOptions, split: str):
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
