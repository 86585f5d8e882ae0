"""Cell specifications: a PyBaMM parameter set (or BPX file), overrides and design variables.

A :class:`CellSpec` says *which cell*; :func:`cell_parameter_values` turns it into a fully
numeric ``pybamm.ParameterValues``. Design variables have short, unit-suffixed names that map
onto PyBaMM parameter names (see :data:`DESIGN_VARIABLES`); the geometric ones change the mesh
and force a model rebuild, the others can be solver inputs.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pybamm
from pydantic import Field, field_validator, model_validator

from sim.config import StrictModel
from sim.errors import ConfigError, InfeasibleDesign

log = logging.getLogger(__name__)

# short name -> (PyBaMM parameter name, lower bound, upper bound, geometric?)
DESIGN_VARIABLES: dict[str, tuple[str, float, float, bool]] = {
    "negative_thickness_m": ("Negative electrode thickness [m]", 10e-6, 300e-6, True),
    "positive_thickness_m": ("Positive electrode thickness [m]", 10e-6, 300e-6, True),
    "separator_thickness_m": ("Separator thickness [m]", 5e-6, 100e-6, True),
    "negative_particle_radius_m": ("Negative particle radius [m]", 0.1e-6, 50e-6, True),
    "positive_particle_radius_m": ("Positive particle radius [m]", 0.01e-6, 50e-6, True),
    "negative_porosity": ("Negative electrode porosity", 0.1, 0.7, False),
    "positive_porosity": ("Positive electrode porosity", 0.1, 0.7, False),
    "negative_active_fraction": (
        "Negative electrode active material volume fraction", 0.3, 0.9, False),
    "positive_active_fraction": (
        "Positive electrode active material volume fraction", 0.3, 0.9, False),
    "electrode_height_m": ("Electrode height [m]", 1e-3, 2.0, False),
    "electrode_width_m": ("Electrode width [m]", 1e-3, 10.0, False),
}

GEOMETRIC_PARAMETERS = frozenset(name for name, *_, geo in DESIGN_VARIABLES.values() if geo)


def available_parameter_sets() -> list[str]:
    """Names of the parameter sets PyBaMM ships."""
    return sorted(pybamm.parameter_sets.keys())


class CellSpec(StrictModel):
    """Which cell to simulate.

    parameter_set: a PyBaMM parameter set name (e.g. "OKane2022", "Chen2020", "Prada2013"),
        ignored when ``bpx`` is given.
    bpx: path to a BPX JSON parameterisation.
    overrides: PyBaMM parameter name -> numeric value, applied last.
    design: design variables by short name (see DESIGN_VARIABLES), SI units.
    ambient_temperature_K: ambient (and initial cell) temperature [K].
    initial_soc: state of charge at the start of the protocol, 0..1.
    """

    parameter_set: str = "OKane2022"
    bpx: Path | None = None
    overrides: dict[str, float] = Field(default_factory=dict)
    scales: dict[str, float] = Field(default_factory=dict)
    design: dict[str, float] = Field(default_factory=dict)
    ambient_temperature_K: float = Field(298.15, ge=223.15, le=353.15)
    initial_soc: float = Field(1.0, ge=0.0, le=1.0)

    @field_validator("parameter_set")
    @classmethod
    def _known_set(cls, name: str) -> str:
        if name not in pybamm.parameter_sets.keys():
            raise ValueError(f"unknown parameter set; allowed: {', '.join(available_parameter_sets())}")
        return name

    @field_validator("scales")
    @classmethod
    def _positive_scales(cls, scales: dict[str, float]) -> dict[str, float]:
        for name, factor in scales.items():
            if not 0.0 < factor <= 100.0:
                raise ValueError(f"scale of '{name}' = {factor} outside (0, 100]")
        return scales

    @field_validator("design")
    @classmethod
    def _known_design(cls, design: dict[str, float]) -> dict[str, float]:
        for name, value in design.items():
            if name not in DESIGN_VARIABLES:
                raise ValueError(f"unknown design variable '{name}'; allowed: {', '.join(DESIGN_VARIABLES)}")
            _, low, high, _ = DESIGN_VARIABLES[name]
            if not low <= value <= high:
                raise ValueError(f"design variable '{name}' = {value} outside [{low}, {high}]")
        return design

    @model_validator(mode="after")
    def _bpx_exists(self) -> "CellSpec":
        if self.bpx is not None and not Path(self.bpx).is_file():
            raise ValueError(f"bpx file not found: {self.bpx}")
        return self

    def with_updates(self, **changes: Any) -> "CellSpec":
        """A copy with some fields replaced (re-validated)."""
        return CellSpec.model_validate({**self.model_dump(), **changes})

    def named_parameters(self) -> dict[str, float]:
        """Design variables and overrides as PyBaMM parameter name -> value."""
        values = {DESIGN_VARIABLES[name][0]: value for name, value in self.design.items()}
        values.update(self.overrides)
        return values


@functools.lru_cache(maxsize=16)
def _base_parameter_values(parameter_set: str, bpx: str | None) -> pybamm.ParameterValues:
    if bpx is not None:
        return pybamm.ParameterValues.create_from_bpx(bpx)
    return pybamm.ParameterValues(parameter_set)


def base_parameter_values(cell: CellSpec) -> pybamm.ParameterValues:
    """A fresh copy of the cell's parameter set (or BPX file) without overrides."""
    return _base_parameter_values(cell.parameter_set, str(cell.bpx) if cell.bpx else None).copy()


def cell_parameter_values(cell: CellSpec, base: pybamm.ParameterValues | None = None, *,
                          apply_scales: bool = True) -> pybamm.ParameterValues:
    """Parameter values for ``cell``: base set + design + overrides + temperature (+ scales).

    ``base`` lets the caller supply a set already completed with option parameters.
    Unknown parameter names raise ConfigError.
    """
    values = (base or base_parameter_values(cell)).copy()
    named = resolved_parameters(cell, values)
    for field, names in (("overrides", named), ("scales", cell.scales)):
        unknown = [name for name in names if name not in values.keys()]
        if unknown:
            raise ConfigError(f"cell.{field}: unknown PyBaMM parameter(s) {unknown} for parameter "
                              f"set '{cell.parameter_set}'")
    values.update(named)
    _check_volume_fractions(values)
    if apply_scales:
        values.update({name: scaled_parameter(values[name], factor) for name, factor in cell.scales.items()})
    values.update({"Ambient temperature [K]": cell.ambient_temperature_K,
                   "Initial temperature [K]": cell.ambient_temperature_K})
    return values


def resolved_parameters(cell: CellSpec, values: pybamm.ParameterValues) -> dict[str, float]:
    """The PyBaMM parameters ``cell`` sets, by name: design variables, overrides, and the
    active fractions that follow a porosity change.

    When a design changes an electrode's porosity but not its active fraction, the solid
    composition is kept: the active fraction scales with the solid volume (1 - porosity), as
    when an electrode is calendered to another density.
    """
    named = cell.named_parameters()
    for domain in ("Negative", "Positive"):
        porosity_name = f"{domain} electrode porosity"
        active_name = f"{domain} electrode active material volume fraction"
        if porosity_name in named and active_name not in named:
            solid_share = values[active_name] / (1.0 - values[porosity_name])
            named[active_name] = (1.0 - named[porosity_name]) * solid_share
    return named


def _check_volume_fractions(values: pybamm.ParameterValues) -> None:
    for domain in ("Negative", "Positive"):
        porosity = values[f"{domain} electrode porosity"]
        active = values[f"{domain} electrode active material volume fraction"]
        if isinstance(porosity, float | int) and isinstance(active, float | int) and porosity + active > 1.0 + 1e-9:
            raise InfeasibleDesign(f"{domain.lower()} electrode porosity {porosity:.3g} + active material "
                                   f"fraction {active:.3g} > 1")


def scaled_parameter(value, factor):
    """``value`` (a number or a function of state) multiplied by ``factor`` (a number or a
    PyBaMM symbol such as an InputParameter)."""
    if callable(value):
        return lambda *args: value(*args) * factor
    return value * factor


@dataclass(frozen=True)
class ElectrodeBalance:
    """Stoichiometry window of each electrode between the voltage cut-offs and the usable
    capacity it implies; this follows design changes, unlike "Nominal cell capacity [A.h]"."""

    x_0: float      # negative electrode stoichiometry at 0 % SOC
    x_100: float    # ... at 100 % SOC
    y_100: float    # positive electrode stoichiometry at 100 % SOC
    y_0: float      # ... at 0 % SOC
    capacity_Ah: float

    def stoichiometries(self, soc: float) -> tuple[float, float]:
        """(negative, positive) stoichiometry at state of charge ``soc``."""
        return (self.x_0 + soc * (self.x_100 - self.x_0), self.y_0 - soc * (self.y_0 - self.y_100))


_ESOH_SOLVERS: dict[str, pybamm.lithium_ion.ElectrodeSOHSolver] = {}


def _esoh_solver(structure: str, values: pybamm.ParameterValues) -> pybamm.lithium_ion.ElectrodeSOHSolver:
    if structure not in _ESOH_SOLVERS:
        if len(_ESOH_SOLVERS) >= 32:
            _ESOH_SOLVERS.pop(next(iter(_ESOH_SOLVERS)))
        _ESOH_SOLVERS[structure] = pybamm.lithium_ion.ElectrodeSOHSolver(
            values, param=pybamm.LithiumIonParameters())
    return _ESOH_SOLVERS[structure]


def electrode_balance(cell: CellSpec, values: pybamm.ParameterValues) -> ElectrodeBalance:
    """Electrode balance of ``cell`` (numeric ``values``) from PyBaMM's electrode SOH model.

    The SOH model depends only on the OCPs and cut-offs, so one built solver serves every
    design of a parameter set; the electrode and lithium capacities go in as its inputs.
    """
    param = pybamm.LithiumIonParameters()
    # what the SOH model reads: OCPs, cut-offs, temperature; everything else is a capacity
    relevant = {name: value for name, value in cell.overrides.items()
                if "OCP" in name or "cut-off" in name or "temperature" in name.lower()}
    structure = repr((cell.parameter_set, cell.bpx, cell.ambient_temperature_K, sorted(relevant.items())))
    solver = _esoh_solver(structure, values)
    capacities = {"Q_n": values.evaluate(param.n.Q_init), "Q_p": values.evaluate(param.p.Q_init),
                  "Q_Li": values.evaluate(param.Q_Li_particles_init)}
    solution = solver.solve(capacities)
    x_0, x_100, y_100, y_0 = (float(solution[name]) for name in ("x_0", "x_100", "y_100", "y_0"))
    return ElectrodeBalance(x_0, x_100, y_100, y_0, float(abs(x_100 - x_0) * capacities["Q_n"]))
