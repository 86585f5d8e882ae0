"""Context windows: the measured rows of a cell that a context-conditioned residual reads
(see :mod:`hybrid.models.context`).

A characterisation context is the first part of a record: its first diagnostic (the first
tagged cycle entry, e.g. the first HPPC of an ageing campaign) or its first ``window_s``
seconds, never more than ``max_fraction`` of its rows. The model then predicts the rest of
the record open loop; rows inside the context are never scored.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from hybrid.data.columns import TEMPERATURE_RESIDUAL, TIME, VOLTAGE_RESIDUAL
from hybrid.data.corpus import Record
from hybrid.data.features import cell_inputs

# targets a cycler measures (the SOC is never measured, so its residual is no context)
MEASURED_TARGETS = (VOLTAGE_RESIDUAL, TEMPERATURE_RESIDUAL)


class ContextWindow(NamedTuple):
    """Which leading rows of a record are its context: the first ``window_s`` seconds (None:
    its first diagnostic), at most ``max_fraction`` of its rows."""

    window_s: float | None
    max_fraction: float

    def rows(self, record: Record) -> int:
        """How many leading rows of ``record`` form its context (at least 1)."""
        time_s = record.columns[TIME] - record.columns[TIME][0]
        end_s = self.window_s if self.window_s is not None else _first_diagnostic_end_s(record)
        rows = int(np.searchsorted(time_s, end_s, side="right")) if end_s is not None else record.rows
        return max(1, min(rows, int(self.max_fraction * record.rows)))


def _first_diagnostic_end_s(record: Record) -> float | None:
    """End [s from the record's start] of its first cycle entry if that is a diagnostic (not an
    ageing "cycle"); None when the record has no tagged entries."""
    tags = record.cycles.get("Tag")
    if tags is None or not len(tags):
        return None
    if str(tags[0]) == "cycle":
        return 0.0
    return float(record.cycles["End time [s]"][0] - record.columns[TIME][0])


def context_size(normalisation: dict[str, Any]) -> int:
    """Features per context row: the model inputs plus the measured residual targets."""
    return len(normalisation["features"]) + len(context_targets(normalisation))


def context_features(record: Record, normalisation: dict[str, Any], rows: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``rows`` rows of ``record`` as context: (rows, context_size) float32 features
    (normalised inputs, then the normalised measured residuals, 0 at invalid rows) and the
    (rows,) bool mask of valid rows."""
    valid = record.valid_rows(normalisation["max_residual_V"])[:rows]
    residuals = [np.where(valid, (record.column(normalisation["targets"][k])[:rows] - normalisation["target_mean"][k])
                          / normalisation["target_std"][k], 0.0) for k in context_targets(normalisation)]
    features = np.column_stack([cell_inputs(record, normalisation)[:rows], *residuals]).astype(np.float32)
    return features, valid


def context_targets(normalisation: dict[str, Any]) -> list[int]:
    """Output indices of the measured residuals a context row holds, in their column order."""
    return [k for k, name in enumerate(normalisation["targets"]) if name in MEASURED_TARGETS]


def context_window(model_config: Any) -> ContextWindow | None:
    """The context window a model config reads (None for models without context)."""
    if getattr(model_config, "kind", None) != "context_residual":
        return None
    return ContextWindow(model_config.context_window_s, model_config.context_max_fraction)
