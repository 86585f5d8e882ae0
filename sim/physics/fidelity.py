"""Fidelity presets: which PyBaMM model and which option bundles.

A :class:`Fidelity` is a model class (``spm``, ``spme``, ``dfn``) plus option bundles
(lumped thermal, SEI growth, lithium plating, loss of active material, hysteresis OCP,
contact resistance). :func:`build_model` makes the PyBaMM model; :func:`complete_parameters`
supplies the parameters an option needs when the chosen parameter set lacks them.

Where supplied values come from (documented, so a user can judge them):
- SEI, lithium plating, loss of active material and mechanics parameters are taken from
  PyBaMM's ``OKane2022`` set (O'Kane et al., PCCP 24 (2022) 7909; LG M50 NMC811/graphite-SiOx,
  the same cell as Chen2020).
- Hysteresis OCP branches are the set's own OCP shifted by +/- half the configured width
  (tens of mV, the order of the lithiation/delithiation gap measured on graphite and LFP);
  the decay rate is dimensionless (PyBaMM >= 25.10 definition) and the default makes a branch
  switch complete within a few per cent of stoichiometry swing. The half width is the parameter
  "<Electrode> electrode OCP hysteresis half-width [V]", so a plant's variability can spread it.
"""

from __future__ import annotations

import functools
import logging
import warnings
from typing import Literal

import pybamm
from pydantic import Field, model_validator

from sim.cells import scaled_parameter
from sim.config import StrictModel
from sim.errors import ConfigError
from sim.physics.temperature import ExtraArrhenius, add_extra_arrhenius

log = logging.getLogger(__name__)

MODEL_CLASSES = {
    "spm": pybamm.lithium_ion.SPM,
    "spme": pybamm.lithium_ion.SPMe,
    "dfn": pybamm.lithium_ion.DFN,
}
DONOR_PARAMETER_SET = "OKane2022"


class Hysteresis(StrictModel):
    """Open-circuit potential hysteresis in one electrode.

    model: PyBaMM's "one-state hysteresis" (a relaxing state, slow and path dependent)
        or "current sigmoid" (switches branch with the sign of the current).
    electrode: where the hysteresis lives (graphite: negative; LFP: positive).
    width_V: gap between the lithiation and delithiation OCP branches [V].
    decay_rate: dimensionless rate at which the state approaches a branch.
    """

    model: Literal["one-state hysteresis", "current sigmoid"] = "one-state hysteresis"
    electrode: Literal["negative", "positive"] = "negative"
    width_V: float = Field(0.02, gt=0.0, le=0.2)
    decay_rate: float = Field(50.0, gt=0.0, le=1e4)


class Fidelity(StrictModel):
    """A PyBaMM model class and the option bundles switched on.

    ageing_acceleration: factor on the degradation rate constants (AGEING_RATE_PARAMETERS).
    plating_acceleration: factor on the plating rate constant instead (null: ageing_acceleration).
    extra_arrhenius: extra temperature dependence of transport and kinetics
        (:mod:`sim.physics.temperature`), for plants that must span real cells.
    """

    model: Literal["spm", "spme", "dfn"] = "spm"
    thermal: Literal["isothermal", "lumped"] = "isothermal"
    sei: Literal["reaction limited", "solvent-diffusion limited", "electron-migration limited",
                 "interstitial-diffusion limited", "ec reaction limited"] | None = None
    plating: Literal["reversible", "irreversible", "partially reversible"] | None = None
    lam: Literal["reaction-driven", "stress-driven", "stress and reaction-driven"] | None = None
    hysteresis: Hysteresis | None = None
    contact_resistance: bool = False
    ageing_acceleration: float = Field(1.0, ge=1.0, le=1e4)
    plating_acceleration: float | None = Field(None, ge=1.0, le=1e4)
    extra_arrhenius: ExtraArrhenius | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_preset_name(cls, data):
        # "spm" in YAML is shorthand for {"model": "spm"}
        return {"model": data} if isinstance(data, str) else data

    def pybamm_options(self) -> dict:
        """The PyBaMM model options dict for this fidelity."""
        options: dict = {"thermal": self.thermal}
        if self.sei:
            options["SEI"] = self.sei
        if self.plating:
            options["lithium plating"] = self.plating
        if self.lam:
            options["loss of active material"] = self.lam
            if "stress" in self.lam:
                options["particle mechanics"] = "swelling only"
        if self.hysteresis:
            branch = (self.hysteresis.model, "single")
            options["open-circuit potential"] = branch if self.hysteresis.electrode == "negative" else branch[::-1]
        if self.contact_resistance:
            options["contact resistance"] = "true"
        return options

    @property
    def label(self) -> str:
        """Short human-readable name, e.g. 'spm+lumped+sei'."""
        parts = [self.model]
        if self.thermal != "isothermal":
            parts.append(self.thermal)
        parts += [name for name, on in [("sei", self.sei), ("plating", self.plating), ("lam", self.lam),
                                        ("hysteresis", self.hysteresis),
                                        ("contact", self.contact_resistance),
                                        ("arrhenius", self.extra_arrhenius)] if on]
        return "+".join(parts)


def build_model(fidelity: Fidelity) -> pybamm.BaseModel:
    """A new (unprocessed) PyBaMM model for ``fidelity``."""
    try:
        with warnings.catch_warnings():
            # PyBaMM announces its v25.10 change of the hysteresis decay-rate definition on every
            # build; the values supplied here already follow the new definition.
            warnings.filterwarnings("ignore", message="The definition of the hysteresis decay rate")
            return MODEL_CLASSES[fidelity.model](fidelity.pybamm_options())
    except pybamm.OptionError as error:
        raise ConfigError(f"fidelity: PyBaMM rejects options {fidelity.pybamm_options()}: {error}") from None


@functools.lru_cache(maxsize=32)
def required_parameters(fidelity: Fidelity) -> frozenset[str]:
    """Names of every parameter the model for ``fidelity`` reads."""
    return frozenset(build_model(fidelity).get_parameter_info().keys())


def complete_parameters(values: pybamm.ParameterValues, fidelity: Fidelity) -> pybamm.ParameterValues:
    """A copy of ``values`` with the parameters ``fidelity`` needs but the set lacks supplied.

    Hysteresis branches are derived from the set's own OCP; everything else comes from the
    OKane2022 donor set. Raises ConfigError naming what is still missing.
    """
    values = values.copy()
    if fidelity.hysteresis:
        values.update(_hysteresis_parameters(values, fidelity.hysteresis), check_already_exists=False)
    if fidelity.extra_arrhenius:
        add_extra_arrhenius(values, fidelity.extra_arrhenius)
    _supply_from_donor(values, fidelity)
    _accelerate_ageing(values, fidelity.ageing_acceleration, fidelity.plating_acceleration)
    return values


def _supply_from_donor(values: pybamm.ParameterValues, fidelity: Fidelity) -> None:
    """Fill, in place, parameters the model needs from the donor set; ConfigError if any remain."""
    missing = sorted(required_parameters(fidelity) - set(values.keys()))
    donor = _donor_values()
    supplied = {name: donor[name] for name in missing if name in donor.keys()}
    if supplied:
        log.info("supplying %d parameter(s) for %s from %s: %s", len(supplied), fidelity.label,
                 DONOR_PARAMETER_SET, ", ".join(supplied))
        values.update(supplied, check_already_exists=False)
    still_missing = [name for name in missing if name not in supplied]
    if still_missing:
        raise ConfigError(f"fidelity '{fidelity.label}': the parameter set lacks {still_missing} "
                          "and no documented default exists; give them in cell.overrides")


# Rate parameters of the degradation submodels scaled by Fidelity.ageing_acceleration (the
# plating rate by Fidelity.plating_acceleration when that is given).
PLATING_RATE = "Lithium plating kinetic rate constant [m.s-1]"
AGEING_RATE_PARAMETERS = (
    "SEI kinetic rate constant [m.s-1]",
    "SEI solvent diffusivity [m2.s-1]",
    "SEI lithium interstitial diffusivity [m2.s-1]",
    "SEI electron conductivity [S.m-1]",
    "Lithium plating kinetic rate constant [m.s-1]",
    "Negative electrode LAM constant proportional term [s-1]",
    "Positive electrode LAM constant proportional term [s-1]",
)


def _accelerate_ageing(values: pybamm.ParameterValues, factor: float, plating_factor: float | None = None) -> None:
    """Multiply the degradation rate parameters by ``factor`` in place, so that synthetic
    corpora show hundreds of cycles' worth of ageing in tens (diffusion-limited SEI then grows
    sqrt(factor) times faster); the plating rate constant by ``plating_factor`` when given.

    Why plating has its own factor: plating is not a slow drift to be compressed in time. In
    OKane2022's irreversible model it is an exponential of the overpotential with a nonzero
    rate even above 0 V, so x100 plates 2.5 Ah in three fast-charge cycles whatever the rate
    (measured on the design plant); x1 plates 0.06-0.16 Ah."""
    factors = {name: factor for name in AGEING_RATE_PARAMETERS}
    if plating_factor is not None:
        factors[PLATING_RATE] = plating_factor
    for name, scale in factors.items():
        if scale != 1.0 and name in values.keys():
            values[name] = scaled_parameter(values[name], scale)


@functools.lru_cache(maxsize=1)
def _donor_values() -> pybamm.ParameterValues:
    return pybamm.ParameterValues(DONOR_PARAMETER_SET)


HYSTERESIS_HALF_WIDTH = "{domain} electrode OCP hysteresis half-width [V]"


def _hysteresis_parameters(values: pybamm.ParameterValues, hysteresis: Hysteresis) -> dict:
    """Lithiation/delithiation OCP branches and decay rates for one electrode."""
    domain = hysteresis.electrode.capitalize()
    ocp = values[f"{domain} electrode OCP [V]"]
    half_width_name = HYSTERESIS_HALF_WIDTH.format(domain=domain)
    decay = hysteresis.decay_rate

    # lithiation runs at a lower electrode potential than delithiation, for both electrodes;
    # the half width is a parameter of its own, so reference.variability can spread it
    def lithiation(sto):
        return _evaluate_ocp(ocp, sto) - pybamm.Parameter(half_width_name)

    def delithiation(sto):
        return _evaluate_ocp(ocp, sto) + pybamm.Parameter(half_width_name)

    return {
        half_width_name: hysteresis.width_V / 2,
        f"{domain} electrode lithiation OCP [V]": lithiation,
        f"{domain} electrode delithiation OCP [V]": delithiation,
        f"{domain} particle lithiation hysteresis decay rate": decay,
        f"{domain} particle delithiation hysteresis decay rate": decay,
        f"{domain} particle hysteresis decay rate": decay,
        f"{domain} particle hysteresis switching factor": 1.0,
        f"Initial hysteresis state in {hysteresis.electrode} electrode": 0.0,
    }


def _evaluate_ocp(ocp, sto):
    """An OCP given as a function of stoichiometry or as (name, data) interpolation table."""
    if callable(ocp):
        return ocp(sto)
    if isinstance(ocp, tuple):
        name, (x, y) = ocp
        return pybamm.Interpolant(x[0] if isinstance(x, tuple) else x, y, sto, name=name)
    return pybamm.Scalar(ocp) + 0 * sto
