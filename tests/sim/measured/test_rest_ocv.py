"""The OCV correction from a record's rests: a synthetic round trip (a cell whose OCV departs
from its parameter set's by a known table is recovered at the rest ends), the rest detector,
and a calibration that fits one."""

from __future__ import annotations

import numpy as np
import pytest

from sim.cells import CellSpec, OCVCorrection
from sim.errors import ConfigError, DataError
from sim.measured.calibrate import CalibrationOptions, calibrate
from sim.measured.fit_data import Bounds
from sim.measured.rest_ocv import rest_ends, rest_ocv_correction
from sim.physics import Fidelity, prepare_cell, simulate
from sim.physics.batched import BatchedStepper
from sim.physics.stepper import PhysicsStepper
from sim.protocols import ConstantCurrent, CurrentTrace
from tests.sim.measured.test_fit_data import as_measured

SPME = Fidelity(model="spme")
CHEN = CellSpec(parameter_set="Chen2020", initial_soc=0.9)
# A departure that is no offset, stretch or balance change: +20 mV at 0.3, -15 mV at 0.6, +5 at 0.9
TRUE_CORRECTION = OCVCorrection(stoichiometry=[0.3, 0.6, 0.9], voltage_V=[0.020, -0.015, 0.005])


def steps_and_rests(capacity_Ah: float, steps: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """(time [s], current [A]) on a 10 s grid: a 40 min rest, then ``steps`` times 6 min at 1C
    (10 % SOC) and a 40 min rest."""
    current = [np.zeros(240)]
    for _ in range(steps):
        current += [np.full(36, capacity_Ah), np.zeros(240)]
    current = np.concatenate(current)
    return 10.0 * np.arange(len(current)), current


def test_rest_ends_are_the_last_samples_of_long_enough_rests():
    time_s = np.arange(12.0)
    current = np.array([0, 0, 0, 1, 1, 0, 0, 0, 0, 1, 0, 0.001])
    assert rest_ends(time_s, current, rest_current_A=0.01, min_rest_s=2.0).tolist() == [2, 8]
    assert rest_ends(time_s, current, rest_current_A=0.01, min_rest_s=1.0).tolist() == [2, 8, 11]


def test_the_correction_is_added_to_the_voltage_at_the_positive_surface_stoichiometry():
    capacity = prepare_cell(CHEN, SPME).capacity_Ah
    trace = CurrentTrace(*steps_and_rests(capacity, steps=2))
    plain = simulate(CHEN, trace, SPME, voltage_cutoffs=False)
    corrected = simulate(CHEN.with_updates(ocv_correction=TRUE_CORRECTION), trace, SPME, voltage_cutoffs=False)
    stoichiometry = plain["X-averaged positive particle surface stoichiometry"]
    np.testing.assert_allclose(corrected["Voltage [V]"] - plain["Voltage [V]"], TRUE_CORRECTION.at(stoichiometry),
                               atol=1e-9)
    # beyond its ends the table holds its end values
    assert TRUE_CORRECTION.at(np.array([0.0, 1.0])).tolist() == [0.020, 0.005]


def test_rest_ocv_correction_recovers_a_known_departure_at_the_rest_ends():
    capacity = prepare_cell(CHEN, SPME).capacity_Ah
    time_s, current = steps_and_rests(capacity)
    truth = simulate(CHEN.with_updates(ocv_correction=TRUE_CORRECTION), CurrentTrace(time_s, current), SPME,
                     voltage_cutoffs=False)
    fitted = rest_ocv_correction(CHEN, as_measured(truth.columns), SPME, 1800.0, capacity_Ah=capacity)
    assert len(fitted.stoichiometry) == 7  # the opening rest and six after the steps
    # 40 min after a 1C step the particle surface is within a few 1e-4 of its bulk
    np.testing.assert_allclose(fitted.voltage_V, TRUE_CORRECTION.at(np.array(fitted.stoichiometry)), atol=2e-4)
    with pytest.raises(DataError, match="ocv_from_rests = 3600"):
        rest_ocv_correction(CHEN, as_measured(truth.columns), SPME, 3600.0, capacity_Ah=capacity)


def test_a_calibration_with_ocv_from_rests_fits_the_correction_and_applies_it():
    capacity = prepare_cell(CHEN, SPME).capacity_Ah
    time_s, current = steps_and_rests(capacity)
    truth = simulate(CHEN.with_updates(ocv_correction=TRUE_CORRECTION), CurrentTrace(time_s, current), SPME,
                     voltage_cutoffs=False)
    options = CalibrationOptions(fit_period_s=60.0, initial_soc=Bounds(low=0.8, high=1.0), max_iterations=4)
    plain = calibrate(CHEN, as_measured(truth.columns), SPME, options=options)
    corrected = calibrate(CHEN, as_measured(truth.columns), SPME,
                          options=options.model_copy(update={"ocv_from_rests": 1800.0}))
    assert plain.ocv_correction is None and corrected.values == plain.values
    # the correction is the fitted cell's departure at the rest ends, and the cell carries it
    expected = rest_ocv_correction(plain.apply(CHEN), as_measured(truth.columns), SPME, 1800.0,
                                   capacity_Ah=plain.capacity_after_Ah)
    assert corrected.apply(CHEN).ocv_correction == expected
    assert corrected.rmse_after_mV < plain.rmse_after_mV


def test_a_cell_with_a_correction_runs_replays_only():
    cell = CHEN.with_updates(ocv_correction=TRUE_CORRECTION)
    trace = CurrentTrace(np.array([0.0, 600.0]), np.array([1.0, 1.0]))
    with pytest.raises(ConfigError, match="cell.ocv_correction"):
        simulate(cell, trace, SPME)  # voltage cut-offs on
    with pytest.raises(ConfigError, match="cell.ocv_correction"):
        simulate(cell, ConstantCurrent(c_rate=1.0, duration_s=600.0), SPME, voltage_cutoffs=False)  # not a current replay


@pytest.mark.parametrize("table, message", [
    ({"stoichiometry": [0.5, 0.4], "voltage_V": [0.0, 0.0]}, "increase"),
    ({"stoichiometry": [0.4, 0.5], "voltage_V": [0.0]}, "as many"),
    ({"stoichiometry": [0.4], "voltage_V": [0.9]}, "0.5 V"),
])
def test_an_ocv_correction_table_is_checked(table, message):
    with pytest.raises(ValueError, match=message):
        OCVCorrection(**table)


def test_the_steppers_refuse_a_cell_with_a_correction():
    cell = CHEN.with_updates(ocv_correction=TRUE_CORRECTION)
    with pytest.raises(ConfigError, match="ocv_correction"):
        PhysicsStepper(cell, SPME)
    with pytest.raises(ConfigError, match="ocv_correction"):
        BatchedStepper([cell], Fidelity(model="spm"))
