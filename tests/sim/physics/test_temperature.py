"""Facts about the plant knobs that let a synthetic population span real cells: an extra
Arrhenius factor changes nothing at its reference temperature and slows a cold cell, and the
hysteresis half width is a parameter that a cell scale (reference.variability) widens."""

from __future__ import annotations

import numpy as np

from sim.cells import CellSpec
from sim.physics import Fidelity, simulate
from sim.physics.fidelity import HYSTERESIS_HALF_WIDTH, Hysteresis
from sim.physics.temperature import ACTIVATION_PARAMETERS, ExtraArrhenius
from sim.protocols import Sequence

DISCHARGE = Sequence.model_validate({"steps": [{"kind": "cc", "c_rate": 0.5, "duration_s": 600.0},
                                               {"kind": "rest", "duration_s": 1800.0}], "period_s": 30.0})


def _voltage(cell: CellSpec, fidelity: Fidelity) -> np.ndarray:
    result = simulate(cell, DISCHARGE, fidelity, raise_on_failure=True)
    return result.columns["Voltage [V]"]


def test_an_extra_arrhenius_factor_is_one_at_its_reference_and_slows_a_cold_cell():
    plain, extra = Fidelity(model="spm"), Fidelity(model="spm", extra_arrhenius=ExtraArrhenius(
        particle_diffusivity=30000.0, exchange_current=10000.0, reference_K=298.15))
    warm = CellSpec(parameter_set="Prada2013", ambient_temperature_K=298.15, initial_soc=0.9)
    np.testing.assert_allclose(_voltage(warm, extra), _voltage(warm, plain), atol=1e-6)
    cold = warm.with_updates(ambient_temperature_K=258.15)
    loaded = slice(1, 50)  # under the C/2 discharge
    assert np.all(_voltage(cold, extra)[loaded] < _voltage(cold, plain)[loaded] - 1e-3)
    energy = ACTIVATION_PARAMETERS["particle_diffusivity"][0]
    spread = cold.with_updates(scales={energy: 1.5})  # a cell with a 1.5x activation energy is slower still
    assert np.mean(_voltage(spread, extra)[loaded] - _voltage(cold, extra)[loaded]) < -1e-3


def test_a_cell_scale_widens_the_hysteresis():
    fidelity = Fidelity(model="spm", hysteresis=Hysteresis(electrode="positive", width_V=0.04))
    cell = CellSpec(parameter_set="Prada2013", initial_soc=0.7)
    name = HYSTERESIS_HALF_WIDTH.format(domain="Positive")
    nominal = _voltage(cell, fidelity)[-1]  # relaxed after a discharge: on the discharge branch
    wide = _voltage(cell.with_updates(scales={name: 2.0}), fidelity)[-1]
    assert abs(abs(wide - nominal) - 0.02) < 0.006  # half width 20 mV -> 40 mV
