"""A trajectory cut into its phases, and the measurements the design metrics take on them:
runs of discharge, rest and charge current; the capacity and energy of a discharge to the
cut-off; pulse power capability; the first charge.

Functions read numpy arrays (time [s], current [A], discharge positive, voltage [V]).
A discharge "ran to the cut-off" (:func:`ran_to_cutoff`) when the protocol voltage (the one the
cycler's cut-offs acted on), extrapolated along its last slope, reaches the lower cut-off within
a tolerance of more charge; its capacity and energy are then read where the *scored* voltage
reaches the cut-off (:func:`discharge_to_cutoff`), interpolated between samples or extrapolated
along the last slope (at most 1.2x the discharged charge, as in
:func:`hybrid.evaluate.capacity_to_cutoff`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hybrid.evaluate import capacity_to_cutoff


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
        """From the run's first row to when it stopped [s]."""
        return self.end_s - self.start_s


def current_phases(time_s: np.ndarray, current: np.ndarray, threshold_A: float) -> list[tuple[int, int, int]]:
    """(sign, first row, stop row) of each run of discharge (+1), rest (0) or charge (-1), in order;
    |current| at or below ``threshold_A`` is rest."""
    signs = np.where(current > threshold_A, 1, np.where(current < -threshold_A, -1, 0))
    edges = np.flatnonzero(np.diff(signs)) + 1
    starts, stops = np.concatenate([[0], edges]), np.concatenate([edges, [len(signs)]])
    return [(int(signs[a]), int(a), int(b)) for a, b in zip(starts, stops)]


def phase_duration(time_s: np.ndarray, start: int, stop: int) -> float:
    """Duration [s] of the phase in rows [start, stop) of :func:`current_phases`: from its first row
    to the next phase's first row (or its own last row), as :attr:`Run.duration_s`."""
    return float(time_s[min(stop, len(time_s) - 1)] - time_s[start])


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
    ``cutoff_V`` (interpolated, or extrapolated along the last slope).

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


def ran_to_cutoff(time_s: np.ndarray, current: np.ndarray, protocol_voltage: np.ndarray, run: Run,
                  cutoff_V: float, tolerance: float) -> bool:
    """Whether discharge ``run`` ended on the cut-off ``cutoff_V`` [V]: ``protocol_voltage``,
    extrapolated along its last slope, reaches it within ``tolerance`` (a fraction) more charge."""
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
    ``voltage`` first reaches ``upper_V`` before ``protocol_voltage`` does (``charge_time_min`` in
    :mod:`hybrid.surrogate.metrics`);
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
