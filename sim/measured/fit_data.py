"""What a calibration fits against, and how far a cell is from it: a measured record as a model
drive and a voltage target (:func:`fit_data`, block-averaged onto a coarse grid with the charge
exact), the voltage error of a cell on it (:func:`voltage_error`, capped so a failed solve is a
large finite cost), and the net charge of records run from full to empty
(:func:`throughput_capacity`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from pydantic import model_validator

from sim.cells import CellSpec
from sim.config import StrictModel
from sim.errors import ConfigError, DataError
from sim.measured.columns import CURRENT, TIME, VOLTAGE
from sim.measured.loader import MeasuredSeries
from sim.physics import Fidelity, ModelCache, simulate
from sim.protocols import CurrentTrace

# The error [V] of every sample a failed solve did not produce: far above any fitted error, so
# the optimiser backs away, yet finite, so least squares keeps working.
FAILED_ERROR_V = 1.0
DISCHARGE_CAPACITY = "Discharge capacity [A.h]"


class Bounds(StrictModel):
    """A closed interval [low, high] for one fitted value."""

    low: float
    high: float

    @model_validator(mode="after")
    def _ordered(self) -> "Bounds":
        if not self.low < self.high:
            raise ValueError(f"low ({self.low}) must be below high ({self.high})")
        return self


@dataclass(frozen=True)
class FitData:
    """A measured record on a grid: the drive current and the voltage to match.

    trace: the current the model is driven with (times (n,) [s]).
    voltage_V: (n,) measured voltage at the trace times (block means on a coarse grid).
    weights: (n,) bool, the samples that count in the cost.
    """

    trace: CurrentTrace
    voltage_V: np.ndarray
    weights: np.ndarray = field(repr=False)


def fit_data(measured: MeasuredSeries, period_s: float | None = None,
             voltage_window: Bounds | None = None) -> FitData:
    """The measured record as a model drive and voltage target.

    period_s: block-average onto this grid [s] (charge exact, see module docstring; a final
        partial block is dropped); None keeps the measured samples, each interval holding
        its starting current.
    voltage_window: only samples whose measured voltage lies inside count in the cost.
    """
    time_s = measured.columns[TIME]
    current = measured.columns[CURRENT]
    voltage = measured.columns[VOLTAGE]
    if period_s is None or period_s <= _median_step(time_s):
        grid, grid_voltage = time_s, voltage
        trace = CurrentTrace(time_s, current)
    else:
        grid = np.arange(time_s[0], time_s[-1] + 1e-9, period_s)
        charge_Ah = np.interp(grid, time_s, held_integral(time_s, current)) / 3600.0
        # the block ending at grid[k] is (grid[k-1], grid[k]]; the first sample stands alone
        voltage_integral = np.interp(grid, time_s, held_integral(time_s, voltage, right=True))
        grid_voltage = np.concatenate([[voltage[0]], np.diff(voltage_integral) / np.diff(grid)])
        block_current = np.diff(charge_Ah) * 3600.0 / np.diff(grid)
        trace = CurrentTrace(grid, np.append(block_current, block_current[-1]), charge_Ah)
    weights = np.ones(len(grid), dtype=bool)
    if voltage_window is not None:
        weights = (grid_voltage >= voltage_window.low) & (grid_voltage <= voltage_window.high)
    if weights.sum() < 2:
        raise DataError(f"{measured.source}: fewer than 2 samples inside the fit voltage window "
                        f"{voltage_window}")
    return FitData(trace, grid_voltage, weights)


def _median_step(time_s: np.ndarray) -> float:
    return float(np.median(np.diff(time_s)))


def held_integral(time_s: np.ndarray, values: np.ndarray, right: bool = False) -> np.ndarray:
    """Running integral (n,) [unit x s] of ``values`` held through each sample interval: from its
    start sample (as the cycler's current) or, with ``right``, from its end sample (the voltage
    logged at the end of the interval it describes)."""
    held = values[1:] if right else values[:-1]
    return np.concatenate([[0.0], np.cumsum(held * np.diff(time_s))])


def voltage_error(cell: CellSpec, data: FitData, fidelity: Fidelity, *,
                  cache: ModelCache | None = None) -> np.ndarray:
    """Model minus measured voltage [V] at the counted samples of ``data`` (m,), capped at
    +/- :data:`FAILED_ERROR_V`, the error of every sample a failed or truncated solve did not
    produce.
    """
    trajectory = simulate(cell, data.trace, fidelity, cache=cache, voltage_cutoffs=False)
    return capped_errors(trajectory.columns.get(VOLTAGE) if trajectory.ok else None, data)


def capped_errors(model_voltage: np.ndarray | None, data: FitData) -> np.ndarray:
    """Model voltage (any length; None: the solve failed) minus ``data``'s [V] at its counted
    samples, capped at +/- FAILED_ERROR_V (the error of every sample not produced)."""
    error = np.full(len(data.voltage_V), FAILED_ERROR_V)
    if model_voltage is not None:
        produced = min(len(model_voltage), len(error))
        error[:produced] = model_voltage[:produced] - data.voltage_V[:produced]
        error[~np.isfinite(error)] = FAILED_ERROR_V
        # a model run past an exhausted electrode can answer thousands of volts: cap it so a
        # few such samples cost like failed ones instead of swamping the fit
        np.clip(error, -FAILED_ERROR_V, FAILED_ERROR_V, out=error)
    return error[data.weights]


def rmse_mV(error_V: np.ndarray) -> float:
    """Root mean squared error [mV] of voltage errors [V]."""
    return 1000.0 * float(np.sqrt(np.mean(np.square(error_V))))


def throughput_capacity(records: Sequence[MeasuredSeries]) -> float:
    """Net charge [Ah] delivered over consecutive records that together run from full to empty
    (A123 dynamic tests: script 1, then script 2, which discharges to empty).

    A record holding "Discharge capacity [A.h]" (the cycler's net charge counter, which
    integrates faster than the cycler logs) contributes that column's change; any other the
    integral of its current held through each sample interval.
    """
    if not records:
        raise ConfigError("throughput_capacity: give at least one record")
    total = 0.0
    for record in records:
        counter = record.columns.get(DISCHARGE_CAPACITY)
        if counter is not None:
            total += float(counter[-1] - counter[0])
        else:
            total += float(held_integral(record.columns[TIME], record.columns[CURRENT])[-1] / 3600.0)
    return total
