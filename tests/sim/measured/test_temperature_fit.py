"""The series resistance's temperature dependence fitted over records at several temperatures: a
synthetic round trip recovers the resistance and activation energy that made the records."""

from __future__ import annotations

import pytest

from sim.cells.spec import CellSpec
from sim.errors import ConfigError
from sim.measured.calibrate import CalibrationOptions
from sim.measured.fit_data import Bounds
from sim.measured.temperature_fit import fit_series_resistance
from sim.physics.fidelity import Fidelity
from sim.physics.simulate import prepare_cell, simulate
from sim.protocols.steps import CurrentTrace
from tests.sim.measured.test_calibrate import block_profile
from tests.sim.measured.test_fit_data import as_measured

SPM = Fidelity(model="spm", contact_resistance=True)


def test_a_round_trip_recovers_the_series_resistance_and_its_activation_energy():
    cell = CellSpec(parameter_set="Chen2020", initial_soc=0.9)
    truth = cell.with_updates(overrides={"Contact resistance [Ohm]": 0.02}, contact_resistance_activation_J_mol=40_000.0)
    time_s, current = block_profile(0.5, capacity_Ah=prepare_cell(cell, SPM).capacity_Ah)
    records = []
    for ambient_K in (268.15, 298.15, 318.15):
        measured = simulate(truth.with_updates(ambient_temperature_K=ambient_K), CurrentTrace(time_s, current), SPM,
                            voltage_cutoffs=False)
        records.append((cell.with_updates(ambient_temperature_K=ambient_K), as_measured(measured.columns)))
    options = CalibrationOptions(fit_period_s=None, contact_resistance_ohm=Bounds(low=0.0, high=0.1))
    fit = fit_series_resistance(records, SPM, options=options)
    assert fit.values["contact_resistance_ohm"] == pytest.approx(0.02, rel=0.02)
    assert fit.values["contact_resistance_activation_J_mol"] == pytest.approx(40_000.0, rel=0.03)
    assert max(fit.rmse_after_mV) < 1.0 < min(fit.rmse_before_mV)
    assert fit.ambient_K == [268.15, 298.15, 318.15]
    with pytest.raises(ConfigError, match="contact_resistance: true"):
        fit_series_resistance(records, Fidelity(model="spm"), options=options)
