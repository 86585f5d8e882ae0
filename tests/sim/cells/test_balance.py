"""electrode_balance against PyBaMM's ElectrodeSOHSolver, which it replaces for speed."""

from __future__ import annotations

import dataclasses
import statistics
import time

import pybamm
import pytest

from sim.cells.spec import CellSpec, cell_parameter_values, electrode_balance

PARAM = pybamm.LithiumIonParameters()
DESIGNS = [
    {},
    {"negative_thickness_m": 60e-6, "positive_thickness_m": 85e-6},
    {"negative_thickness_m": 100e-6, "positive_thickness_m": 55e-6},
    {"negative_porosity": 0.2, "positive_porosity": 0.4},
    {"negative_particle_radius_m": 2e-6, "positive_particle_radius_m": 9e-6},
    {"negative_active_fraction": 0.55, "positive_thickness_m": 40e-6},  # discharge ends near y = 1
]


def pybamm_balance(values: pybamm.ParameterValues) -> tuple[list[float], float]:
    """([x_0, x_100, y_100, y_0], capacity [A.h]) from a fresh PyBaMM ElectrodeSOHSolver, with
    the capacities from PyBaMM's own symbolic expressions."""
    capacities = {"Q_n": float(values.evaluate(PARAM.n.Q_init)), "Q_p": float(values.evaluate(PARAM.p.Q_init)),
                  "Q_Li": float(values.evaluate(PARAM.Q_Li_particles_init))}
    solution = pybamm.lithium_ion.ElectrodeSOHSolver(values, param=PARAM).solve(capacities)
    window = [float(solution[name]) for name in ("x_0", "x_100", "y_100", "y_0")]
    return window, (window[1] - window[0]) * capacities["Q_n"]


def assert_matches_pybamm(cell: CellSpec, values: pybamm.ParameterValues) -> None:
    balance = electrode_balance(cell, values)
    window, capacity = pybamm_balance(values)
    assert [balance.x_0, balance.x_100, balance.y_100, balance.y_0] == pytest.approx(window, abs=1e-6, rel=0)
    assert balance.capacity_Ah == pytest.approx(capacity, rel=1e-6)


@pytest.mark.parametrize("parameter_set", ["OKane2022", "Chen2020", "Prada2013"])
@pytest.mark.parametrize("design", DESIGNS, ids=lambda design: ",".join(design) or "base")
def test_balance_equals_pybamm_esoh(parameter_set, design):
    cell = CellSpec(parameter_set=parameter_set, design=design)
    assert_matches_pybamm(cell, cell_parameter_values(cell))


def test_a_lower_top_voltage_is_a_new_structure_with_less_capacity():
    cell = CellSpec()
    lower = cell.with_updates(overrides={"Open-circuit voltage at 100% SOC [V]": 4.1})
    lower_values = cell_parameter_values(lower)
    assert_matches_pybamm(lower, lower_values)
    assert electrode_balance(lower, lower_values).capacity_Ah < 0.95 * electrode_balance(
        cell, cell_parameter_values(cell)).capacity_Ah


def test_an_ambient_temperature_leaves_the_window_at_the_reference_temperature():
    # PyBaMM's SOH window ignores the OCPs' entropic change: the SOC range is not temperature-dependent
    cold, warm = CellSpec(ambient_temperature_K=263.15), CellSpec(ambient_temperature_K=318.15)
    assert_matches_pybamm(cold, cell_parameter_values(cold))
    assert electrode_balance(cold, cell_parameter_values(cold)) == electrode_balance(warm, cell_parameter_values(warm))


def test_a_concentration_given_as_a_function_gives_the_same_balance():
    cell = CellSpec()
    values = cell_parameter_values(cell)
    balance = electrode_balance(cell, values)
    uniform = values["Initial concentration in negative electrode [mol.m-3]"]
    values.update({"Initial concentration in negative electrode [mol.m-3]": lambda r, x: uniform + 0 * x})
    assert dataclasses.astuple(electrode_balance(cell, values)) == pytest.approx(dataclasses.astuple(balance),
                                                                           rel=1e-12)


def test_more_lithium_than_both_electrodes_hold_raises_pybamm_error():
    cell = CellSpec(overrides={"Initial concentration in negative electrode [mol.m-3]": 40000.0,
                               "Initial concentration in positive electrode [mol.m-3]": 70000.0})
    with pytest.raises(ValueError, match=r"Q_Li=16.7\d+ Ah is outside the range of possible values"):
        electrode_balance(cell, cell_parameter_values(cell))


def test_a_warm_call_takes_well_under_the_pybamm_solve():
    cell = CellSpec(design={"negative_thickness_m": 80e-6})
    values = cell_parameter_values(cell)
    electrode_balance(cell, values)  # builds the structure's OCV function
    durations = []
    for _ in range(20):
        started = time.perf_counter()
        electrode_balance(cell, values)
        durations.append(time.perf_counter() - started)
    # ~0.5 ms on a loaded 2-core machine; PyBaMM's solver took 15-35 ms
    assert statistics.median(durations) < 10e-3
