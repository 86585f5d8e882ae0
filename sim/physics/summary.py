"""From a PyBaMM Solution to numpy: output columns and the per-cycle summary."""

from __future__ import annotations

import numpy as np
import pybamm

from sim.cells import POSITIVE_SURFACE_STOICHIOMETRY, CellSpec

# PyBaMM variable -> column name; extracted when the model has the variable.
OUTPUT_VARIABLES = {
    "Time [s]": "Time [s]",
    "Current [A]": "Current [A]",
    "Voltage [V]": "Voltage [V]",
    "Volume-averaged cell temperature [K]": "Cell temperature [K]",
    "Discharge capacity [A.h]": "Discharge capacity [A.h]",
    "X-averaged negative particle surface stoichiometry": "X-averaged negative particle surface stoichiometry",
    "X-averaged positive particle surface stoichiometry": "X-averaged positive particle surface stoichiometry",
    "X-averaged negative electrode surface potential difference [V]":
        "X-averaged negative electrode surface potential difference [V]",
    "Loss of lithium inventory [%]": "Loss of lithium inventory [%]",
    "Loss of active material in negative electrode [%]": "Loss of active material in negative electrode [%]",
    "Loss of active material in positive electrode [%]": "Loss of active material in positive electrode [%]",
    "X-averaged negative SEI thickness [m]": "X-averaged negative SEI thickness [m]",
    "Loss of capacity to negative SEI [A.h]": "Loss of capacity to negative SEI [A.h]",
    "Loss of capacity to negative lithium plating [A.h]": "Loss of capacity to negative lithium plating [A.h]",
    "X-averaged negative electrode hysteresis state": "X-averaged negative electrode hysteresis state",
    "X-averaged positive electrode hysteresis state": "X-averaged positive electrode hysteresis state",
}
AGEING_COLUMNS = ("Loss of lithium inventory [%]", "Loss of active material in negative electrode [%]",
                  "Loss of active material in positive electrode [%]",
                  "X-averaged negative SEI thickness [m]")


def _values(solution: pybamm.Solution, name: str) -> np.ndarray | None:
    # test membership first: a missing name makes PyBaMM run a slow fuzzy search for hints
    if isinstance(solution, pybamm.EmptySolution) or name not in solution.all_models[0].variables:
        return None
    return np.asarray(solution[name].entries, dtype=float).reshape(-1)


def output_columns(solution: pybamm.Solution, cell: CellSpec, capacity_Ah: float,
                   at_times: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Time series with PyBaMM names and SI units; duplicate times at step boundaries are
    dropped (keeping the value after the boundary) so time is strictly increasing.
    ``at_times`` keeps only the solver outputs at those times (those solved)."""
    columns = {}
    for variable, column in OUTPUT_VARIABLES.items():
        values = _values(solution, variable)
        if values is not None and values.shape == solution.t.shape:
            columns[column] = values
    keep = np.append(np.diff(columns["Time [s]"]) > 1e-9, True)  # boundaries repeat to ~1e-13 s
    columns = {name: values[keep] for name, values in columns.items()}
    if at_times is not None:
        rows, solved_times = _rows_at(columns["Time [s]"], at_times)
        columns = {name: values[rows] for name, values in columns.items()} | {"Time [s]": solved_times}
    columns["Ambient temperature [K]"] = np.full(len(columns["Time [s]"]), cell.ambient_temperature_K)
    columns["State of charge"] = cell.initial_soc - columns["Discharge capacity [A.h]"] / capacity_Ah
    if cell.ocv_correction is not None:
        columns["Voltage [V]"] = columns["Voltage [V]"] + cell.ocv_correction.at(columns[POSITIVE_SURFACE_STOICHIOMETRY])
    return columns


def _rows_at(times: np.ndarray, at_times: np.ndarray, tolerance_s: float = 1e-9) -> tuple[np.ndarray, np.ndarray]:
    """Rows of ``times`` nearest to each of ``at_times`` and the at_times matched within
    ``tolerance_s`` (a stepped solve restarts one float step after a boundary)."""
    after = np.clip(np.searchsorted(times, at_times), 1, len(times) - 1)
    nearest = np.where(np.abs(times[after] - at_times) < np.abs(times[after - 1] - at_times), after, after - 1)
    matched = np.abs(times[nearest] - at_times) <= tolerance_s
    return nearest[matched], at_times[matched]


def cycle_boundaries(solution: pybamm.Solution, tags: list[str]) -> list[tuple[str, float, float]]:
    """(tag, start time [s], end time [s]) of each solved experiment cycle."""
    cycles = solution.cycles if solution.cycles else [solution]
    return [(tag, float(cycle.t[0]), float(cycle.t[-1])) for tag, cycle in zip(tags, cycles)
            if not isinstance(cycle, pybamm.EmptySolution)]


def cycle_summary(columns: dict[str, np.ndarray], boundaries: list[tuple[str, float, float]]) -> dict[str, np.ndarray]:
    """One row per cycle from the time series alone (so reference, physics and measured data
    are summarised identically): tag, times, capacities, energy, ageing states at the end of
    the cycle, and the mean discharge-pulse resistance where the cycle has pulses."""
    time_s = columns["Time [s]"]
    rows = []
    for index, (tag, start, end) in enumerate(boundaries):
        inside = (time_s >= start) & (time_s <= end)
        if inside.sum() >= 2:
            rows.append(_cycle_row(index, tag, {name: values[inside] for name, values in columns.items()}))
    names = rows[0].keys() if rows else ["Cycle number", "Tag"]
    return {name: np.array([row[name] for row in rows]) for name in names}


def _cycle_row(index: int, tag: str, columns: dict[str, np.ndarray]) -> dict:
    time_s, current, voltage = columns["Time [s]"], columns["Current [A]"], columns["Voltage [V]"]
    dt = np.diff(time_s)
    # left-point rule: after a step change the sample holds the new current for the interval
    current_left = current[:-1]
    power_left = current[:-1] * voltage[:-1]
    row = {
        "Cycle number": index + 1,
        "Tag": tag,
        "Start time [s]": float(time_s[0]),
        "End time [s]": float(time_s[-1]),
        "Discharge capacity [A.h]": float(np.sum(np.clip(current_left, 0, None) * dt) / 3600.0),
        "Charge capacity [A.h]": float(np.sum(np.clip(-current_left, 0, None) * dt) / 3600.0),
        "Discharge energy [W.h]": float(np.sum(np.clip(power_left, 0, None) * dt) / 3600.0),
        "Minimum voltage [V]": float(voltage.min()),
        "Maximum voltage [V]": float(voltage.max()),
        "Pulse resistance [Ohm]": pulse_resistance(time_s, current, voltage),
    }
    for name in AGEING_COLUMNS:
        row[name] = float(columns[name][-1]) if name in columns else float("nan")
    return row


def pulse_resistance(time_s: np.ndarray, current: np.ndarray, voltage: np.ndarray,
                     max_pulse_s: float = 60.0, rest_current_A: float = 1e-3) -> float:
    """Mean discharge-pulse resistance [Ohm]: (V at rest before - V at pulse end) / I over
    discharge runs of at most ``max_pulse_s`` that start from rest; NaN when there are none."""
    resting = np.abs(current) < rest_current_A
    discharging = current > rest_current_A
    resistances = []
    starts = np.flatnonzero(discharging[1:] & resting[:-1]) + 1
    for start in starts:
        end = start
        while end + 1 < len(current) and discharging[end + 1]:
            end += 1
        if time_s[end] - time_s[start] <= max_pulse_s and end + 1 < len(current):
            mean_current = current[start:end + 1].mean()
            resistances.append((voltage[start - 1] - voltage[end]) / mean_current)
    return float(np.mean(resistances)) if resistances else float("nan")
