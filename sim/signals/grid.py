"""Validation of signals and the time grids they live on: checks that raise DataError naming
the argument and value, and the uniform grids that filtering and sampling work on.

Conventions: time in seconds as a strictly increasing 1-D array of length n; values of shape
(n,) or (n, channels) in SI units; frequencies in Hz.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from sim.errors import DataError

logger = logging.getLogger(__name__)

# Relative spread of the time steps below which a grid counts as uniform.
UNIFORM_RTOL = 1e-6


# --- validation -----------------------------------------------------------------------


def check_period(period_s: float, name: str = "period_s") -> float:
    """Return `period_s` as a float; raise DataError unless it is finite and > 0."""
    period = float(period_s)
    if not (np.isfinite(period) and period > 0.0):
        raise DataError(f"{name} = {period_s!r}: must be a positive finite number of seconds")
    return period


def check_time(time_s: np.ndarray | Sequence[float]) -> np.ndarray:
    """Return `time_s` as a float array; raise DataError unless 1-D, finite, strictly increasing, n >= 2."""
    time = np.asarray(time_s, dtype=float)
    if time.ndim != 1 or time.size < 2:
        raise DataError(f"time_s has shape {time.shape}: expected a 1-D array of at least 2 samples")
    bad = np.flatnonzero(~np.isfinite(time))
    if bad.size:
        raise DataError(f"time_s[{bad[0]}] = {time[bad[0]]}: times must be finite")
    steps = np.diff(time)
    bad = np.flatnonzero(steps <= 0.0)
    if bad.size:
        i = bad[0]
        raise DataError(
            f"time_s must be strictly increasing; got time_s[{i + 1}] = {time[i + 1]} "
            f"after time_s[{i}] = {time[i]}"
        )
    return time


def check_series(
    time_s: np.ndarray | Sequence[float], values: np.ndarray | Sequence[float]
) -> tuple[np.ndarray, np.ndarray]:
    """Validate a (time, values) pair; return time (n,) and values as 2-D (n, channels)."""
    time = check_time(time_s)
    data = np.asarray(values, dtype=float)
    if data.ndim not in (1, 2) or data.shape[0] != time.size:
        raise DataError(
            f"values has shape {data.shape}: expected ({time.size},) or ({time.size}, channels) "
            f"to match time_s"
        )
    bad = np.argwhere(~np.isfinite(data))
    if bad.size:
        index = tuple(int(i) for i in bad[0])
        raise DataError(f"values{list(index)} = {data[index]}: values must be finite (no NaN or inf)")
    return time, data.reshape(time.size, -1)


def check_frequency(frequency_hz: float, name: str = "frequency_hz") -> float:
    """Return `frequency_hz` as a float; raise DataError unless finite and >= 0."""
    frequency = float(frequency_hz)
    if not (np.isfinite(frequency) and frequency >= 0.0):
        raise DataError(f"{name} = {frequency_hz!r}: must be a finite frequency >= 0 Hz")
    return frequency


def check_tones(tones: Sequence[tuple[float, float, float]]) -> np.ndarray:
    """Return tones as an array (n_tones, 3) of (frequency [Hz], amplitude, phase [rad])."""
    rows = []
    for i, tone in enumerate(tones):
        if len(tone) != 3 or not np.all(np.isfinite(np.asarray(tone, dtype=float))):
            raise DataError(
                f"tones[{i}] = {tone!r}: expected a finite (frequency_hz, amplitude, phase_rad) triple"
            )
        check_frequency(tone[0], name=f"tones[{i}] frequency")
        rows.append([float(part) for part in tone])
    return np.asarray(rows, dtype=float).reshape(-1, 3)


# --- grids ----------------------------------------------------------------------------


def uniform_grid(time: np.ndarray, data: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Put validated data (n, channels) on a uniform grid; return (time, data, step [s]).

    A uniform input is returned unchanged; an irregular one is interpolated linearly onto
    t0, t0 + h, ... <= t_end with h the median input step.
    """
    steps = np.diff(time)
    step = float(np.median(steps))
    if np.all(np.abs(steps - step) <= UNIFORM_RTOL * step):
        return time, data, step
    logger.debug("irregular time grid: interpolating %d samples onto a %.3g s grid", time.size, step)
    fine_time = sample_instants(time[0], time[-1], step)
    return fine_time, interp_rows(fine_time, time, data), step


def sample_instants(start_s: float, end_s: float, period_s: float) -> np.ndarray:
    """Uniform instants start, start + period, ... <= end [s] (end included up to rounding)."""
    count = int(np.floor((end_s - start_s) / period_s + 1e-9)) + 1
    return start_s + period_s * np.arange(count)


def interp_rows(new_time: np.ndarray, time: np.ndarray, data: np.ndarray) -> np.ndarray:
    """Linear interpolation of every column of `data` (n, channels) at `new_time`."""
    return np.column_stack([np.interp(new_time, time, column) for column in data.T])


def restore_shape(data: np.ndarray, ndim: int) -> np.ndarray:
    """Return (n, channels) data as (n,) when the caller passed 1-D values."""
    return data[:, 0] if ndim == 1 else data
