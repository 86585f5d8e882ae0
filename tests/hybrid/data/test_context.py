"""Facts about context windows: the first diagnostic, a window in seconds, the cap, and the
features a context row holds."""

from __future__ import annotations

import numpy as np

from hybrid.data import ContextWindow, Record, context_features, context_size


def record(tags: list[str] | None) -> Record:
    time_s = np.arange(0.0, 1000.0, 10.0)  # 100 rows
    columns = {"Time [s]": time_s, "Current [A]": np.sin(time_s), "Ambient temperature [K]": np.full(100, 298.0),
               "Voltage [V]": 3.7 + 0.01 * np.sin(time_s), "Physics voltage [V]": np.full(100, 3.7)}
    cycles = {} if tags is None else {"Tag": np.array(tags), "Start time [s]": np.array([0.0, 300.0]),
                                      "End time [s]": np.array([295.0, 990.0])}
    return Record(0, columns, {}, 298.0, 1.0, cycles)


def test_the_first_diagnostic_is_the_context():
    assert ContextWindow(None, 0.9).rows(record(["hppc", "cycle"])) == 30  # rows at 0 ... 290 s


def test_a_record_starting_with_an_ageing_cycle_has_a_one_row_context():
    assert ContextWindow(None, 0.9).rows(record(["cycle", "cycle"])) == 1


def test_a_window_in_seconds_and_the_cap():
    assert ContextWindow(150.0, 0.9).rows(record(None)) == 16
    assert ContextWindow(None, 0.5).rows(record(None)) == 50  # untagged: the cap
    assert ContextWindow(900.0, 0.25).rows(record(["hppc", "cycle"])) == 25


def test_context_rows_hold_the_inputs_and_the_measured_voltage_residual():
    normalisation = {"features": ["Current [A]"], "feature_mean": [0.0], "feature_std": [1.0],
                     "targets": ["Voltage residual [V]", "State of charge residual"], "target_mean": [0.0, 0.0],
                     "target_std": [0.01, 0.01], "max_residual_V": 0.5}
    cell = record(None)
    features, valid = context_features(cell, normalisation, 7)
    assert features.shape == (7, context_size(normalisation)) == (7, 2)  # the SOC is never measured
    np.testing.assert_allclose(features[:, 1], np.sin(cell.columns["Time [s]"][:7]), atol=1e-6)
    assert valid.all()
