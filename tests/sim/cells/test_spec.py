"""CellSpec validation, parameter values of a design, and the electrode balance."""

from __future__ import annotations

import math

import numpy as np
import pybamm
import pytest
from pydantic import ValidationError

from sim.cells.spec import (DESIGN_VARIABLES, GEOMETRIC_PARAMETERS, CellSpec, base_parameter_values,
                            cell_parameter_values, electrode_balance, resolved_parameters, scaled_parameter)
from sim.errors import ConfigError, InfeasibleDesign


def test_unknown_parameter_set_names_the_field_and_the_allowed_sets():
    with pytest.raises(ValidationError) as error:
        CellSpec(parameter_set="Nonexistent2099")
    message = str(error.value)
    assert "parameter_set" in message and "unknown parameter set" in message
    assert "OKane2022" in message and "Chen2020" in message


def test_unknown_design_variable_names_itself_and_the_allowed_ones():
    with pytest.raises(ValidationError) as error:
        CellSpec(design={"electrode_colour": 1.0})
    message = str(error.value)
    assert "design" in message and "'electrode_colour'" in message
    assert all(name in message for name in DESIGN_VARIABLES)


def test_design_variable_outside_its_bounds_names_the_value_and_the_bounds():
    with pytest.raises(ValidationError, match=r"'negative_thickness_m' = 5.0 outside \[1e-05, 0.0003\]"):
        CellSpec(design={"negative_thickness_m": 5.0})


@pytest.mark.parametrize("fields, name", [({"scales": {"Electrolyte conductivity [S.m-1]": 0.0}}, "scale"),
                                          ({"initial_soc": 1.2}, "initial_soc"),
                                          ({"ambient_temperature_K": 400.0}, "ambient_temperature_K"),
                                          ({"colour": "red"}, "colour")])
def test_out_of_range_fields_and_unknown_keys_name_the_field(fields, name):
    with pytest.raises(ValidationError, match=name):
        CellSpec(**fields)


def test_missing_bpx_file_is_named(tmp_path):
    with pytest.raises(ValidationError, match="bpx file not found"):
        CellSpec(bpx=tmp_path / "absent.json")


def test_with_updates_revalidates_and_leaves_the_original_alone():
    cell = CellSpec(initial_soc=0.8)
    assert cell.with_updates(initial_soc=0.5).initial_soc == 0.5 and cell.initial_soc == 0.8
    with pytest.raises(ValidationError, match="initial_soc"):
        cell.with_updates(initial_soc=2.0)


def test_geometric_design_variables_are_the_thicknesses_and_radii():
    assert GEOMETRIC_PARAMETERS == {DESIGN_VARIABLES[name][0] for name in DESIGN_VARIABLES
                                    if name.endswith("thickness_m") or name.endswith("radius_m")}


def test_design_overrides_and_temperature_land_under_pybamm_names():
    cell = CellSpec(design={"negative_thickness_m": 60e-6},
                    overrides={"Negative electrode conductivity [S.m-1]": 50.0}, ambient_temperature_K=310.0)
    values = cell_parameter_values(cell)
    assert values["Negative electrode thickness [m]"] == 60e-6
    assert values["Negative electrode conductivity [S.m-1]"] == 50.0
    assert values["Ambient temperature [K]"] == values["Initial temperature [K]"] == 310.0
    assert base_parameter_values(cell)["Ambient temperature [K]"] != 310.0  # the base copy is untouched


def test_unknown_override_raises_config_error_naming_field_and_set():
    with pytest.raises(ConfigError, match=r"cell.overrides: unknown PyBaMM parameter\(s\) \['Flux capacitance \[F\]'\]"
                                          r" for parameter set 'OKane2022'"):
        cell_parameter_values(CellSpec(overrides={"Flux capacitance [F]": 1.0}))


def test_scales_multiply_a_number_and_a_function_and_can_be_left_out():
    name = "Negative particle diffusivity [m2.s-1]"
    number = "Negative electrode thickness [m]"
    cell = CellSpec(scales={name: 2.0, number: 1.5})
    base = base_parameter_values(cell)
    scaled = cell_parameter_values(cell)
    assert scaled[number] == pytest.approx(1.5 * base[number])
    args = (pybamm.Scalar(0.5), pybamm.Scalar(298.15))
    assert scaled[name](*args).evaluate() == pytest.approx(2.0 * base[name](*args).evaluate())
    assert cell_parameter_values(cell, apply_scales=False)[number] == base[number]
    assert scaled_parameter(3.0, 2.0) == 6.0


def test_a_porosity_change_keeps_the_solid_composition():
    cell = CellSpec(design={"negative_porosity": 0.3})
    base = base_parameter_values(cell)  # OKane2022: porosity 0.25, active fraction 0.75
    named = resolved_parameters(cell, base)
    solid_share = base["Negative electrode active material volume fraction"] / (1 - base["Negative electrode porosity"])
    assert named["Negative electrode active material volume fraction"] == pytest.approx(0.7 * solid_share)
    assert "Positive electrode active material volume fraction" not in named  # untouched electrode


def test_porosity_plus_active_fraction_above_one_is_infeasible():
    cell = CellSpec(design={"negative_porosity": 0.5, "negative_active_fraction": 0.6})
    with pytest.raises(InfeasibleDesign, match="negative electrode porosity 0.5 \\+ active material fraction 0.6 > 1"):
        cell_parameter_values(cell)


def test_fresh_balance_is_the_nominal_capacity_and_the_windows_are_ordered():
    cell = CellSpec()
    values = cell_parameter_values(cell)
    balance = electrode_balance(cell, values)
    assert balance.capacity_Ah == pytest.approx(values["Nominal cell capacity [A.h]"], rel=0.03)
    assert 0 <= balance.x_0 < balance.x_100 <= 1 and 0 <= balance.y_100 < balance.y_0 <= 1
    assert balance.stoichiometries(1.0) == pytest.approx((balance.x_100, balance.y_100))
    assert balance.stoichiometries(0.0) == pytest.approx((balance.x_0, balance.y_0))


def test_thicker_electrodes_give_proportionally_more_capacity():
    cell = CellSpec()
    values = cell_parameter_values(cell)
    thicker = cell.with_updates(design={
        "negative_thickness_m": 1.2 * values["Negative electrode thickness [m]"],
        "positive_thickness_m": 1.2 * values["Positive electrode thickness [m]"]})
    fresh = electrode_balance(cell, values).capacity_Ah
    grown = electrode_balance(thicker, cell_parameter_values(thicker)).capacity_Ah
    # both electrodes and the lithium inventory scale together: the same window, 20 % more capacity
    assert grown / fresh == pytest.approx(1.2, rel=1e-3)


def test_a_thinner_negative_electrode_limits_the_capacity():
    cell = CellSpec()
    values = cell_parameter_values(cell)
    thinner = cell.with_updates(design={"negative_thickness_m": 0.6 * values["Negative electrode thickness [m]"]})
    assert electrode_balance(thinner, cell_parameter_values(thinner)).capacity_Ah < \
        0.9 * electrode_balance(cell, values).capacity_Ah


def test_an_activation_energy_makes_the_contact_resistance_follow_the_ambient_temperature():
    from sim.physics import Fidelity, prepare_cell, simulate
    from sim.protocols import CurrentTrace
    fidelity = Fidelity(model="spm", contact_resistance=True)
    cell = CellSpec(parameter_set="Prada2013", overrides={"Contact resistance [Ohm]": 0.01},
                    contact_resistance_activation_J_mol=50_000.0)
    cold = cell.with_updates(ambient_temperature_K=258.15)
    factor = math.exp(50_000.0 / 8.314462618 * (1 / 258.15 - 1 / 298.15))
    assert prepare_cell(cell, fidelity).inputs["Contact resistance [Ohm]"] == pytest.approx(0.01)
    assert prepare_cell(cold, fidelity).inputs["Contact resistance [Ohm]"] == pytest.approx(0.01 * factor)
    # the same cold cell without the activation energy: its voltage under 2 A is higher by 2 A x the extra resistance
    trace = CurrentTrace(np.arange(0.0, 61.0, 10.0), np.full(7, 2.0))
    with_energy = simulate(cold, trace, fidelity, voltage_cutoffs=False)["Voltage [V]"]
    without = simulate(cold.with_updates(contact_resistance_activation_J_mol=0.0), trace, fidelity,
                       voltage_cutoffs=False)["Voltage [V]"]
    np.testing.assert_allclose(without - with_energy, 2.0 * 0.01 * (factor - 1.0), rtol=1e-3)
