"""Calibration of physics parameters to measured records: a synthetic round trip that needs no
data, and the acceptance test on a real A123 record (the cost itself: test_fit_data)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from sim.measured.calibrate import CalibrationOptions, calibrate
from sim.measured.fit_data import Bounds, fit_data, rmse_mV, voltage_error
from sim.cells.spec import CellSpec
from sim.errors import ConfigError
from sim.physics.fidelity import Fidelity
from sim.measured.columns import AMBIENT_TEMPERATURE, CURRENT, TIME, VOLTAGE
from sim.protocols.steps import CurrentTrace
from sim.physics.simulate import prepare_cell, simulate
from tests.real_data import needs_a123
from tests.sim.measured.test_fit_data import as_measured

SPME = Fidelity(model="spme")
A123_CONFIG = Path(__file__).resolve().parents[3] / "configs" / "measured" / "a123_dynamic.yaml"


def block_profile(hours: float, capacity_Ah: float, period_s: float = 10.0) -> tuple[np.ndarray, np.ndarray]:
    """(time [s], current [A]) of repeated 10 min blocks: 4 min at 1C, a rest, a 2C pulse, a
    C/2 charge pulse and a rest (0.079 C.h net per block), so both the charge axis and the
    resistance show."""
    time_s = np.arange(0.0, hours * 3600.0, period_s)
    phase = time_s % 600.0
    c_rate = np.select([phase < 240, phase < 420, phase < 450, phase < 480], [1.0, 0.0, 2.0, -0.5], 0.0)
    return time_s, c_rate * capacity_Ah


@pytest.mark.parametrize("fit_period_s", [None, 60.0])
def test_synthetic_round_trip_recovers_capacity_scale_and_initial_soc(fit_period_s):
    nominal = CellSpec(parameter_set="Chen2020")
    truth = nominal.with_updates(scales={"Electrode width [m]": 0.9}, initial_soc=0.8)
    # 80 % -> ~10 % SOC: the knee near empty pins the capacity
    time_s, current = block_profile(1.5, capacity_Ah=prepare_cell(nominal, SPME).capacity_Ah * 0.9)
    measured = simulate(truth, CurrentTrace(time_s, current), SPME, voltage_cutoffs=False)
    assert measured.status == "ok" and measured["Voltage [V]"].min() > 2.5

    options = CalibrationOptions(fit_period_s=fit_period_s, initial_soc=Bounds(low=0.5, high=1.0))
    calibration = calibrate(nominal, as_measured(measured.columns), SPME, options=options)

    assert calibration.values["capacity_scale"] == pytest.approx(0.9, rel=0.02)
    assert calibration.values["initial_soc"] == pytest.approx(0.8, abs=0.02)
    assert calibration.apply(nominal).scales["Electrode width [m]"] == pytest.approx(0.9, rel=0.02)
    # the optimiser gets down to the truth's own cost on its grid (zero on the measured grid;
    # the block means of 30 s pulses cost even the truth tens of mV)
    truth_rmse = rmse_mV(voltage_error(truth, fit_data(as_measured(measured.columns), fit_period_s), SPME))
    assert calibration.rmse_after_mV <= 1.05 * truth_rmse + 1.0
    assert calibration.rmse_after_mV < calibration.rmse_before_mV / 3


def test_contact_resistance_needs_the_contact_resistance_option():
    time_s = np.arange(0.0, 600.0, 10.0)
    measured = as_measured({TIME: time_s, CURRENT: np.ones(len(time_s)), VOLTAGE: np.full(len(time_s), 3.6),
                            AMBIENT_TEMPERATURE: np.full(len(time_s), 298.15)})
    with pytest.raises(ConfigError, match="contact_resistance"):
        calibrate(CellSpec(parameter_set="Chen2020"), measured, SPME,
                  options=CalibrationOptions(resistance="contact"))


@pytest.fixture(scope="module")
def a123_calibration():
    """The A123 25 degC dynamic test calibrated as configs/measured/a123_dynamic.yaml does, but
    with the capacity fitted to the voltage (starting from the measured throughput)."""
    from sim.config import load_config
    from sim.measured.records import find_tests, load_test, measured_net_discharge
    from sim.measured.spec import PairingSpec, resolve_data_dir

    spec = load_config(A123_CONFIG, PairingSpec)
    data_dir = resolve_data_dir(spec.data_dir)
    test = next(test for test in find_tests(spec, data_dir) if test.relative == spec.calibration.file)
    measured = load_test(spec, test.path, test.ambient_temperature_K)
    throughput = measured_net_discharge(spec, test, measured)
    cell = spec.cell.with_updates(ambient_temperature_K=test.ambient_temperature_K)
    # the config takes the capacity from the throughput; here the voltage alone must find it
    options = spec.calibration.options.model_copy(update={"capacity": "fit"})
    calibration = calibrate(cell, measured, spec.physics, options=options, throughput_capacity_Ah=throughput)
    return spec, cell, measured, throughput, calibration


@needs_a123
def test_a123_calibrated_capacity_is_within_3_percent_of_the_measured_throughput(a123_calibration):
    _, _, _, throughput, calibration = a123_calibration
    # scripts 1 + 2 at 25 degC run from full to empty: the README gives ~2.03 Ah
    assert throughput == pytest.approx(2.03, abs=0.02)
    assert calibration.capacity_before_Ah / throughput - 1 > 0.1   # Prada2013 is ~13 % larger
    assert abs(calibration.capacity_after_Ah / throughput - 1) < 0.03


@needs_a123
def test_a123_calibration_reduces_the_voltage_error_on_a_finer_grid(a123_calibration):
    spec, cell, measured, _, calibration = a123_calibration
    finer = fit_data(measured, period_s=10.0)   # the fit used 120 s block means

    before = rmse_mV(voltage_error(cell, finer, spec.physics))
    after = rmse_mV(voltage_error(calibration.apply(cell), finer, spec.physics))

    assert calibration.rmse_after_mV < 0.5 * calibration.rmse_before_mV
    assert after < 0.6 * before
    assert math.isfinite(after) and after < 40.0
