"""Facts about forecast windows in time: on a non-uniform grid the history and the horizon are
the rows of their seconds, origins every stride_s, unscored rows trim or drop windows, and the
teacher-forcing input is the measured residual one row back."""

from __future__ import annotations

import numpy as np
import pytest

from hybrid.data import Record
from hybrid.data.windows import ForecastWindows, forecast_batches, forecast_windows, window_sequences
from hybrid.models import ForecasterConfig
from sim.errors import ConfigError, DataError

PULSE_END_S = 600.0  # 1 s rows up to here, 120 s rows after (cycling)
NORMALISATION = {"features": ["Current [A]", "Time step [s]"], "feature_mean": [0.0, 30.0],
                 "feature_std": [1.0, 50.0], "current_index": 0,
                 "targets": ["Voltage residual [V]", "State of charge residual"], "target_mean": [0.0, 0.0],
                 "target_std": [0.01, 0.01], "max_residual_V": 0.5, "family": "hybrid"}
WINDOWS = ForecastWindows(context_s=300.0, horizon_s=600.0, stride_s=600.0)


def record(seed: int = 0) -> Record:
    """1 s rows for 600 s, 120 s rows to 6600 s, then 1 s rows for 300 s; a smooth residual."""
    time_s = np.concatenate([np.arange(0.0, PULSE_END_S), np.arange(PULSE_END_S, 6600.0, 120.0),
                             np.arange(6600.0, 6900.0)])
    rng = np.random.default_rng(seed)
    current = rng.normal(size=time_s.size)
    physics = 3.7 - 0.01 * current
    columns = {"Time [s]": time_s, "Current [A]": current, "Ambient temperature [K]": np.full(time_s.size, 298.0),
               "Voltage [V]": physics + 0.02 * np.sin(time_s / 500.0), "Physics voltage [V]": physics,
               "State of charge": np.full(time_s.size, 0.5), "Physics state of charge": np.full(time_s.size, 0.5)}
    return Record(seed, columns, {}, 298.0, 5.0, {})


def test_history_and_horizon_are_the_rows_of_their_seconds_on_a_non_uniform_grid():
    cell = record()
    time_s = cell.columns["Time [s]"]
    spans = WINDOWS.spans(cell, np.ones(cell.rows, dtype=bool))
    origins_s = time_s[[span.origin for span in spans]]
    assert origins_s[0] == WINDOWS.context_s and np.all(np.diff(origins_s) >= WINDOWS.stride_s)
    for start, origin, stop in spans:
        t = time_s[origin]
        assert np.all(time_s[start:origin] >= t - WINDOWS.context_s)
        assert start == 0 or time_s[start - 1] < t - WINDOWS.context_s
        assert np.all(time_s[origin:stop] < t + WINDOWS.horizon_s)
        assert stop == cell.rows or time_s[stop] >= t + WINDOWS.horizon_s
    horizon_rows = sorted({span.stop - span.origin for span in spans})
    assert horizon_rows[0] == 5 and horizon_rows[-1] == 600 - 300 + 3  # cycling; 1 s rows then 120 s rows


def test_unscored_rows_trim_horizons_and_drop_windows():
    cell = record()
    scored = np.ones(cell.rows, dtype=bool)
    scored[cell.columns["Time [s]"] >= 3000.0] = False  # e.g. the late life of a training cell
    spans = WINDOWS.spans(cell, scored)
    assert all(scored[span.origin] and scored[span.stop - 1] for span in spans)
    assert cell.columns["Time [s]"][spans[-1].stop] == 3000.0  # the last horizon is cut where scoring ends
    assert len(spans) < len(WINDOWS.spans(cell, np.ones(cell.rows, dtype=bool)))


def test_the_teacher_forcing_input_is_the_measured_residual_one_row_back():
    cell = record()
    spans = WINDOWS.spans(cell, np.ones(cell.rows, dtype=bool))
    for window, (start, origin, stop) in zip(window_sequences(cell, NORMALISATION, spans, np.ones(cell.rows, bool)),
                                             spans):
        residual = (cell.columns["Voltage [V]"] - cell.columns["Physics voltage [V]"]) / 0.01
        np.testing.assert_allclose(window.targets[:, 0], residual[origin:stop], rtol=1e-6)
        np.testing.assert_allclose(window.inputs[:, -1], residual[origin - 1:stop - 1], rtol=1e-6)
        np.testing.assert_allclose(window.context[:, -1], residual[start:origin], rtol=1e-6)
        assert window.inputs.shape[1] == window.context.shape[1] == len(NORMALISATION["features"]) + 1


def test_batches_mask_the_scored_horizon_rows_and_the_history_rows():
    cell = record()
    corpus = type("Corpus", (), {"cells": {0: cell}})()  # forecast_batches reads corpus.cells only
    batches = forecast_batches(corpus, {0: (0, cell.rows)}, NORMALISATION, 4, WINDOWS)
    spans = WINDOWS.spans(cell, np.ones(cell.rows, dtype=bool))
    assert sum(batch.inputs.shape[0] for batch in batches) == len(spans)
    assert sum(int(batch.mask.sum()) for batch in batches) == sum(stop - origin for _, origin, stop in spans)
    assert sum(int(batch.context_mask.sum()) for batch in batches) == sum(origin - start for start, origin, _ in spans)


def test_a_run_forecaster_needs_time_windows_and_its_causal_mask():
    assert forecast_windows(ForecasterConfig(context_s=900, horizon_s=600)) == ForecastWindows(900.0, 600.0, 600.0)
    with pytest.raises(ConfigError, match="field 'context_s' = None"):
        forecast_windows(ForecasterConfig(horizon_s=600))
    with pytest.raises(ConfigError, match="field 'causal_mask' = False"):
        forecast_windows(ForecasterConfig(context_s=900, horizon_s=600, causal_mask=False))
    assert forecast_windows(object()) is None  # not a forecaster


def test_records_shorter_than_the_history_leave_no_window_and_the_error_names_context_s():
    cell = record()
    corpus = type("Corpus", (), {"cells": {0: cell}})()
    with pytest.raises(DataError, match="field 'context_s' = 7000"):
        forecast_batches(corpus, {0: (0, cell.rows)}, NORMALISATION, 4, WINDOWS._replace(context_s=7000.0))
