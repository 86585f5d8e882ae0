"""Design metrics: the same figures from a surrogate trajectory and from a reference trajectory,
and the cell mass and volume model behind the energy densities.

:func:`trajectory_metrics` reads only numpy columns (``Time [s]``, ``Current [A]``,
``Voltage [V]`` and, when present, ``Protocol voltage [V]``, ``Cell temperature [K]`` and
``X-averaged negative electrode surface potential difference [V]``), so a hybrid-corrected
trajectory and a plant trajectory are scored by one code path. Discharge current is positive.

``Protocol voltage [V]`` is the voltage the cycler's cut-offs acted on: the plant's own voltage
for a reference trajectory, the *physics* voltage for a surrogate trajectory (the physics model
runs the protocol; the residual is added afterwards). A discharge "ran to the cut-off" when
the protocol voltage, extrapolated along its last slope, reaches the lower cut-off within
``cutoff_charge_tolerance`` more charge; its capacity and energy are then read where the
*scored* voltage (``Voltage [V]``) reaches the cut-off, interpolated between samples or
extrapolated along the last slope (at most 1.2x the discharged charge, as in
:func:`hybrid.evaluate.report.capacity_to_cutoff`). The run's end point counts as a sample at the
cut-off plus the residual of its last loaded sample (the scored minus the protocol voltage):
a reference discharge ends exactly at its total charge, whatever the output period. So a
corrected voltage that would have hit the cut-off earlier than the physics did shortens the
surrogate's discharge, as it would the plant's.

Metrics (NaN where the protocol gives no basis for one):

- ``discharge_capacity_Ah`` / ``discharge_energy_Wh``: the first discharge that ran to the cut-off.
- ``gravimetric_energy_density_Wh_kg`` / ``volumetric_energy_density_Wh_L``: that energy over
  the cell mass and volume of :func:`cell_mass_volume`.
- ``power_capability_W`` (and ``/ kg``): the largest HPPC-style pulse power capability
  ``V_min (V_rest - V_min) / R`` over the discharge pulses (runs of at most ``max_pulse_s``
  from rest), with ``R = (V_rest - V_pulse end) / I`` and ``V_min`` the lower cut-off: the
  power the cell could deliver in such a pulse without going below the cut-off (USABC/FreedomCAR
  HPPC definition, resistance taken at the end of the pulse).
- ``capacity_retention_pct``: capacity of the last cut-off discharge over the first, in %, among
  the cut-off discharges that follow a charge: each of those starts from a state the protocol
  made (a full CCCV charge, or the same fast charge), whereas the first discharge of a
  trajectory starts from the cell's initial state.
- ``max_temperature_K``: the highest cell temperature.
- ``plating_margin_V``: the lowest "X-averaged negative electrode surface potential difference
  [V]" (phi_s - phi_e at the negative particle surface, the overpotential lithium plating
  sees against Li/Li+ with U_plating = 0) while the cell charges. It is an x-average: the
  separator side of the electrode sits lower, so the true local margin is smaller; read it as
  an upper bound of the local one and leave a safety margin in constraints. A surrogate
  reports the physics model's value (the residual corrects the voltage, not this potential).
- ``charge_time_min`` and ``charged_soc``: duration of the first charge (CC stages and any CV
  hold, until the current stops) and its charge throughput over the cell capacity. A
  constant-current charge (no CV hold: the protocol voltage never sits at the upper cut-off)
  ends where the scored voltage first reaches the upper cut-off while the protocol voltage is
  still below it: a surrogate's corrected voltage reaching the limit the physics had not, where
  the plant's cycler would have ended that stage. A later stage at a lower current may charge
  on in the plant, so the cut charge is a lower bound: conservative for a ``charged_soc``
  constraint, while designs that never touch the limit (the feasible ones) are not cut at all.
- ``max_charge_voltage_V``: the highest scored voltage while charging. A protocol that must keep
  headroom below the upper cut-off (a CC charge that never touches it) bounds it below the
  cut-off; for a surrogate that bound also absorbs the corrected voltage's error.
- ``cell_mass_kg`` and ``cell_volume_L``: from :func:`cell_mass_volume`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Mapping

import numpy as np
from pydantic import Field

from hybrid.evaluate import capacity_to_cutoff
from sim.cells import CellSpec, base_parameter_values, cell_parameter_values
from sim.config import StrictModel
from sim.errors import ConfigError

TIME = "Time [s]"
CURRENT = "Current [A]"
VOLTAGE = "Voltage [V]"
PROTOCOL_VOLTAGE = "Protocol voltage [V]"
TEMPERATURE = "Cell temperature [K]"
NEGATIVE_POTENTIAL = "X-averaged negative electrode surface potential difference [V]"

# metric name -> (unit, what it is); objectives and constraints name these
METRICS: dict[str, tuple[str, str]] = {
    "discharge_capacity_Ah": ("A.h", "capacity of the first discharge to the cut-off"),
    "discharge_energy_Wh": ("W.h", "energy of the first discharge to the cut-off"),
    "gravimetric_energy_density_Wh_kg": ("W.h/kg", "discharge energy over cell mass"),
    "volumetric_energy_density_Wh_L": ("W.h/L", "discharge energy over cell volume"),
    "power_capability_W": ("W", "largest pulse power capability above the cut-off"),
    "gravimetric_power_density_W_kg": ("W/kg", "power capability over cell mass"),
    "capacity_retention_pct": ("%", "last over first cut-off discharge capacity after a charge"),
    "max_temperature_K": ("K", "highest cell temperature"),
    "plating_margin_V": ("V", "lowest negative surface potential difference while charging"),
    "charge_time_min": ("min", "duration of the first charge"),
    "charged_soc": ("-", "charge throughput of the first charge over the cell capacity"),
    "max_charge_voltage_V": ("V", "highest voltage while charging"),
    "cell_mass_kg": ("kg", "cell mass of the mass model"),
    "cell_volume_L": ("L", "cell volume of the mass model"),
}


class MassModel(StrictModel):
    """Assumptions of the cell mass and volume model (see :func:`cell_mass_volume`).

    electrolyte_density_kg_m3: LiPF6 in carbonate solvents (EC:EMC 3:7, 1 M) is 1.2-1.3 g/cm3;
        1200 kg/m3. The PyBaMM sets carry no electrolyte density.
    current_collector_share: share of each current-collector foil one electrode layer owns.
        Coatings are double-sided in wound and stacked cells, so two layers share a foil: 0.5.
    overhead_mass_fraction: share of the cell mass outside the electrode stack (can, cap,
        tabs, mandrel, insulators). A 21700 can with its cap weighs about 9-11 g of the
        ~68 g LG M50: 0.15.
    overhead_volume_fraction: share of the cell volume outside the stack (can wall, headspace,
        mandrel hole). For OKane2022/Chen2020 the stack of this model is 19.2 cm3 of the set's
        "Cell volume [m3]" 24.2 cm3: 0.20.
    """

    electrolyte_density_kg_m3: float = Field(1200.0, gt=0.0, le=3000.0)
    current_collector_share: float = Field(0.5, gt=0.0, le=1.0)
    overhead_mass_fraction: float = Field(0.15, ge=0.0, lt=1.0)
    overhead_volume_fraction: float = Field(0.20, ge=0.0, lt=1.0)


class MetricOptions(StrictModel):
    """rest_c_rate: |current| below this C-rate is rest. max_pulse_s: discharge runs from rest
    of at most this long are pulses; longer ones are sustained discharges.
    cutoff_charge_tolerance: a sustained discharge ran to the cut-off when its protocol voltage,
    extrapolated along its last slope, reaches the cut-off within this fraction more charge."""

    rest_c_rate: float = Field(0.02, gt=0.0)
    max_pulse_s: float = Field(60.0, gt=0.0)
    cutoff_charge_tolerance: float = Field(0.05, ge=0.0)


@dataclass(frozen=True)
class MassVolume:
    """Cell mass [kg] and volume [m3], with the stack's parts [kg] and [m3]."""

    mass_kg: float
    volume_m3: float
    parts_kg: dict[str, float]
    stack_volume_m3: float

    def to_dict(self) -> dict:
        return asdict(self)


def stack_mass_volume(values: Mapping[str, float], set_porosities: Mapping[str, float],
                      model: MassModel = MassModel()) -> MassVolume:
    """Mass and volume of a cell from numeric PyBaMM parameters ``values``.

    Per unit of electrode area A = "Electrode height [m]" x "Electrode width [m]" x "Number of
    electrodes connected in parallel to make a cell" (the area PyBaMM's capacity uses), the
    stack holds one layer of negative coating, separator and positive coating
    (L_n, L_s, L_p = "... thickness [m]") and ``current_collector_share`` of each foil
    (L_cn, L_cp = "... current collector thickness [m]"):

    - coating and separator solids: PyBaMM's "Negative electrode density [kg.m-3]",
      "Separator density [kg.m-3]", "Positive electrode density [kg.m-3]" are read as apparent
      dry densities of the porous layer at the parameter set's own porosity eps_set (Chen2020:
      graphite 2260 kg/m3 x (1 - 0.25) = 1695, listed 1657), so a layer of porosity eps weighs
      rho (1 - eps) / (1 - eps_set) L A;
    - foils: rho_c L_c A x share ("... current collector density [kg.m-3]");
    - electrolyte: fills every pore, rho_e (eps_n L_n + eps_s L_s + eps_p L_p) A.

    Stack volume A (L_n + L_s + L_p + share (L_cn + L_cp)); the cell adds the overhead
    fractions: mass = stack mass / (1 - overhead_mass_fraction), likewise the volume.
    ``set_porosities`` maps "Negative electrode porosity", "Separator porosity" and "Positive
    electrode porosity" to the parameter set's values.
    """
    area = (values["Electrode height [m]"] * values["Electrode width [m]"]
            * values.get("Number of electrodes connected in parallel to make a cell", 1.0))
    parts, thickness, pores = {}, 0.0, 0.0
    for layer, density_name in (("Negative electrode", "Negative electrode density [kg.m-3]"),
                                ("Separator", "Separator density [kg.m-3]"),
                                ("Positive electrode", "Positive electrode density [kg.m-3]")):
        length = values[f"{layer} thickness [m]"]
        porosity = values[f"{layer} porosity"]
        solid_share = (1.0 - porosity) / (1.0 - set_porosities[f"{layer} porosity"])
        parts[layer.lower().replace(" electrode", " coating")] = values[density_name] * solid_share * length * area
        thickness += length
        pores += porosity * length
    for side in ("Negative", "Positive"):
        foil = model.current_collector_share * values[f"{side} current collector thickness [m]"]
        parts[f"{side.lower()} current collector"] = values[f"{side} current collector density [kg.m-3]"] * foil * area
        thickness += foil
    parts["electrolyte"] = model.electrolyte_density_kg_m3 * pores * area
    stack_mass = sum(parts.values())
    stack_volume = thickness * area
    return MassVolume(stack_mass / (1.0 - model.overhead_mass_fraction),
                      stack_volume / (1.0 - model.overhead_volume_fraction), parts, stack_volume)


def cell_mass_volume(cell: CellSpec, model: MassModel = MassModel()) -> MassVolume:
    """Mass and volume of ``cell`` (its parameter set with design and overrides applied)."""
    base = base_parameter_values(cell)
    values = cell_parameter_values(cell, base=base)
    names = ("Negative electrode porosity", "Separator porosity", "Positive electrode porosity")
    numeric = {}
    for name in _MASS_PARAMETERS:
        value = values[name] if name in values.keys() else None
        if not isinstance(value, (int, float)):
            raise ConfigError(f"cell.parameter_set '{cell.parameter_set}': '{name}' = {value!r} is not a number; "
                              "the mass model needs it numeric (give it in cell.overrides)")
        numeric[name] = float(value)
    return stack_mass_volume(numeric, {name: float(base[name]) for name in names}, model)


_MASS_PARAMETERS = (
    "Electrode height [m]", "Electrode width [m]",
    "Negative electrode thickness [m]", "Separator thickness [m]", "Positive electrode thickness [m]",
    "Negative electrode porosity", "Separator porosity", "Positive electrode porosity",
    "Negative electrode density [kg.m-3]", "Separator density [kg.m-3]", "Positive electrode density [kg.m-3]",
    "Negative current collector thickness [m]", "Positive current collector thickness [m]",
    "Negative current collector density [kg.m-3]", "Positive current collector density [kg.m-3]",
)


# --- trajectory metrics ------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """Rows [start, stop) where the current keeps one sign; ``end_s`` is when it stopped
    (the next row's time: a sample holds its current until the next one)."""

    start: int
    stop: int
    start_s: float
    end_s: float

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


def current_phases(time_s: np.ndarray, current: np.ndarray, threshold_A: float) -> list[tuple[int, int, int]]:
    """(sign, first row, stop row) of each run of discharge (+1), rest (0) or charge (-1), in order;
    |current| at or below ``threshold_A`` is rest."""
    signs = np.where(current > threshold_A, 1, np.where(current < -threshold_A, -1, 0))
    edges = np.flatnonzero(np.diff(signs)) + 1
    starts, stops = np.concatenate([[0], edges]), np.concatenate([edges, [len(signs)]])
    return [(int(signs[a]), int(a), int(b)) for a, b in zip(starts, stops)]


def current_runs(time_s: np.ndarray, current: np.ndarray, threshold_A: float, sign: int) -> list[Run]:
    """Runs of discharge (``sign`` +1) or charge (-1) current above ``threshold_A``."""
    return [Run(a, b, float(time_s[a]), float(time_s[min(b, len(time_s) - 1)]))
            for phase, a, b in current_phases(time_s, current, threshold_A) if phase == sign]


def _run_integrals(time_s: np.ndarray, current: np.ndarray, voltage: np.ndarray, run: Run,
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Charge [A.h] and energy [W.h] passed before each row of ``run`` (0 at its first row),
    left-point rule: a sample holds its current until the next one."""
    rows = slice(run.start, run.stop)
    next_times = np.append(time_s[run.start + 1:run.stop], run.end_s)
    dt = next_times - time_s[rows]
    charge = np.concatenate([[0.0], np.cumsum(current[rows] * dt)]) / 3600.0
    energy = np.concatenate([[0.0], np.cumsum(current[rows] * voltage[rows] * dt)]) / 3600.0
    return charge, energy  # (rows + 1,): the last entry is the run's total


def discharge_to_cutoff(time_s: np.ndarray, current: np.ndarray, voltage: np.ndarray, run: Run,
                        cutoff_V: float, end_voltage_V: float | None = None) -> tuple[float, float]:
    """(capacity [A.h], energy [W.h]) of discharge ``run`` up to where ``voltage`` reaches
    ``cutoff_V`` (interpolated, or extrapolated along the last slope; see the module docstring).

    end_voltage_V: the voltage at the run's end, when known. A run that ended on the cut-off
    records no loaded sample there (the row at its end already rests), so the caller supplies
    the cut-off plus the scored-minus-protocol voltage of the last loaded sample: exactly the
    cut-off for a reference run, the physics cut-off plus the residual for a surrogate.
    """
    charge, energy = _run_integrals(time_s, current, voltage, run)
    loaded = voltage[run.start:run.stop]
    if end_voltage_V is None:
        charge, energy = charge[:-1], energy[:-1]
    else:
        loaded = np.append(loaded, end_voltage_V)
    if len(loaded) < 2:
        return float(charge[-1]), float(energy[-1])
    capacity = capacity_to_cutoff(charge, loaded, cutoff_V)
    if capacity <= charge[-1]:
        return capacity, float(np.interp(capacity, charge, energy))
    # beyond the last point: the voltage falls linearly to the cut-off over the extra charge
    return capacity, float(energy[-1] + (capacity - charge[-1]) * 0.5 * (loaded[-1] + cutoff_V))


def _ran_to_cutoff(time_s: np.ndarray, current: np.ndarray, protocol_voltage: np.ndarray, run: Run,
                   cutoff_V: float, tolerance: float) -> bool:
    charge, _ = _run_integrals(time_s, current, protocol_voltage, run)
    loaded = protocol_voltage[run.start:run.stop]
    if len(loaded) < 2:
        return False
    return capacity_to_cutoff(charge[:-1], loaded, cutoff_V) <= (1.0 + tolerance) * charge[-1]


def pulse_power_capability(time_s: np.ndarray, current: np.ndarray, voltage: np.ndarray, runs: list[Run],
                           threshold_A: float, max_pulse_s: float, cutoff_V: float) -> float:
    """Largest V_min (V_rest - V_min) / R [W] over discharge pulses from rest; NaN if none."""
    powers = []
    for run in runs:
        if run.duration_s > max_pulse_s or run.start == 0 or abs(current[run.start - 1]) >= threshold_A:
            continue
        rest_voltage, end_voltage = voltage[run.start - 1], voltage[run.stop - 1]
        resistance = (rest_voltage - end_voltage) / float(np.mean(current[run.start:run.stop]))
        if resistance > 0 and rest_voltage > cutoff_V:
            powers.append(cutoff_V * (rest_voltage - cutoff_V) / resistance)
    return float(max(powers)) if powers else float("nan")


def first_charge(time_s: np.ndarray, current: np.ndarray, voltage: np.ndarray, protocol_voltage: np.ndarray,
                 charges: list[Run], upper_V: float, hold_tolerance_V: float = 2e-3) -> tuple[float, float]:
    """(duration [s], charge [A.h]) of the first charge run, a constant-current one cut where
    ``voltage`` first reaches ``upper_V`` before ``protocol_voltage`` does (module docstring);
    (NaN, NaN) without a charge."""
    if not charges:
        return float("nan"), float("nan")
    run = charges[0]
    charge, _ = _run_integrals(time_s, -current, voltage, run)
    rows = slice(run.start, run.stop)
    held = np.sum(np.abs(protocol_voltage[rows] - upper_V) < hold_tolerance_V) >= 3  # a CV hold
    early = np.flatnonzero((voltage[rows] >= upper_V) & (protocol_voltage[rows] < upper_V - hold_tolerance_V))
    if held or not early.size:
        return run.duration_s, float(charge[-1])
    k = int(early[0])
    if k == 0:
        return 0.0, 0.0
    before, after = run.start + k - 1, run.start + k
    share = (upper_V - voltage[before]) / (voltage[after] - voltage[before])  # where, between the samples
    end_s = time_s[before] + share * (time_s[after] - time_s[before])
    return float(end_s - run.start_s), float(charge[k - 1] + share * (charge[k] - charge[k - 1]))


def trajectory_metrics(columns: Mapping[str, np.ndarray], *, capacity_Ah: float, window_V: tuple[float, float],
                       mass: MassVolume | None = None, options: MetricOptions = MetricOptions()) -> dict[str, float]:
    """The metrics of the module docstring from one trajectory's columns.

    capacity_Ah: the cell's capacity (sets the rest threshold and ``charged_soc``).
    window_V: the (lower, upper) voltage cut-offs [V]. mass: the cell's mass and volume, for
    the densities (NaN without it).
    """
    time_s, current, voltage = (np.asarray(columns[name], dtype=float) for name in (TIME, CURRENT, VOLTAGE))
    protocol_voltage = np.asarray(columns.get(PROTOCOL_VOLTAGE, voltage), dtype=float)
    lower = window_V[0]
    threshold = options.rest_c_rate * capacity_Ah
    discharges = current_runs(time_s, current, threshold, +1)
    cutoff_runs = [run for run in discharges if run.duration_s > options.max_pulse_s
                   and _ran_to_cutoff(time_s, current, protocol_voltage, run, lower, options.cutoff_charge_tolerance)]
    capacities = [discharge_to_cutoff(time_s, current, voltage, run, lower,
                                      end_voltage_V=lower + voltage[run.stop - 1] - protocol_voltage[run.stop - 1])
                  for run in cutoff_runs]
    nan = float("nan")
    capacity, energy = capacities[0] if capacities else (nan, nan)
    mass_kg, volume_L = (mass.mass_kg, 1e3 * mass.volume_m3) if mass is not None else (nan, nan)
    power = pulse_power_capability(time_s, current, voltage, discharges, threshold, options.max_pulse_s, lower)
    charges = current_runs(time_s, current, threshold, -1)
    after_charge = [capacity_k for run, (capacity_k, _) in zip(cutoff_runs, capacities)
                    if any(charge.end_s <= run.start_s for charge in charges)]
    charging = -current > threshold
    potential = columns.get(NEGATIVE_POTENTIAL)
    charge_s, charge_Ah = first_charge(time_s, current, voltage, protocol_voltage, charges, window_V[1])
    return {
        "discharge_capacity_Ah": capacity,
        "discharge_energy_Wh": energy,
        "gravimetric_energy_density_Wh_kg": energy / mass_kg,
        "volumetric_energy_density_Wh_L": energy / volume_L,
        "power_capability_W": power,
        "gravimetric_power_density_W_kg": power / mass_kg,
        "capacity_retention_pct": 100.0 * after_charge[-1] / after_charge[0] if len(after_charge) > 1 else nan,
        "max_temperature_K": float(np.max(columns[TEMPERATURE])) if TEMPERATURE in columns else nan,
        "plating_margin_V": float(np.min(np.asarray(potential)[charging]))
        if potential is not None and charging.any() else nan,
        "charge_time_min": charge_s / 60.0,
        "charged_soc": charge_Ah / capacity_Ah,
        "max_charge_voltage_V": float(np.max(voltage[charging])) if charging.any() else nan,
        "cell_mass_kg": mass_kg,
        "cell_volume_L": volume_L,
    }


def _phase_duration(time_s: np.ndarray, start: int, stop: int) -> float:
    """From the phase's first row to the next phase's first row (or its own last row), as Run."""
    return float(time_s[min(stop, len(time_s) - 1)] - time_s[start])


def voltage_rmse_mV(columns: Mapping[str, np.ndarray], reference: Mapping[str, np.ndarray], *,
                    threshold_A: float, until_divergence: bool = False) -> float:
    """RMSE [mV] of ``columns``' voltage against ``reference``'s over the whole protocol.

    Two runs of one protocol keep its phases (discharge, rest, charge) in order, but a phase
    that ends on a voltage cut-off ends at a different time in each, shifting what follows.
    So the phases are paired in order (up to the first whose direction differs) and compared
    at the same time since the phase began, over the shorter of the two; the voltage of
    ``columns`` is interpolated linearly in that time. ``until_divergence`` stops after the
    first phase whose durations differ by more than a second: up to there both runs followed
    the same current, so the figure is the model's error alone, not that of a cell driven
    differently after one of them reached a cut-off first.
    """
    errors = []
    phases = zip(current_phases(columns[TIME], columns[CURRENT], threshold_A),
                 current_phases(reference[TIME], reference[CURRENT], threshold_A))
    for (sign, start, stop), (reference_sign, reference_start, reference_stop) in phases:
        if sign != reference_sign:
            break
        offset = np.asarray(columns[TIME][start:stop]) - columns[TIME][start]
        reference_time = np.asarray(reference[TIME][reference_start:reference_stop])
        reference_offset = reference_time - reference_time[0]
        shared = reference_offset <= offset[-1]
        estimate = np.interp(reference_offset[shared], offset, columns[VOLTAGE][start:stop])
        errors.append(estimate - np.asarray(reference[VOLTAGE][reference_start:reference_stop])[shared])
        if until_divergence and abs(_phase_duration(columns[TIME], start, stop)
                                    - _phase_duration(reference[TIME], reference_start, reference_stop)) > 1.0:
            break
    if not errors:
        return float("nan")
    errors = np.concatenate(errors)
    return float(1e3 * np.sqrt(np.mean(errors ** 2)))
