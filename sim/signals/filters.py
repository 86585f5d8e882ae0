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

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import signal

from sim.errors import ConfigError, DataError
from sim.signals.grid import (UNIFORM_RTOL, check_frequency, check_period, check_series, check_tones, interp_rows,
                              restore_shape, sample_instants, uniform_grid)




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
    period = check_period(sample_period_s, "sample_period_s")
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
    time, data = check_series(time_s, values)
    period = check_period(period_s)
    fine_time, fine_data, step = uniform_grid(time, data)
    if anti_alias and period > step:
        fine_data = _zero_phase_lowpass(fine_data, filt.cutoff_hz(period), step, filt)
    new_time = sample_instants(time[0], time[-1], period)
    return new_time, restore_shape(interp_rows(new_time, fine_time, fine_data), np.ndim(values))


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
    time, data = check_series(time_s, values)
    new_nyquist_hz = 0.5 / check_period(period_s)
    _, uniform_data, step = uniform_grid(time, data)
    frequency, power = signal.periodogram(
        uniform_data, fs=1.0 / step, window="hann", detrend="constant", axis=0
    )
    total = power.sum(axis=0)
    # The tolerance keeps the input's own Nyquist bin out when period_s equals the input step.
    above = power[frequency > new_nyquist_hz * (1.0 + UNIFORM_RTOL)].sum(axis=0)
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
    time, data = check_series(time_s, values)
    period = check_period(period_s)
    tone_table = check_tones(tones)
    fine_time, fine_data, step = uniform_grid(time, data)
    if anti_alias:
        cutoff_hz = filt.cutoff_hz(period)
        if cutoff_hz >= 0.5 / step:
            raise DataError(
                f"time_s step = {step:.4g} s is too coarse for sample_sensor with period_s = {period:.4g} s: "
                f"the filter corner {cutoff_hz:.4g} Hz must lie below the input Nyquist frequency "
                f"{0.5 / step:.4g} Hz; pass a finer input grid"
            )
        fine_data = _causal_lowpass(fine_data, cutoff_hz, step, filt)
    sample_time = sample_instants(time[0], time[-1], period)
    samples = interp_rows(sample_time, fine_time, fine_data)
    samples += _tone_signal(sample_time, tone_table, period, filt if anti_alias else None)[:, None]
    return sample_time, restore_shape(samples, np.ndim(values))


def alias_frequency(frequency_hz: float, sample_period_s: float) -> float:
    """Frequency [Hz] at which a tone of `frequency_hz` appears after sampling at 1/sample_period_s.

    The result is |f - round(f/fs)*fs|, in [0, fs/2].
    """
    frequency = check_frequency(frequency_hz)
    sample_rate = 1.0 / check_period(sample_period_s, "sample_period_s")
    return float(abs(frequency - np.round(frequency / sample_rate) * sample_rate))


def tone_amplitude(time_s: np.ndarray, values: np.ndarray, frequency_hz: float) -> float:
    """Amplitude of the sinusoidal component at frequency_hz in a sampled 1-D signal.

    Least-squares fit of a*sin(2*pi*f*t) + b*cos(2*pi*f*t) + c; returns hypot(a, b), in the
    units of `values`. Used to measure aliasing and filter attenuation; the record should
    span several periods of the tone.
    """
    time, data = check_series(time_s, values)
    if data.shape[1] != 1:
        raise DataError(f"values has shape {np.shape(values)}: tone_amplitude needs a 1-D signal")
    frequency = check_frequency(frequency_hz)
    if frequency == 0.0:
        raise DataError("frequency_hz = 0.0: a tone needs a frequency > 0 Hz")
    angle = 2.0 * np.pi * frequency * time
    design = np.column_stack([np.sin(angle), np.cos(angle), np.ones_like(time)])
    (sin_coef, cos_coef, _), *_ = np.linalg.lstsq(design, data[:, 0], rcond=None)
    return float(np.hypot(sin_coef, cos_coef))
