"""Facts about sim.measured.fit_data: the held-current integral, block averaging that keeps the
charge, the capped voltage error of a failed solve, and the throughput capacity."""

from __future__ import annotations

import numpy as np
import pytest

from sim.cells.spec import CellSpec
from sim.errors import ConfigError, DataError
from sim.measured.columns import AMBIENT_TEMPERATURE, CURRENT, TIME, VOLTAGE
from sim.measured.fit_data import (DISCHARGE_CAPACITY, FAILED_ERROR_V, Bounds, capped_errors, fit_data,
                                   held_integral, rmse_mV, throughput_capacity, voltage_error)
from sim.measured.loader import MeasuredSeries
from sim.physics.fidelity import Fidelity
from sim.physics.simulate import prepare_cell

SPME = Fidelity(model="spme")


def as_measured(columns: dict[str, np.ndarray], source: str = "synthetic") -> MeasuredSeries:
    """A MeasuredSeries of the time, current, voltage and ambient columns of ``columns``."""
    names = (TIME, CURRENT, VOLTAGE, AMBIENT_TEMPERATURE)
    return MeasuredSeries(source, {name: np.asarray(columns[name]) for name in names}, None)


def ramp(rows: int = 61, step_s: float = 10.0, current_A: float = 2.0) -> MeasuredSeries:
    """A constant-current record whose voltage falls linearly from 4.0 V to 3.0 V."""
    time_s = np.arange(rows) * step_s
    return MeasuredSeries("ramp.csv", {TIME: time_s, CURRENT: np.full(rows, current_A),
                                       VOLTAGE: np.linspace(4.0, 3.0, rows)}, step_s)


# --- held_integral ----------------------------------------------------------------------


def test_held_integral_of_a_constant_current_over_t_seconds_is_i_times_t():
    time_s = np.array([0.0, 1.0, 3.0, 7.5, 10.0])
    integral = held_integral(time_s, np.full(5, 2.5))
    np.testing.assert_allclose(integral, 2.5 * time_s, rtol=1e-15)


def test_held_integral_holds_the_start_sample_or_with_right_the_end_sample():
    time_s = np.array([0.0, 1.0, 3.0])
    values = np.array([1.0, 10.0, 100.0])
    # intervals of 1 s and 2 s
    assert held_integral(time_s, values).tolist() == [0.0, 1.0, 1.0 + 2 * 10.0]
    assert held_integral(time_s, values, right=True).tolist() == [0.0, 10.0, 10.0 + 2 * 100.0]


# --- throughput_capacity ----------------------------------------------------------------


def test_throughput_of_a_full_discharge_equals_the_discharged_charge():
    # 2 A for 1 h logged every 10 s: 2 Ah out
    assert throughput_capacity([ramp(rows=361, step_s=10.0, current_A=2.0)]) == pytest.approx(2.0, rel=1e-12)


def test_throughput_prefers_the_cycler_counter_over_the_logged_current():
    time_s = np.arange(0.0, 3601.0)
    logged = MeasuredSeries("a", {TIME: time_s, CURRENT: np.full(len(time_s), 2.0), VOLTAGE: np.full(len(time_s), 3.3)}, 1.0)
    counted = MeasuredSeries("b", {**logged.columns, "Discharge capacity [A.h]": np.linspace(0.0, 2.1, len(time_s))}, 1.0)
    assert throughput_capacity([logged]) == pytest.approx(2.0)
    assert throughput_capacity([logged, counted]) == pytest.approx(4.1)


def test_throughput_counter_counts_its_change_not_its_absolute_value():
    record = ramp()
    counter = MeasuredSeries("c", {**record.columns, DISCHARGE_CAPACITY: np.linspace(5.0, 5.3, 61)}, 10.0)
    assert throughput_capacity([counter]) == pytest.approx(0.3)


def test_throughput_needs_a_record():
    with pytest.raises(ConfigError, match="at least one record"):
        throughput_capacity([])


# --- fit_data ---------------------------------------------------------------------------


def test_block_average_keeps_the_charge_and_averages_the_voltage():
    time_s = np.arange(0.0, 3601.0)
    current = np.where((time_s // 7) % 3 == 0, 4.0, -1.0)   # changes inside every 60 s block
    voltage = 3.7 - 0.01 * current + 1e-5 * time_s
    measured = MeasuredSeries("synthetic", {TIME: time_s, CURRENT: current, VOLTAGE: voltage}, 1.0)

    data = fit_data(measured, period_s=60.0)

    held_charge_Ah = np.sum(current[:-1]) / 3600.0
    assert data.trace.discharge_Ah[-1] == pytest.approx(held_charge_Ah, rel=1e-12)
    # the block ending at 120 s holds the samples logged at 61..120 s
    assert data.voltage_V[2] == pytest.approx(np.mean(voltage[61:121]), rel=1e-12)
    assert np.all(data.weights)


@pytest.mark.parametrize("period_s", [None, 5.0, 10.0])
def test_a_period_at_or_below_the_logged_step_keeps_the_measured_samples(period_s):
    record = ramp(step_s=10.0)
    data = fit_data(record, period_s=period_s)
    np.testing.assert_array_equal(data.trace.time_s, record.columns[TIME])
    np.testing.assert_array_equal(data.voltage_V, record.columns[VOLTAGE])


def test_only_samples_inside_the_voltage_window_count():
    data = fit_data(ramp(), voltage_window=Bounds(low=3.2, high=3.8))
    voltage = ramp().columns[VOLTAGE]
    assert data.weights.tolist() == ((voltage >= 3.2) & (voltage <= 3.8)).tolist()
    # 4.0 -> 3.0 V in steps of 1/60 V: the 3.8 V and 3.2 V samples (12 and 48) bound the window
    assert 35 <= data.weights.sum() <= 37 and not data.weights[:11].any() and not data.weights[50:].any()


def test_a_window_that_holds_fewer_than_two_samples_names_the_record():
    with pytest.raises(DataError, match="ramp.csv: fewer than 2 samples inside the fit voltage window"):
        fit_data(ramp(), voltage_window=Bounds(low=4.5, high=5.0))


def test_bounds_must_be_ordered():
    with pytest.raises(ValueError, match=r"low \(3.0\) must be below high \(3.0\)"):
        Bounds(low=3.0, high=3.0)


# --- voltage errors ---------------------------------------------------------------------


def test_capped_errors_fill_missing_samples_and_cap_runaway_voltages():
    data = fit_data(ramp(rows=5))
    model = data.voltage_V[:4] + np.array([0.01, np.nan, 5000.0, -0.02])  # one sample short
    error = capped_errors(model, data)
    np.testing.assert_allclose(error, [0.01, FAILED_ERROR_V, FAILED_ERROR_V, -0.02, FAILED_ERROR_V], atol=1e-12)
    assert capped_errors(None, data).tolist() == [FAILED_ERROR_V] * 5


def test_capped_errors_keep_only_the_counted_samples():
    data = fit_data(ramp(), voltage_window=Bounds(low=3.2, high=3.8))
    assert len(capped_errors(data.voltage_V + 0.003, data)) == data.weights.sum()
    assert rmse_mV(capped_errors(data.voltage_V + 0.003, data)) == pytest.approx(3.0)


def test_rmse_mv_is_the_root_mean_square_in_millivolts():
    assert rmse_mV(np.array([0.003, -0.004])) == pytest.approx(1000.0 * np.sqrt(12.5e-6))


def test_a_failed_solve_is_a_large_finite_cost_not_an_exception():
    cell = CellSpec(parameter_set="Chen2020")
    time_s = np.arange(0.0, 7200.0, 60.0)
    overdrawn = np.full(len(time_s), 5.0 * prepare_cell(cell, SPME).capacity_Ah)  # 5C for 2 h
    data = fit_data(as_measured({TIME: time_s, CURRENT: overdrawn, VOLTAGE: np.full(len(time_s), 3.5),
                                 AMBIENT_TEMPERATURE: np.full(len(time_s), 298.15)}))

    error = voltage_error(cell, data, SPME)

    assert np.all(np.isfinite(error))
    assert rmse_mV(error) > 0.5 * 1000.0 * FAILED_ERROR_V
