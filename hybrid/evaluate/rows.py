"""Which rows are scored, and their classes.

Timescale classes (the report's ``timescales``): ``pulse`` (current flowing on the fast grid, time
step <= ``fast_step_s``: pulses and dynamic profiles), ``rest`` (|I| < ``rest_c_rate`` C) and
``sustained`` (current flowing on the coarse grid: CC/CV cycling).

Row classes of voltage errors over a split (the modelling-claims experiments), in mV:
    all    every scored row
    fast   the ``pulse`` rows
    rest   the ``rest`` rows: relaxation, where the hysteresis state and diffusion show
    late   rows of the ``late_life`` split (after ageing cycle ``LATE_AFTER_CYCLE`` of the ageing
           campaigns, held out of training; the state is carried over the whole early life)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn

from hybrid.data import CURRENT, TIME_STEP, VOLTAGE, Record, Corpus, LateLifeSplit, SplitAssignment, SplitOptions
from hybrid.evaluate.metrics import error_stats
from hybrid.evaluate.predict import predict_record
from hybrid.train import EvaluationOptions, TrainedModel

TIMESCALES = ("pulse", "rest", "sustained")
ROW_CLASSES = ("all", "fast", "rest", "late")
LATE_AFTER_CYCLE = 5


def timescale_masks(cell: Record, options: EvaluationOptions) -> dict[str, np.ndarray]:
    """(rows,) bool per timescale class: pulse, rest, sustained (see the module docstring)."""
    capacity = cell.capacity_Ah if np.isfinite(cell.capacity_Ah) else np.max(np.abs(cell.columns[CURRENT]))
    rest = np.abs(cell.columns[CURRENT]) < options.rest_c_rate * capacity
    step = cell.column(TIME_STEP)
    fast = (step > 0.0) & (step <= options.fast_step_s)  # the first row has no step
    return {"pulse": ~rest & fast, "rest": rest, "sustained": ~rest & ~fast}


def scored_rows(corpus: Corpus, ranges: dict[int, tuple[int, int]], max_residual_V: float) -> dict[int, np.ndarray]:
    """sample_id -> (rows,) bool: inside the range and valid."""
    masks = {}
    for sample_id, (start, stop) in ranges.items():
        mask = corpus.cells[sample_id].valid_rows(max_residual_V).copy()
        mask[:start] = False
        mask[stop:] = False
        masks[sample_id] = mask
    return masks


def row_class_splits(seed: int) -> SplitOptions:
    """The cell splits the row classes are scored on: 60/20/20 train/val/test cells (seeded), plus
    the late life of the ageing campaigns after cycle LATE_AFTER_CYCLE."""
    return SplitOptions(seed=seed, val_fraction=0.2, test_fraction=0.2,
                        late_life=LateLifeSplit(after_cycle=LATE_AFTER_CYCLE))


def class_errors(trained: TrainedModel, corpus: Corpus, assignment: SplitAssignment, split: str,
                 options: EvaluationOptions = EvaluationOptions()) -> dict[str, np.ndarray]:
    """Voltage error [V] (prediction - reference) of ``trained`` run over each whole record of
    ``split`` from row 0, pooled per row class (see the module docstring); invalid rows are left out."""
    pooled: dict[str, list[np.ndarray]] = {name: [] for name in ROW_CLASSES}
    late = assignment.ranges.get("late_life", {})
    for sample_id, (start, stop) in sorted(assignment.ranges[split].items()):
        cell = corpus.cells[sample_id]
        error = predict_record(trained, cell).voltage_V - cell.columns[VOLTAGE]
        valid = cell.valid_rows(trained.normalisation["max_residual_V"])
        scored = np.zeros(cell.rows, dtype=bool)
        scored[start:stop] = True
        scored &= valid
        masks = timescale_masks(cell, options)
        pooled["all"].append(error[scored])
        pooled["fast"].append(error[scored & masks["pulse"]])
        pooled["rest"].append(error[scored & masks["rest"]])
        if sample_id in late:
            late_rows = np.zeros(cell.rows, dtype=bool)
            late_rows[late[sample_id][0]:late[sample_id][1]] = True
            pooled["late"].append(error[late_rows & valid])
    return {name: np.concatenate(parts) if parts else np.empty(0) for name, parts in pooled.items()}


def class_rmse_mV(errors_V: dict[str, np.ndarray]) -> dict[str, float]:
    """RMSE [mV] of each row class of :func:`class_errors` (NaN for a class without rows)."""
    return {name: error_stats(errors)["rmse_mV"] if len(errors) else math.nan for name, errors in errors_V.items()}


def held_out_class_rmse_mV(trained: TrainedModel, corpus: Corpus, assignment: SplitAssignment) -> dict[str, float]:
    """Test-cell RMSE [mV] per row class; ``late`` over the late-life rows of every cell (NaN without them)."""
    test = class_rmse_mV(class_errors(trained, corpus, assignment, "test"))
    figures = {name: value for name, value in test.items() if name != "late"}
    has_late = bool(assignment.ranges.get("late_life"))
    figures["late"] = (class_rmse_mV(class_errors(trained, corpus, assignment, "late_life"))["late"]
                       if has_late else math.nan)
    return figures


def physics_model(normalisation: dict[str, Any]) -> TrainedModel:
    """The physics model alone as a trained model: a residual of exactly 0 in ``normalisation``."""
    return TrainedModel("physics", _ZeroResidual(normalisation), normalisation, {}, [], 0)


class _ZeroResidual(nn.Module):
    """Predicts a residual of exactly 0 (the normalised output that decodes to 0)."""

    def __init__(self, normalisation: dict[str, Any]):
        super().__init__()
        mean, std = np.asarray(normalisation["target_mean"]), np.asarray(normalisation["target_std"])
        self.register_buffer("zero", torch.tensor(-mean / std, dtype=torch.float32))
        self.outputs = len(normalisation["targets"])
        self.causal = True

    def forward(self, x: torch.Tensor, state: Any = None) -> tuple[torch.Tensor, None]:
        return self.zero.expand(x.shape[0], x.shape[1], self.outputs), None
