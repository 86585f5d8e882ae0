"""Sampling, anti-aliasing, resampling and Nyquist checks for simulated signals.

Simulations produce signals on fine (often irregular) time grids; cyclers and battery
management systems see them through an anti-alias filter and a sampler. This module
provides both views:

- :func:`resample` — offline resampling onto a uniform grid with a zero-phase low-pass
  (what a post-processing script would do);
- :func:`sample_sensor` — a causal acquisition chain (analog Butterworth, then point
  sampling), with fast ripple tones added analytically;
- :func:`nyquist_content` / :func:`check_nyquist` — how much of a signal's power a
  sampling period would alias.

Conventions: time in seconds as a strictly increasing 1-D array of length n; values of
shape (n,) or (n, channels) in SI units; frequencies in Hz.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import signal

from sim.errors import ConfigError, DataError

logger = logging.getLogger(__name__)

# Relative spread of the time steps below which a grid counts as uniform.
_UNIFORM_RTOL = 1e-6


class AliasingWarning(UserWarning):
    """A signal holds more power above the new Nyquist frequency than allowed."""


@dataclass(frozen=True)
class AntiAliasFilter:
    """Analog-style low-pass before a sampler: Butterworth of `order`, corner at cutoff_fraction * (fs/2).

    Attributes:
        order: filter order (number of poles), >= 1.
        cutoff_fraction: corner frequency as a fraction of the Nyquist frequency fs/2 of
            the target sampling rate, in (0, 1].
    """

    order: int = 4
    cutoff_fraction: float = 0.8

    def __post_init__(self) -> None:
        if isinstance(self.order, bool) or not isinstance(self.order, int) or self.order < 1:
            raise ConfigError(f"AntiAliasFilter.order = {self.order!r}: must be an integer >= 1")
        if not (np.isfinite(self.cutoff_fraction) and 0.0 < self.cutoff_fraction <= 1.0):
            raise ConfigError(
                f"AntiAliasFilter.cutoff_fraction = {self.cutoff_fraction!r}: must lie in (0, 1]"
            )

    def cutoff_hz(self, sample_period_s: float) -> float:
        """Corner frequency [Hz] for sampling every `sample_period_s` seconds."""
        return self.cutoff_fraction * 0.5 / sample_period_s


# --- validation -----------------------------------------------------------------------


def _check_period(period_s: float, name: str = "period_s") -> float:
    """Return `period_s` as a float; raise DataError unless it is finite and > 0."""
    period = float(period_s)
    if not (np.isfinite(period) and period > 0.0):
        raise DataError(f"{name} = {period_s!r}: must be a positive finite number of seconds")
    return period


def _check_time(time_s: np.ndarray | Sequence[float]) -> np.ndarray:
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


def _check_series(
    time_s: np.ndarray | Sequence[float], values: np.ndarray | Sequence[float]
) -> tuple[np.ndarray, np.ndarray]:
    """Validate a (time, values) pair; return time (n,) and values as 2-D (n, channels)."""
    time = _check_time(time_s)
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


def _check_frequency(frequency_hz: float, name: str = "frequency_hz") -> float:
    """Return `frequency_hz` as a float; raise DataError unless finite and >= 0."""
    frequency = float(frequency_hz)
    if not (np.isfinite(frequency) and frequency >= 0.0):
        raise DataError(f"{name} = {frequency_hz!r}: must be a finite frequency >= 0 Hz")
    return frequency


def _check_tones(tones: Sequence[tuple[float, float, float]]) -> np.ndarray:
    """Return tones as an array (n_tones, 3) of (frequency [Hz], amplitude, phase [rad])."""
    rows = []
    for i, tone in enumerate(tones):
        if len(tone) != 3 or not np.all(np.isfinite(np.asarray(tone, dtype=float))):
            raise DataError(
                f"tones[{i}] = {tone!r}: expected a finite (frequency_hz, amplitude, phase_rad) triple"
            )
        _check_frequency(tone[0], name=f"tones[{i}] frequency")
        rows.append([float(part) for part in tone])
    return np.asarray(rows, dtype=float).reshape(-1, 3)


# --- grids ----------------------------------------------------------------------------


def _uniform_grid(time: np.ndarray, data: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Put validated data (n, channels) on a uniform grid; return (time, data, step [s]).

    A uniform input is returned unchanged; an irregular one is interpolated linearly onto
    t0, t0 + h, ... <= t_end with h the median input step.
    """
    steps = np.diff(time)
    step = float(np.median(steps))
    if np.all(np.abs(steps - step) <= _UNIFORM_RTOL * step):
        return time, data, step
    logger.debug("irregular time grid: interpolating %d samples onto a %.3g s grid", time.size, step)
    fine_time = _sample_instants(time[0], time[-1], step)
    return fine_time, _interp_rows(fine_time, time, data), step


def _sample_instants(start_s: float, end_s: float, period_s: float) -> np.ndarray:
    """Uniform instants start, start + period, ... <= end [s] (end included up to rounding)."""
    count = int(np.floor((end_s - start_s) / period_s + 1e-9)) + 1
    return start_s + period_s * np.arange(count)


def _interp_rows(new_time: np.ndarray, time: np.ndarray, data: np.ndarray) -> np.ndarray:
    """Linear interpolation of every column of `data` (n, channels) at `new_time`."""
    return np.column_stack([np.interp(new_time, time, column) for column in data.T])


def _restore_shape(data: np.ndarray, ndim: int) -> np.ndarray:
    """Return (n, channels) data as (n,) when the caller passed 1-D values."""
    return data[:, 0] if ndim == 1 else data


# --- filters --------------------------------------------------------------------------


def lowpass_gain(
    frequency_hz: np.ndarray | float,
    sample_period_s: float,
    filt: AntiAliasFilter = AntiAliasFilter(),
) -> np.ndarray:
    """Complex frequency response H(j*2*pi*f) of the analog Butterworth anti-alias filter designed for sampling at 1/sample_period_s.

    Args:
        frequency_hz: frequencies f [Hz], any shape.
        sample_period_s: sampling period the filter protects [s].
        filt: filter order and corner.

    Returns:
        Complex gain, same shape as `frequency_hz` (|H| = 1 at DC, 1/sqrt(2) at the corner).
    """
    period = _check_period(sample_period_s, "sample_period_s")
    frequency = np.asarray(frequency_hz, dtype=float)
    if not np.all(np.isfinite(frequency)):
        raise DataError(f"frequency_hz = {frequency_hz!r}: frequencies must be finite")
    corner_rad_s = 2.0 * np.pi * filt.cutoff_hz(period)
    zeros, poles, gain = signal.butter(filt.order, corner_rad_s, analog=True, output="zpk")
    _, response = signal.freqs_zpk(zeros, poles, gain, worN=2.0 * np.pi * frequency.ravel())
    return response.reshape(frequency.shape)


def _digital_lowpass(cutoff_hz: float, step_s: float, filt: AntiAliasFilter) -> np.ndarray:
    """Butterworth second-order sections on a grid of step `step_s` (bilinear, corner pre-warped)."""
    return signal.butter(filt.order, cutoff_hz, btype="low", fs=1.0 / step_s, output="sos")


def _zero_phase_lowpass(data: np.ndarray, cutoff_hz: float, step_s: float, filt: AntiAliasFilter) -> np.ndarray:
    """Forward-backward Butterworth along axis 0 of (n, channels) data: no delay, gain |H|^2."""
    sos = _digital_lowpass(cutoff_hz, step_s, filt)
    # scipy's default edge padding needs more samples than a short record may have.
    default_padlen = 3 * (2 * len(sos) + 1)
    return signal.sosfiltfilt(sos, data, axis=0, padlen=min(default_padlen, data.shape[0] - 1))


def _causal_lowpass(data: np.ndarray, cutoff_hz: float, step_s: float, filt: AntiAliasFilter) -> np.ndarray:
    """Causal Butterworth along axis 0 of (n, channels) data, started in steady state at data[0]."""
    sos = _digital_lowpass(cutoff_hz, step_s, filt)
    # A sensor that has been powered for a while: no start-up transient from a zero state.
    initial_state = signal.sosfilt_zi(sos)[:, :, None] * data[0][None, None, :]
    filtered, _ = signal.sosfilt(sos, data, axis=0, zi=initial_state)
    return filtered


def _tone_signal(
    time_s: np.ndarray, tone_table: np.ndarray, period_s: float, filt: AntiAliasFilter | None
) -> np.ndarray:
    """Sum of steady-state tones (n_tones, 3) at `time_s` (m,), through `filt` when given."""
    total = np.zeros_like(time_s)
    for frequency, amplitude, phase in tone_table:
        gain = lowpass_gain(frequency, period_s, filt) if filt is not None else 1.0 + 0.0j
        total += amplitude * np.abs(gain) * np.sin(2.0 * np.pi * frequency * time_s + phase + np.angle(gain))
    return total


# --- public API -----------------------------------------------------------------------


def resample(
    time_s: np.ndarray,
    values: np.ndarray,
    period_s: float,
    *,
    anti_alias: bool = True,
    filt: AntiAliasFilter = AntiAliasFilter(),
) -> tuple[np.ndarray, np.ndarray]:
    """Offline resampling onto the uniform grid t0, t0 + period_s, ... <= t_end.

    Irregular input is first interpolated linearly onto a uniform grid at the median input
    step. When downsampling with `anti_alias`, a zero-phase Butterworth low-pass
    (sosfiltfilt, so the effective gain is |H|^2 of `filt`, with no delay) is applied before
    the output instants are read off by linear interpolation; upsampling needs no filter.

    Args:
        time_s: input times (n,) [s], strictly increasing.
        values: input values (n,) or (n, channels).
        period_s: output sampling period [s].
        anti_alias: low-pass before decimating.
        filt: order and corner (fraction of the new Nyquist frequency) of the low-pass.

    Returns:
        (new_time (m,) [s], new_values (m,) or (m, channels)).
    """
    time, data = _check_series(time_s, values)
    period = _check_period(period_s)
    fine_time, fine_data, step = _uniform_grid(time, data)
    if anti_alias and period > step:
        fine_data = _zero_phase_lowpass(fine_data, filt.cutoff_hz(period), step, filt)
    new_time = _sample_instants(time[0], time[-1], period)
    return new_time, _restore_shape(_interp_rows(new_time, fine_time, fine_data), np.ndim(values))


def nyquist_content(time_s: np.ndarray, values: np.ndarray, period_s: float) -> float:
    """Fraction (0..1) of the signal's AC power (mean removed) lying above the Nyquist frequency 1/(2*period_s).

    Estimated with a Hann-windowed periodogram on the input grid (irregular grids are first
    interpolated linearly onto a uniform one). For (n, channels) values the worst channel
    is reported. A constant signal, or a period whose Nyquist frequency is at or above the
    input's own, gives 0.

    Args:
        time_s: input times (n,) [s].
        values: input values (n,) or (n, channels).
        period_s: sampling period under consideration [s].

    Returns:
        Fraction of AC power above 1/(2*period_s), in [0, 1].
    """
    time, data = _check_series(time_s, values)
    new_nyquist_hz = 0.5 / _check_period(period_s)
    _, uniform_data, step = _uniform_grid(time, data)
    frequency, power = signal.periodogram(
        uniform_data, fs=1.0 / step, window="hann", detrend="constant", axis=0
    )
    total = power.sum(axis=0)
    # The tolerance keeps the input's own Nyquist bin out when period_s equals the input step.
    above = power[frequency > new_nyquist_hz * (1.0 + _UNIFORM_RTOL)].sum(axis=0)
    fractions = np.divide(above, total, out=np.zeros_like(total), where=total > 0.0)
    return float(np.clip(fractions.max(), 0.0, 1.0))


def check_nyquist(
    time_s: np.ndarray,
    values: np.ndarray,
    period_s: float,
    *,
    name: str = "signal",
    threshold: float = 0.01,
) -> float:
    """nyquist_content(...); warn AliasingWarning when the fraction exceeds `threshold`.

    Args:
        time_s, values, period_s: as for :func:`nyquist_content`.
        name: signal name used in the warning, e.g. "Current [A]".
        threshold: largest acceptable fraction of AC power above fs/2, in [0, 1].

    Returns:
        The fraction of AC power above 1/(2*period_s).
    """
    if not (np.isfinite(threshold) and 0.0 <= threshold <= 1.0):
        raise ConfigError(f"threshold = {threshold!r}: must be a fraction in [0, 1]")
    fraction = nyquist_content(time_s, values, period_s)
    if fraction > threshold:
        warnings.warn(
            f"{name}: {fraction:.1%} of its AC power lies above the new Nyquist frequency "
            f"fs/2 = {0.5 / float(period_s):.4g} Hz (threshold {threshold:.1%}); sampling every "
            f"{float(period_s):.4g} s will alias it — use resample(..., anti_alias=True) or a shorter period",
            AliasingWarning,
            stacklevel=2,
        )
    return fraction


def sample_sensor(
    time_s: np.ndarray,
    values: np.ndarray,
    period_s: float,
    *,
    anti_alias: bool = True,
    filt: AntiAliasFilter = AntiAliasFilter(),
    tones: Sequence[tuple[float, float, float]] = (),
) -> tuple[np.ndarray, np.ndarray]:
    """Emulate an acquisition chain: optional causal analog anti-alias filter, then point sampling.

    The slow signal `values`, given on a fine grid, is filtered causally by the Butterworth
    discretised on that grid (bilinear transform, corner pre-warped; started in steady state
    at values[0]) and read off at t0, t0 + period_s, ... <= t_end by linear interpolation.
    Each tone (frequency_hz, amplitude, phase_rad) is added analytically to every channel as
    amplitude * |H(f)| * sin(2*pi*f*t + phase + angle H(f)), with H from :func:`lowpass_gain`
    (H = 1 without the filter). This represents fast ripple exactly without a kHz grid;
    unfiltered, a tone above fs/2 shows up at :func:`alias_frequency`.

    Args:
        time_s: fine input times (n,) [s]; irregular grids are interpolated onto a uniform one.
        values: slow signal (n,) or (n, channels).
        period_s: sampling period [s]; with `anti_alias`, must exceed cutoff_fraction times
            the input step so the filter corner lies below the fine grid's Nyquist frequency.
        anti_alias: apply the analog anti-alias filter before sampling.
        filt: order and corner (fraction of fs/2) of the filter.
        tones: sinusoids added to the continuous signal, t in absolute time_s seconds.

    Returns:
        (sample_time (m,) [s], samples (m,) or (m, channels)).
    """
    time, data = _check_series(time_s, values)
    period = _check_period(period_s)
    tone_table = _check_tones(tones)
    fine_time, fine_data, step = _uniform_grid(time, data)
    if anti_alias:
        cutoff_hz = filt.cutoff_hz(period)
        if cutoff_hz >= 0.5 / step:
            raise DataError(
                f"time_s step = {step:.4g} s is too coarse for sample_sensor with period_s = {period:.4g} s: "
                f"the filter corner {cutoff_hz:.4g} Hz must lie below the input Nyquist frequency "
                f"{0.5 / step:.4g} Hz; pass a finer input grid"
            )
        fine_data = _causal_lowpass(fine_data, cutoff_hz, step, filt)
    sample_time = _sample_instants(time[0], time[-1], period)
    samples = _interp_rows(sample_time, fine_time, fine_data)
    samples += _tone_signal(sample_time, tone_table, period, filt if anti_alias else None)[:, None]
    return sample_time, _restore_shape(samples, np.ndim(values))


def alias_frequency(frequency_hz: float, sample_period_s: float) -> float:
    """Frequency [Hz] at which a tone of `frequency_hz` appears after sampling at 1/sample_period_s.

    The result is |f - round(f/fs)*fs|, in [0, fs/2].
    """
    frequency = _check_frequency(frequency_hz)
    sample_rate = 1.0 / _check_period(sample_period_s, "sample_period_s")
    return float(abs(frequency - np.round(frequency / sample_rate) * sample_rate))


def tone_amplitude(time_s: np.ndarray, values: np.ndarray, frequency_hz: float) -> float:
    """Amplitude of the sinusoidal component at frequency_hz in a sampled 1-D signal.

    Least-squares fit of a*sin(2*pi*f*t) + b*cos(2*pi*f*t) + c; returns hypot(a, b), in the
    units of `values`. Used to measure aliasing and filter attenuation; the record should
    span several periods of the tone.
    """
    time, data = _check_series(time_s, values)
    if data.shape[1] != 1:
        raise DataError(f"values has shape {np.shape(values)}: tone_amplitude needs a 1-D signal")
    frequency = _check_frequency(frequency_hz)
    if frequency == 0.0:
        raise DataError("frequency_hz = 0.0: a tone needs a frequency > 0 Hz")
    angle = 2.0 * np.pi * frequency * time
    design = np.column_stack([np.sin(angle), np.cos(angle), np.ones_like(time)])
    (sin_coef, cos_coef, _), *_ = np.linalg.lstsq(design, data[:, 0], rcond=None)
    return float(np.hypot(sin_coef, cos_coef))
