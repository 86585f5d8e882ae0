"""Cell specifications: a PyBaMM parameter set (or BPX file), overrides and design variables.

A :class:`CellSpec` says *which cell*; :func:`cell_parameter_values` turns it into a fully
numeric ``pybamm.ParameterValues``. Design variables have short, unit-suffixed names that map
onto PyBaMM parameter names (see :data:`DESIGN_VARIABLES`); the geometric ones change the mesh
and force a model rebuild, the others can be solver inputs.
"""

from __future__ import annotations

import functools
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import casadi
import numpy as np
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

CONTACT_RESISTANCE = "Contact resistance [Ohm]"
GAS_CONSTANT = 8.314462618  # J/(mol K)
REFERENCE_K = 298.15  # where "Contact resistance [Ohm]" applies as given

GEOMETRIC_PARAMETERS = frozenset(name for name, *_, geo in DESIGN_VARIABLES.values() if geo)


def available_parameter_sets() -> list[str]:
    """Names of the parameter sets PyBaMM ships."""
    return sorted(pybamm.parameter_sets.keys())


# The model column an OCV correction is a function of (see OCVCorrection).
POSITIVE_SURFACE_STOICHIOMETRY = "X-averaged positive particle surface stoichiometry"


class OCVCorrection(StrictModel):
    """A measured cell's OCV minus the parameter set's, as a function of the positive electrode's
    stoichiometry: ``voltage_V`` [V] at the increasing ``stoichiometry`` values, linear between
    them and the end values beyond. The model's voltage gets it added at its X-averaged positive
    particle surface stoichiometry (:func:`sim.physics.summary.output_columns`): at rest that is
    a corrected OCV; under load the correction moves with the surface, as a corrected positive
    OCP would. Output only, so a cell with one runs current replays without voltage cut-offs
    (measured replays). A calibration fits it from a record's rests (``ocv_from_rests``).
    """

    stoichiometry: list[float] = Field(min_length=1)
    voltage_V: list[float] = Field(min_length=1)

    @model_validator(mode="after")
    def _table(self) -> "OCVCorrection":
        if len(self.stoichiometry) != len(self.voltage_V):
            raise ValueError(f"{len(self.stoichiometry)} stoichiometry and {len(self.voltage_V)} voltage_V values; "
                             "allowed: as many of each")
        x = np.asarray(self.stoichiometry)
        if not (np.all(np.diff(x) > 0) and x[0] >= 0.0 and x[-1] <= 1.0):
            raise ValueError("stoichiometry must increase strictly within [0, 1]")
        if not np.all(np.abs(self.voltage_V) <= 0.5):
            raise ValueError("voltage_V values must lie within +-0.5 V")
        return self

    def at(self, stoichiometry: np.ndarray) -> np.ndarray:
        """The correction [V] at ``stoichiometry`` (any shape)."""
        return np.interp(stoichiometry, self.stoichiometry, self.voltage_V)


class CellSpec(StrictModel):
    """Which cell to simulate.

    parameter_set: a PyBaMM parameter set name (e.g. "OKane2022", "Chen2020", "Prada2013"),
        ignored when ``bpx`` is given.
    bpx: path to a BPX JSON parameterisation.
    overrides: PyBaMM parameter name -> numeric value, applied last.
    design: design variables by short name (see DESIGN_VARIABLES), SI units.
    ambient_temperature_K: ambient (and initial cell) temperature [K].
    initial_soc: state of charge at the start of the protocol, 0..1.
    contact_resistance_activation_J_mol: the contact (series) resistance's activation energy
        [J/mol]: "Contact resistance [Ohm]" is its value at 25 degC, and the cell's is that times
        exp(E / R (1 / T - 1 / 298.15)) at its ambient temperature T. A measured cell's series
        resistance grows steeply in the cold; a calibration over several temperatures fits it
        (:func:`sim.measured.temperature_fit.fit_series_resistance`). Needs a fidelity with contact
        resistance. It follows the ambient, not the self-heating, temperature.
    ocv_correction: a measured OCV's departure from the parameter set's (:class:`OCVCorrection`).
    """

    parameter_set: str = "OKane2022"
    bpx: Path | None = None
    overrides: dict[str, float] = Field(default_factory=dict)
    scales: dict[str, float] = Field(default_factory=dict)
    design: dict[str, float] = Field(default_factory=dict)
    ambient_temperature_K: float = Field(298.15, ge=223.15, le=353.15)
    initial_soc: float = Field(1.0, ge=0.0, le=1.0)
    contact_resistance_activation_J_mol: float = Field(0.0, ge=0.0, le=2e5)
    ocv_correction: OCVCorrection | None = None

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
    """The PyBaMM parameters ``cell`` sets, by name: design variables, overrides, the active
    fractions that follow a porosity change, and the contact resistance at the cell's ambient
    temperature (``contact_resistance_activation_J_mol``).

    When a design changes an electrode's porosity but not its active fraction, the solid
    composition is kept: the active fraction scales with the solid volume (1 - porosity), as
    when an electrode is calendered to another density.
    """
    named = cell.named_parameters()
    if cell.contact_resistance_activation_J_mol:
        if CONTACT_RESISTANCE not in named and CONTACT_RESISTANCE not in values.keys():
            raise ConfigError(f"cell.contact_resistance_activation_J_mol = {cell.contact_resistance_activation_J_mol}: "
                              "the model has no contact resistance; allowed: 0, or a fidelity with "
                              "contact_resistance: true")
        at_25C = named.get(CONTACT_RESISTANCE, values[CONTACT_RESISTANCE])
        named[CONTACT_RESISTANCE] = at_25C * math.exp(cell.contact_resistance_activation_J_mol / GAS_CONSTANT * (
            1.0 / cell.ambient_temperature_K - 1.0 / REFERENCE_K))
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


# Overrides and scales of parameters with these words in their (lower-case) names change what the
# balance problem reads besides the capacities: OCPs, the OCV at 0 % and 100 % SOC, temperatures.
_BALANCE_WORDS = ("ocp", "open-circuit voltage", "cut-off", "temperature")
# what the capacities read
_CAPACITY_PARAMETERS = ("Electrode width [m]", "Electrode height [m]",
                        "Number of electrodes connected in parallel to make a cell",
                        *(f"{domain.capitalize()} electrode {name}" for domain in ("negative", "positive")
                          for name in ("active material volume fraction", "thickness [m]")),
                        *(f"{kind} concentration in {domain} electrode [mol.m-3]" for domain in ("negative", "positive")
                          for kind in ("Maximum", "Initial")))
_STOICHIOMETRY_TOLERANCE = 1e-13  # Newton stops at a step this small; the root is then exact to rounding
_PARAM = pybamm.LithiumIonParameters()


@dataclass(frozen=True)
class _BalanceProblem:
    """What the electrode balance reads besides the capacities, for one structure."""

    ocv: casadi.Function  # (x, y) -> (U_p(y) - U_n(x) [V], its derivatives in x and y) at T_ref
    voltage_0: float      # OCV at 0 % SOC [V]
    voltage_100: float    # OCV at 100 % SOC [V]
    limits: tuple[float, float, float, float]  # x_0 min, x_100 max, y_100 min, y_0 max of the OCPs


_BALANCE_PROBLEMS: dict[str, _BalanceProblem] = {}


def _balance_problem(structure: str, values: pybamm.ParameterValues) -> _BalanceProblem:
    """The balance problem of PyBaMM's ElectrodeSOHSolver (no hysteresis, OCPs at the reference
    temperature), built once per structure: its OCV as a CasADi function of both stoichiometries."""
    if structure not in _BALANCE_PROBLEMS:
        if len(_BALANCE_PROBLEMS) >= 32:
            _BALANCE_PROBLEMS.pop(next(iter(_BALANCE_PROBLEMS)))
        x, y = pybamm.InputParameter("x"), pybamm.InputParameter("y")
        ocv = values.process_symbol(_PARAM.p.prim.U(y, _PARAM.T_ref) - _PARAM.n.prim.U(x, _PARAM.T_ref))
        x_sym, y_sym = casadi.MX.sym("x"), casadi.MX.sym("y")
        voltage = ocv.to_casadi(inputs={"x": x_sym, "y": y_sym})
        function = casadi.Function("ocv", [x_sym, y_sym], [voltage, casadi.jacobian(voltage, x_sym),
                                                           casadi.jacobian(voltage, y_sym)])
        _BALANCE_PROBLEMS[structure] = _BalanceProblem(
            function, float(values.evaluate(_PARAM.ocp_soc_0)), float(values.evaluate(_PARAM.ocp_soc_100)),
            pybamm.lithium_ion.ElectrodeSOHSolver(values, param=_PARAM).lims_ocp)
    return _BALANCE_PROBLEMS[structure]


def _capacities(values: pybamm.ParameterValues) -> dict[str, float]:
    """Negative and positive electrode capacities and cyclable lithium [A.h]: PyBaMM's Q_n, Q_p
    and Q_Li_particles_init by plain arithmetic, as evaluating their symbolic expressions costs
    ~5 ms. A set that gives one of the parameters as a function takes the symbolic route."""
    if not all(isinstance(values[name], float | int) for name in _CAPACITY_PARAMETERS):
        return {"Q_n": float(values.evaluate(_PARAM.n.Q_init)), "Q_p": float(values.evaluate(_PARAM.p.Q_init)),
                "Q_Li": float(values.evaluate(_PARAM.Q_Li_particles_init))}
    area = values["Electrode width [m]"] * values["Electrode height [m]"] * \
        values["Number of electrodes connected in parallel to make a cell"]

    def lithium_Ah(domain: str, concentration: str) -> float:
        """Charge of the electrode's active material at a concentration [A.h]."""
        moles = (values[f"{domain.capitalize()} electrode active material volume fraction"] * area *
                 values[f"{domain.capitalize()} electrode thickness [m]"] *
                 values[f"{concentration} concentration in {domain} electrode [mol.m-3]"])
        return float(moles * pybamm.constants.F.value / 3600)

    return {"Q_n": lithium_Ah("negative", "Maximum"), "Q_p": lithium_Ah("positive", "Maximum"),
            "Q_Li": lithium_Ah("negative", "Initial") + lithium_Ah("positive", "Initial")}


def _negative_stoichiometry(problem: _BalanceProblem, capacities: dict[str, float], voltage: float,
                            low: float, high: float) -> float:
    """The x in [low, high] at which the OCV is ``voltage`` [V], the positive electrode holding
    the rest of the lithium, y = (Q_Li - x Q_n) / Q_p. The OCV rises with x, and the caller
    checks that the root lies in [low, high]: Newton steps, bisection where a step leaves it."""
    q_n, q_p, q_li = capacities["Q_n"], capacities["Q_p"], capacities["Q_Li"]
    x = 0.5 * (low + high)
    for _ in range(100):  # bisection alone would be done in ~45
        ocv, slope_x, slope_y = problem.ocv(x, (q_li - x * q_n) / q_p)
        residual, slope = float(ocv) - voltage, float(slope_x) - q_n / q_p * float(slope_y)
        if residual < 0:
            low = x
        else:
            high = x
        newton = x - residual / slope if slope > 0 else math.nan
        x_next = newton if low < newton < high else 0.5 * (low + high)
        if abs(x_next - x) < _STOICHIOMETRY_TOLERANCE:
            return x_next
        x = x_next
    return x


def _stoichiometry_window(problem: _BalanceProblem, capacities: dict[str, float]) -> tuple[float, float] | None:
    """(x_0, x_100), or None where the OCPs cannot reach the cut-offs within their limits.

    Both ends share one bracket for x: PyBaMM's stoichiometry limits, tightened by y = (Q_Li -
    x Q_n) / Q_p staying within the positive electrode's limits."""
    q_n, q_p, q_li = capacities["Q_n"], capacities["Q_p"], capacities["Q_Li"]
    x_min, x_max, y_min, y_max = problem.limits
    low, high = max(x_min, (q_li - y_max * q_p) / q_n), min(x_max, (q_li - y_min * q_p) / q_n)
    if not low < high:
        return None
    ocv_low, ocv_high = (float(problem.ocv(x, (q_li - x * q_n) / q_p)[0]) for x in (low, high))
    if not (ocv_low <= problem.voltage_0 and ocv_high >= problem.voltage_100):
        return None
    return (_negative_stoichiometry(problem, capacities, problem.voltage_0, low, high),
            _negative_stoichiometry(problem, capacities, problem.voltage_100, low, high))


def electrode_balance(cell: CellSpec, values: pybamm.ParameterValues) -> ElectrodeBalance:
    """Electrode balance of ``cell`` (numeric ``values``): PyBaMM's electrode SOH problem, solved
    directly.

    At 100 % SOC the OCV is "Open-circuit voltage at 100% SOC [V]", at 0 % SOC the one at 0 %,
    and the cyclable lithium Q_Li = x Q_n + y Q_p is conserved; the OCPs and those voltages
    depend only on the structure, so its OCV function is built once and each design costs two
    1-D root solves (~0.5 ms, not PyBaMM's ~15-35 ms). A cell whose stoichiometry limits do not
    bracket both voltages goes to PyBaMM's ElectrodeSOHSolver itself, for its answer or its
    ValueError (e.g. "Q_Li=... Ah is outside the range of possible values").
    """
    relevant = [sorted((name, value) for name, value in named.items()
                       if any(word in name.lower() for word in _BALANCE_WORDS)) for named in (cell.overrides, cell.scales)]
    structure = repr((cell.parameter_set, cell.bpx, cell.ambient_temperature_K, relevant))
    problem = _balance_problem(structure, values)
    capacities = _capacities(values)
    window = _stoichiometry_window(problem, capacities)
    if window is None:
        solution = pybamm.lithium_ion.ElectrodeSOHSolver(values, param=_PARAM).solve(capacities)
        window = float(solution["x_0"]), float(solution["x_100"])
    x_0, x_100 = window
    y_100, y_0 = ((capacities["Q_Li"] - x * capacities["Q_n"]) / capacities["Q_p"] for x in (x_100, x_0))
    return ElectrodeBalance(x_0, x_100, y_100, y_0, float(abs(x_100 - x_0) * capacities["Q_n"]))
