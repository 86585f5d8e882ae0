"""Forecast windows in time: the measured history before an origin and the horizon after it,
for the rolling forecaster (:class:`hybrid.models.forecaster.Seq2SeqForecaster`).

The grid is not uniform (1 s rows in pulses and dynamic profiles, 10-120 s in cycling), so a
window is defined in seconds: at an origin t (a row), the context is the rows in
[t - context_s, t) (at least the row before t) and the horizon the rows in [t, t + horizon_s),
both of variable length. Origins fall every ``stride_s`` from a record's start + ``context_s``
(every forecast reads a full history), each at the first row at or after its time; a horizon
ends at its last scored row, and a window without scored rows is left out.

A window as a sequence (:func:`window_sequences`), everything normalised:

- context (rows, features + 1): the inputs and the measured voltage residual of the history
  rows (0 at invalid rows, as in :func:`hybrid.data.features.cell_targets`);
- inputs (horizon rows, features + 1): the planned inputs and the measured residual of the row
  before each (the teacher-forcing input, which the model reads in training only);
- targets (horizon rows, 1): the voltage residual; mask (horizon rows,): the scored rows.

The forecaster reads and forecasts the voltage residual only: the cell's voltage is measured,
its state of charge never is.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from hybrid.data.batch import SequenceBatch, pad_contexts, pad_sequences
from hybrid.data.columns import TIME, VOLTAGE_RESIDUAL
from hybrid.data.corpus import Corpus, Record
from hybrid.data.features import cell_inputs, cell_targets
from sim.errors import ConfigError, DataError


class WindowSpan(NamedTuple):
    """Rows of one window: context [context_start, origin), horizon [origin, stop)."""

    context_start: int
    origin: int
    stop: int


class WindowSequence(NamedTuple):
    """One window as arrays (see the module docstring), float32 and bool."""

    context: np.ndarray
    inputs: np.ndarray
    targets: np.ndarray
    mask: np.ndarray


class ForecastWindows(NamedTuple):
    """The time windows of a forecaster [s]: history, horizon and the step between origins."""

    context_s: float
    horizon_s: float
    stride_s: float

    def spans(self, record: Record, scored: np.ndarray) -> list[WindowSpan]:
        """The windows of ``record`` whose horizon holds a row of ``scored`` (rows,) bool."""
        time_s = record.columns[TIME]
        origin_times = np.arange(time_s[0] + self.context_s, time_s[-1], self.stride_s)
        origins = np.unique(np.searchsorted(time_s, origin_times, side="left"))
        spans = []
        for origin in origins[origins < record.rows]:
            horizon_end = int(np.searchsorted(time_s, time_s[origin] + self.horizon_s, side="left"))
            scored_rows = np.flatnonzero(scored[origin:horizon_end])
            if scored_rows.size:
                context_start = int(np.searchsorted(time_s, time_s[origin] - self.context_s, side="left"))
                context_start = min(context_start, int(origin) - 1)  # a gap longer than context_s
                spans.append(WindowSpan(context_start, int(origin), int(origin + scored_rows[-1] + 1)))
        return spans


def forecast_windows(model_config: Any) -> ForecastWindows | None:
    """The time windows a model config forecasts over (None for models that do not forecast);
    ConfigError for a forecaster without them or without its causal mask."""
    if getattr(model_config, "kind", None) != "forecaster":
        return None
    for field in ("context_s", "horizon_s"):
        if getattr(model_config, field) is None:
            raise ConfigError(f"ForecasterConfig: field '{field}' = None: a training run forecasts over time "
                              "windows; allowed: seconds > 0 (e.g. horizon_s: 600, context_s: 1200)")
    if not model_config.causal_mask:
        raise ConfigError("ForecasterConfig: field 'causal_mask' = False: a training run forecasts online; "
                          "allowed: true (the leaky variant is experiments/causality.py's)")
    return ForecastWindows(model_config.context_s, model_config.horizon_s,
                           model_config.stride_s or model_config.horizon_s)


def window_sequences(record: Record, normalisation: dict[str, Any], spans: list[WindowSpan],
                     scored: np.ndarray) -> list[WindowSequence]:
    """The windows ``spans`` of ``record`` as sequences (see the module docstring); ``scored``
    (rows,) bool marks the rows a loss or a metric may read."""
    if VOLTAGE_RESIDUAL not in normalisation["targets"]:
        raise DataError(f"a forecaster reads the '{VOLTAGE_RESIDUAL}' target, which this normalisation lacks "
                        f"(targets {normalisation['targets']}); allowed: the hybrid family")
    inputs = cell_inputs(record, normalisation)  # (rows, features)
    residual = cell_targets(record, normalisation)[:, [normalisation["targets"].index(VOLTAGE_RESIDUAL)]]
    rows = np.column_stack([inputs, residual])  # (rows, features + 1)
    sequences = []
    for start, origin, stop in spans:
        horizon_inputs = np.column_stack([inputs[origin:stop], residual[origin - 1:stop - 1]])
        sequences.append(WindowSequence(rows[start:origin], horizon_inputs, residual[origin:stop],
                                        scored[origin:stop].copy()))
    return sequences


def window_batch(sequences: list[WindowSequence]) -> SequenceBatch:
    """Padded batch of windows: inputs, targets and mask of the horizons, and their histories
    as the batch's context (mask True on the history rows, False on the padding)."""
    batch = pad_sequences([(window.inputs, window.targets, window.mask) for window in sequences])
    batch.context, batch.context_mask = pad_contexts(
        [(window.context, np.ones(len(window.context), dtype=bool)) for window in sequences])
    return batch


def forecast_batches(corpus: Corpus, ranges: dict[int, tuple[int, int]], normalisation: dict[str, Any],
                     batch_size: int, windows: ForecastWindows) -> list[SequenceBatch]:
    """Batches of the windows whose horizons score the valid rows [start, stop) of each record.

    Windows are sorted by length before grouping so that little padding is needed; fit
    shuffles the batch order per epoch.
    """
    sequences = []
    for sample_id, (start, stop) in sorted(ranges.items()):
        record = corpus.cells[sample_id]
        scored = record.valid_rows(normalisation["max_residual_V"]).copy()
        scored[:start] = False
        scored[stop:] = False
        sequences += window_sequences(record, normalisation, windows.spans(record, scored), scored)
    if not sequences:
        raise DataError(f"ForecasterConfig: field 'context_s' = {windows.context_s:g}: no record of {sorted(ranges)} "
                        "is longer, with scored rows after it; allowed: a shorter context_s or longer records")
    sequences.sort(key=lambda window: (len(window.mask), len(window.context)))
    return [window_batch(sequences[k:k + batch_size]) for k in range(0, len(sequences), batch_size)]
