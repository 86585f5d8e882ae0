"""Fidelity presets: PyBaMM options, labels, and the parameters supplied when a set lacks them."""

from __future__ import annotations

import pybamm
import pytest
from pydantic import ValidationError

from sim.errors import ConfigError
from sim.physics import fidelity as fidelity_module
from sim.physics.fidelity import (AGEING_RATE_PARAMETERS, DONOR_PARAMETER_SET, Fidelity, Hysteresis, build_model,
                                  complete_parameters, required_parameters)


def test_a_bare_model_name_is_a_preset_and_the_label_lists_the_bundles():
    assert Fidelity.model_validate("dfn") == Fidelity(model="dfn")
    full = Fidelity(model="spme", thermal="lumped", sei="reaction limited", plating="irreversible",
                    lam="reaction-driven", hysteresis=Hysteresis(), contact_resistance=True)
    assert full.label == "spme+lumped+sei+plating+lam+hysteresis+contact"
    assert Fidelity().label == "spm"


def test_unknown_model_or_option_names_the_field():
    with pytest.raises(ValidationError, match="model"):
        Fidelity(model="p2d")
    with pytest.raises(ValidationError, match="sei"):
        Fidelity(sei="fast")
    with pytest.raises(ValidationError, match="width_V"):
        Hysteresis(width_V=0.5)


def test_pybamm_options_follow_the_bundles():
    options = Fidelity(sei="solvent-diffusion limited", lam="stress-driven", contact_resistance=True).pybamm_options()
    assert options == {"thermal": "isothermal", "SEI": "solvent-diffusion limited",
                       "loss of active material": "stress-driven", "particle mechanics": "swelling only",
                       "contact resistance": "true"}
    negative = Fidelity(hysteresis=Hysteresis(model="current sigmoid")).pybamm_options()
    positive = Fidelity(hysteresis=Hysteresis(electrode="positive")).pybamm_options()
    assert negative["open-circuit potential"] == ("current sigmoid", "single")
    assert positive["open-circuit potential"] == ("single", "one-state hysteresis")


def test_build_model_makes_the_class_with_the_options():
    model = build_model(Fidelity(model="spme", thermal="lumped"))
    assert isinstance(model, pybamm.lithium_ion.SPMe) and model.options["thermal"] == "lumped"


def test_an_option_pybamm_rejects_is_a_config_error_naming_the_options(monkeypatch):
    # every Literal the Fidelity accepts is an option PyBaMM knows, so reach the rejection path
    # through an option dict PyBaMM refuses
    monkeypatch.setattr(Fidelity, "pybamm_options", lambda self: {"SEI": "teleportation"})
    with pytest.raises(ConfigError, match="fidelity: PyBaMM rejects options .*teleportation"):
        build_model(Fidelity())


def test_missing_sei_parameters_come_from_okane2022():
    assert DONOR_PARAMETER_SET == "OKane2022"
    prada = pybamm.ParameterValues("Prada2013")
    sei = Fidelity(sei="reaction limited")
    assert "Initial SEI thickness [m]" not in prada.keys()
    assert "Initial SEI thickness [m]" in required_parameters(sei)
    completed = complete_parameters(prada, sei)
    assert completed["Initial SEI thickness [m]"] == pybamm.ParameterValues("OKane2022")["Initial SEI thickness [m]"]
    assert required_parameters(sei) <= set(completed.keys())
    assert "Initial SEI thickness [m]" not in prada.keys()  # the input is left alone


def test_a_parameter_neither_set_nor_donor_has_is_a_config_error(monkeypatch):
    # a donor without SEI parameters: what the model still lacks must be named
    monkeypatch.setattr(fidelity_module, "_donor_values", lambda: pybamm.ParameterValues("Prada2013"))
    with pytest.raises(ConfigError, match=r"fidelity 'spm\+sei': the parameter set lacks \[.*'Initial SEI "
                                          r"thickness \[m\]'.*give them in cell.overrides"):
        complete_parameters(pybamm.ParameterValues("Prada2013"), Fidelity(sei="reaction limited"))


def test_ageing_acceleration_scales_only_the_degradation_rates():
    okane = pybamm.ParameterValues("OKane2022")
    accelerated = complete_parameters(okane, Fidelity(sei="solvent-diffusion limited", ageing_acceleration=10.0))
    for name in ("SEI kinetic rate constant [m.s-1]", "SEI solvent diffusivity [m2.s-1]"):
        assert name in AGEING_RATE_PARAMETERS
        assert accelerated[name] == pytest.approx(10.0 * okane[name])
    assert accelerated["Initial SEI thickness [m]"] == okane["Initial SEI thickness [m]"]
    unchanged = complete_parameters(okane, Fidelity(sei="solvent-diffusion limited"))
    assert unchanged["SEI kinetic rate constant [m.s-1]"] == okane["SEI kinetic rate constant [m.s-1]"]


def test_plating_has_its_own_acceleration_when_given():
    okane, plating = pybamm.ParameterValues("OKane2022"), "Lithium plating kinetic rate constant [m.s-1]"
    both = complete_parameters(okane, Fidelity(sei="solvent-diffusion limited", plating="irreversible",
                                               ageing_acceleration=100.0))
    apart = complete_parameters(okane, Fidelity(sei="solvent-diffusion limited", plating="irreversible",
                                                ageing_acceleration=100.0, plating_acceleration=2.0))
    assert both[plating] == pytest.approx(100.0 * okane[plating])
    assert apart[plating] == pytest.approx(2.0 * okane[plating])
    assert apart["SEI solvent diffusivity [m2.s-1]"] == pytest.approx(100.0 * okane["SEI solvent diffusivity [m2.s-1]"])


def test_hysteresis_branches_are_the_ocp_shifted_by_half_the_width():
    chen = pybamm.ParameterValues("Chen2020")
    completed = complete_parameters(chen, Fidelity(hysteresis=Hysteresis(width_V=0.04, decay_rate=20.0)))
    sto = pybamm.Scalar(0.5)
    ocp = chen["Negative electrode OCP [V]"](sto).evaluate()
    def branch(name: str) -> float:  # the half width is a parameter: resolve it as a model would
        return completed.process_symbol(completed[name](sto)).evaluate()

    assert branch("Negative electrode lithiation OCP [V]") == pytest.approx(ocp - 0.02)
    assert branch("Negative electrode delithiation OCP [V]") == pytest.approx(ocp + 0.02)
    assert completed["Negative particle hysteresis decay rate"] == 20.0
    assert completed["Initial hysteresis state in negative electrode"] == 0.0
