"""Design metrics: the same figures from a surrogate trajectory and from a reference trajectory.
The phases they are measured on live in :mod:`hybrid.surrogate.phases`, the cell mass and
volume behind the densities in :mod:`hybrid.surrogate.mass`.

:func:`trajectory_metrics` reads only numpy columns (``Time [s]``, ``Current [A]``,
``Voltage [V]`` and, when present, ``Protocol voltage [V]``, ``Cell temperature [K]`` and
``X-averaged negative electrode surface potential difference [V]``), so a hybrid-corrected
trajectory and a plant trajectory are scored by one code path. Discharge current is positive.

``Protocol voltage [V]`` is the voltage the cycler's cut-offs acted on: the plant's own voltage
for a reference trajectory, the corrected voltage for a surrogate trajectory (the hybrid runs the
protocol, :mod:`hybrid.surrogate.closed_loop`); a trajectory whose cut-offs acted on another
voltage than the scored one (a physics run corrected afterwards) names it here. A discharge "ran to the cut-off" when
the protocol voltage, extrapolated along its last slope, reaches the lower cut-off within
``cutoff_charge_tolerance`` more charge; its capacity and energy are then read where the
*scored* voltage (``Voltage [V]``) reaches the cut-off, interpolated between samples or
extrapolated along the last slope (at most 1.2x the discharged charge, as in
:func:`hybrid.evaluate.capacity_to_cutoff`). The run's end point counts as a sample at the
cut-off plus the residual of its last loaded sample (the scored minus the protocol voltage):
a reference discharge ends exactly at its total charge, whatever the output period. So a
corrected voltage that would have hit the cut-off earlier than the physics did shortens the
surrogate's discharge, as it would the plant's.

Metrics (NaN where the protocol gives no basis for one):

- ``discharge_capacity_Ah`` / ``discharge_energy_Wh``: the first discharge that ran to the cut-off.
- ``gravimetric_energy_density_Wh_kg`` / ``volumetric_energy_density_Wh_L``: that energy over
  the cell mass and volume of :func:`hybrid.surrogate.mass.cell_mass_volume`.
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
- The charge metrics (``plating_margin_V``, ``charge_time_min``, ``charged_soc``,
  ``max_charge_voltage_V``) score one charge: the first, or the ``charge_index``-th (from 0) of
  :class:`MetricOptions`.
- ``plating_margin_V``: the lowest "X-averaged negative electrode surface potential difference
  [V]" (phi_s - phi_e at the negative particle surface, the overpotential lithium plating
  sees against Li/Li+ with U_plating = 0) while the cell charges. It is an x-average: the
  separator side of the electrode sits lower, so the true local margin is smaller; read it as
  an upper bound of the local one and leave a safety margin in constraints. A surrogate
  reports the physics model's value (the residual corrects the voltage, not this potential).
- ``charge_time_min`` and ``charged_soc``: duration of the scored charge (CC stages and any CV
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
- ``cell_mass_kg`` and ``cell_volume_L``: from :func:`hybrid.surrogate.mass.cell_mass_volume`.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
from pydantic import Field

from hybrid.data import CURRENT, TEMPERATURE, TIME, VOLTAGE
from hybrid.evaluate import rmse_mV
from hybrid.surrogate.mass import MassVolume
from hybrid.surrogate.phases import current_phases, current_runs, discharge_to_cutoff, first_charge, \
    phase_duration, pulse_power_capability, ran_to_cutoff
from sim.config import StrictModel

PROTOCOL_VOLTAGE = "Protocol voltage [V]"
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


class MetricOptions(StrictModel):
    """rest_c_rate: |current| below this C-rate is rest. max_pulse_s: discharge runs from rest
    of at most this long are pulses; longer ones are sustained discharges.
    cutoff_charge_tolerance: a sustained discharge ran to the cut-off when its protocol voltage,
    extrapolated along its last slope, reaches the cut-off within this fraction more charge.
    charge_index: the charge the charge metrics score (0: the first; 1 when a reference test's
    charge comes first, as in a fast charge with ``reference_tests``)."""

    rest_c_rate: float = Field(0.02, gt=0.0)
    max_pulse_s: float = Field(60.0, gt=0.0)
    cutoff_charge_tolerance: float = Field(0.05, ge=0.0)
    charge_index: int = Field(0, ge=0, le=1000)


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
                   and ran_to_cutoff(time_s, current, protocol_voltage, run, lower, options.cutoff_charge_tolerance)]
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
    scored = charges[options.charge_index:options.charge_index + 1]
    charging = np.zeros(len(time_s), dtype=bool)
    for run in scored:
        charging[run.start:run.stop] = -current[run.start:run.stop] > threshold
    potential = columns.get(NEGATIVE_POTENTIAL)
    charge_s, charge_Ah = first_charge(time_s, current, voltage, protocol_voltage, scored, window_V[1])
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
        if until_divergence and abs(phase_duration(columns[TIME], start, stop)
                                    - phase_duration(reference[TIME], reference_start, reference_stop)) > 1.0:
            break
    return rmse_mV(np.concatenate(errors)) if errors else float("nan")
