"""From a PyBaMM Solution to numpy: output columns and the per-cycle summary."""

from __future__ import annotations

import numpy as np
import pybamm

from sim.cell import CellSpec

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


def output_columns(solution: pybamm.Solution, cell: CellSpec, capacity_Ah: float) -> dict[str, np.ndarray]:
    """Time series with PyBaMM names and SI units; duplicate times at step boundaries are
    dropped (keeping the value after the boundary) so time is strictly increasing."""
    columns = {}
    for variable, column in OUTPUT_VARIABLES.items():
        values = _values(solution, variable)
        if values is not None and values.shape == solution.t.shape:
            columns[column] = values
    keep = np.append(np.diff(columns["Time [s]"]) > 0, True)
    columns = {name: values[keep] for name, values in columns.items()}
    columns["Ambient temperature [K]"] = np.full(keep.sum(), cell.ambient_temperature_K)
    columns["State of charge"] = cell.initial_soc - columns["Discharge capacity [A.h]"] / capacity_Ah
    return columns


def cycle_summary(solution: pybamm.Solution, tags: list[str]) -> dict[str, np.ndarray]:
    """One row per solved experiment cycle: tag, times, capacities, energy, ageing states at
    the end of the cycle, and the 10 s discharge-pulse resistance where the cycle has pulses."""
    cycles = solution.cycles if solution.cycles else [solution]
    rows = [_cycle_row(index, tag, cycle) for index, (tag, cycle) in enumerate(zip(tags, cycles))]
    names = rows[0].keys() if rows else ["Cycle number", "Tag"]
    return {name: np.array([row[name] for row in rows]) for name in names}


def _cycle_row(index: int, tag: str, cycle: pybamm.Solution) -> dict:
    time_s, current, voltage = (_values(cycle, name) for name in ("Time [s]", "Current [A]", "Voltage [V]"))
    dt = np.diff(time_s)
    mid_current = 0.5 * (current[1:] + current[:-1])
    mid_power = 0.5 * (current[1:] * voltage[1:] + current[:-1] * voltage[:-1])
    row = {
        "Cycle number": index + 1,
        "Tag": tag,
        "Start time [s]": float(time_s[0]),
        "End time [s]": float(time_s[-1]),
        "Discharge capacity [A.h]": float(np.sum(np.clip(mid_current, 0, None) * dt) / 3600.0),
        "Charge capacity [A.h]": float(np.sum(np.clip(-mid_current, 0, None) * dt) / 3600.0),
        "Discharge energy [W.h]": float(np.sum(np.clip(mid_power, 0, None) * dt) / 3600.0),
        "Minimum voltage [V]": float(voltage.min()),
        "Maximum voltage [V]": float(voltage.max()),
        "Pulse resistance [Ohm]": _pulse_resistance(cycle),
    }
    for name in AGEING_COLUMNS:
        values = _values(cycle, name)
        row[name] = float(values[-1]) if values is not None else float("nan")
    return row


def _pulse_resistance(cycle: pybamm.Solution, pulse_s: float = 60.0) -> float:
    """Mean 10 s-style discharge-pulse resistance (V before - V at pulse end) / I over the
    short discharge steps that start from rest; NaN when the cycle has none."""
    resistances = []
    steps = [step for step in getattr(cycle, "steps", None) or []
             if not isinstance(step, pybamm.EmptySolution)]
    for before, step in zip(steps[:-1], steps[1:]):
        current = _values(step, "Current [A]")
        duration = step.t[-1] - step.t[0]
        previous_current = _values(before, "Current [A]")
        if duration > pulse_s or current.mean() <= 0 or abs(previous_current[-1]) > 1e-6:
            continue
        resting_voltage = _values(before, "Voltage [V]")[-1]
        resistances.append((resting_voltage - _values(step, "Voltage [V]")[-1]) / current.mean())
    return float(np.mean(resistances)) if resistances else float("nan")
