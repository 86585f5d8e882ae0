"""The rolling (online) evaluation of a forecaster, scored beside the open-loop models.

At origins every ``stride_s`` along each record, a forecaster reads the measured history
(inputs and voltage residual of the last ``context_s`` seconds) and forecasts the next
``horizon_s`` seconds free-running, given the planned current (:mod:`hybrid.data.windows`).
Its voltage is the physics voltage plus the forecast residual. Per split, model -> voltage error
stats [mV] (``rmse_mV``, ``mae_mV``, ``max_mV``, ``points``) over the scored rows of every
forecast window, with the window settings (``horizon_s``, ``context_s``, ``stride_s``) and the
number of ``windows``:

- each forecaster;
- ``hold_last``: the last measured residual before the origin held over the horizon (the
  persistence baseline a forecaster must beat);
- physics and every open-loop model (their whole-record predictions) on exactly the same rows.

A row inside two overlapping windows (``stride_s`` < ``horizon_s``) counts once per window, for
every model. When a run's forecasters have different windows, the open-loop entries are
named ``MODEL@FORECASTER``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from hybrid.data import PHYSICS_VOLTAGE, VOLTAGE, VOLTAGE_RESIDUAL, Corpus, Record
from hybrid.data.windows import ForecastWindows, WindowSpan, forecast_windows, window_batch, window_sequences
from hybrid.evaluate.metrics import error_stats
from hybrid.evaluate.predict import Predictions
from hybrid.models import Seq2SeqForecaster
from hybrid.train import TrainedModel, torch_threads

HOLD_LAST = "hold_last"
FORECAST_BATCH = 256  # windows per forward pass


def rolling_table(corpus: Corpus, models: list[TrainedModel], predictions: Predictions,
                  masks: dict[int, np.ndarray]) -> dict[str, dict[str, Any]]:
    """model -> error stats over the forecast windows of the forecasters among ``models`` on the
    ``masks`` rows (sample_id -> (rows,) bool, a split's scored rows); {} without a forecaster."""
    forecasters = [trained for trained in models if isinstance(trained.model, Seq2SeqForecaster)]
    settings = {forecast_windows(trained.model.config) for trained in forecasters}
    table = {}
    for trained in forecasters:
        windows = forecast_windows(trained.model.config)
        suffix = "" if len(settings) == 1 else f"@{trained.name}"
        errors, count = forecast_errors(trained, corpus, predictions, masks, windows)
        for name, parts in errors.items():
            if parts:
                table[name if name == trained.name else name + suffix] = {
                    **error_stats(np.concatenate(parts)), "windows": count, **windows._asdict()}
    return table


def forecast_errors(trained: TrainedModel, corpus: Corpus, predictions: Predictions, masks: dict[int, np.ndarray],
                    windows: ForecastWindows) -> tuple[dict[str, list[np.ndarray]], int]:
    """Voltage errors [V] over the scored rows of each window of each masked record, per model
    (the forecaster, hold_last and every open-loop prediction), and the number of windows."""
    errors: dict[str, list[np.ndarray]] = {trained.name: [], HOLD_LAST: [], **{name: [] for name in predictions}}
    count = 0
    for sample_id, scored in masks.items():
        record = corpus.cells[sample_id]
        spans = windows.spans(record, scored)
        measured = record.columns[VOLTAGE]
        for span, (forecast, held) in zip(spans, forecast_record(trained, record, spans, scored)):
            rows = span.origin + np.flatnonzero(scored[span.origin:span.stop])
            errors[trained.name].append(forecast[rows - span.origin] - measured[rows])
            errors[HOLD_LAST].append(held[rows - span.origin] - measured[rows])
            for name, prediction in predictions.items():
                errors[name].append(prediction[sample_id].voltage_V[rows] - measured[rows])
        count += len(spans)
    return errors, count


@torch.no_grad()
def forecast_record(trained: TrainedModel, record: Record, spans: list[WindowSpan],
                    scored: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per window of ``spans``: the forecaster's voltage [V] over its horizon rows [origin, stop),
    free-running from the measured history, and the hold-last voltage [V] over the same rows."""
    trained.model.eval()  # free-running: in training mode it would read the measured horizon
    sequences = window_sequences(record, trained.normalisation, spans, scored)
    target = trained.normalisation["targets"].index(VOLTAGE_RESIDUAL)
    mean, std = trained.normalisation["target_mean"][target], trained.normalisation["target_std"][target]
    results = []
    with torch_threads(1):  # tiny decoder steps, see TrainConfig.threads
        for first in range(0, len(sequences), FORECAST_BATCH):
            chunk = sequences[first:first + FORECAST_BATCH]
            batch = window_batch(chunk)
            outputs, _ = trained.model(batch.inputs, trained.model.context_state(batch.context, batch.context_mask))
            for row, (span, window) in enumerate(zip(spans[first:first + FORECAST_BATCH], chunk)):
                physics = record.columns[PHYSICS_VOLTAGE][span.origin:span.stop]
                residual = outputs[row, :len(window.mask), 0].double().numpy() * std + mean
                results.append((physics + residual, physics + float(window.context[-1, -1]) * std + mean))
    return results
