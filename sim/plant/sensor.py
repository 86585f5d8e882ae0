"""Sensor model of the synthetic plant: what a cycler or BMS would record of a simulated cell.

The acquisition chain for each channel, in order:

    true signal (slow signal + converter ripple)
      -> analog anti-alias filter (optional)
      -> sampler at the trajectory's own instants
      -> gain error and offset (drawn once per sample)
      -> white noise
      -> ADC quantisation (round to the resolution step)

Assumptions, stated once:

- The trajectory's time grid is the sampler's grid, and it is not uniform: the simulator logs
  coarsely during long steps (e.g. every 120 s) and finely during pulses (every 1 s). The
  anti-alias filter at each instant is taken as designed for the local sampling period, the
  spacing to the previous instant.
- The slow electrochemical content is band-limited relative to every local sampling rate, so
  it passes the filter unchanged and is not filtered here (the filter's group delay on current
  steps, about a sampling period, is neglected).
- Only the ripple tones are fast. :func:`sim.physics.simulate.add_ripple` writes them into the columns
  as an unfiltered point sampler sees them (aliased). :func:`measure` removes them exactly and,
  with the filter on, adds back their steady-state filtered version |H(f)| A sin(2 pi f t +
  phase + angle H(f)); start-up transients where the converter switches on or off are ignored.
- Offsets and gain errors act on voltage and current; temperature gets noise and quantisation
  only. The sampler's time stamps are exact.
"""

from __future__ import annotations

import numpy as np
from pydantic import Field

from sim.config import StrictModel
from sim.errors import DataError
from sim.signals import AntiAliasFilter, check_time, lowpass_gain

TIME = "Time [s]"
CURRENT = "Current [A]"
VOLTAGE = "Voltage [V]"
TEMPERATURE = "Cell temperature [K]"

# add_ripple's threshold: the converter idles (no ripple) where |current| <= this [A].
_IDLE_CURRENT_A = 1e-6
_RIPPLE_KEYS = ("frequency_hz", "current_amplitude_A", "voltage_amplitude_V", "phase_rad")


class SensorSpec(StrictModel):
    """Errors of the voltage, current and temperature sensors and their acquisition chain.

    All per-sample random quantities (offsets, gain errors, noise) are drawn from the rng the
    caller passes, which is seeded per sample. Standard deviations and steps are in the
    channel's SI unit; gain errors are relative (0.001 = 0.1 %). A resolution of 0 turns
    quantisation off.
    """

    voltage_noise_V: float = Field(0.5e-3, ge=0.0)
    current_noise_A: float = Field(5e-3, ge=0.0)
    temperature_noise_K: float = Field(0.05, ge=0.0)
    voltage_offset_sd_V: float = Field(1e-3, ge=0.0)
    current_offset_sd_A: float = Field(5e-3, ge=0.0)
    voltage_gain_error_sd: float = Field(2e-4, ge=0.0)
    current_gain_error_sd: float = Field(5e-4, ge=0.0)
    voltage_resolution_V: float = Field(1e-4, ge=0.0)
    current_resolution_A: float = Field(1e-3, ge=0.0)
    temperature_resolution_K: float = Field(0.01, ge=0.0)
    anti_alias: bool = True
    filter_order: int = Field(4, ge=1)
    filter_cutoff_fraction: float = Field(0.8, gt=0.0, le=1.0)  # of each local Nyquist frequency

    @property
    def anti_alias_filter(self) -> AntiAliasFilter:
        return AntiAliasFilter(order=self.filter_order, cutoff_fraction=self.filter_cutoff_fraction)


def measure(
    columns: dict[str, np.ndarray],
    spec: SensorSpec,
    rng: np.random.Generator,
    ripple: dict | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """Sensor readings of a simulated trajectory's columns.

    Args:
        columns: "Time [s]" (n,) strictly increasing, "Current [A]" (n,), "Voltage [V]" (n,),
            optionally "Cell temperature [K]" (n,), plus any other columns.
        spec: sensor errors and anti-alias filter.
        rng: generator seeded for this sample; draws happen in a fixed order (offsets and
            gains, then voltage, current and temperature noise) whatever the spec's values.
        ripple: the tone dict returned by :func:`sim.physics.simulate.add_ripple` (stored in
            ``trajectory.metadata["ripple"]``) when the columns carry converter ripple.

    Returns:
        (measured columns with the same names: only current, voltage and cell temperature
        are altered, the others are copies; the drawn per-sample values "voltage_offset_V",
        "current_offset_A", "voltage_gain_error", "current_gain_error").
    """
    for name in (TIME, CURRENT, VOLTAGE):
        if name not in columns:
            raise DataError(f"columns lack {name!r}: measure needs {TIME!r}, {CURRENT!r} and {VOLTAGE!r}")
    sizes = {name: np.shape(values) for name, values in columns.items()}
    if len(set(sizes.values())) != 1:
        raise DataError(f"columns differ in shape: {sizes}; every column needs one value per time instant")
    time_s = check_time(columns[TIME])
    current = np.asarray(columns[CURRENT], dtype=float)
    voltage = np.asarray(columns[VOLTAGE], dtype=float)
    if ripple is not None:
        current, voltage = _resample_ripple(time_s, current, voltage, ripple, spec)

    drawn = {
        "voltage_offset_V": spec.voltage_offset_sd_V * rng.standard_normal(),
        "current_offset_A": spec.current_offset_sd_A * rng.standard_normal(),
        "voltage_gain_error": spec.voltage_gain_error_sd * rng.standard_normal(),
        "current_gain_error": spec.current_gain_error_sd * rng.standard_normal(),
    }
    measured = {name: np.array(values, copy=True) for name, values in columns.items()}
    measured[VOLTAGE] = _digitise(
        (1.0 + drawn["voltage_gain_error"]) * voltage + drawn["voltage_offset_V"],
        spec.voltage_noise_V, spec.voltage_resolution_V, rng,
    )
    measured[CURRENT] = _digitise(
        (1.0 + drawn["current_gain_error"]) * current + drawn["current_offset_A"],
        spec.current_noise_A, spec.current_resolution_A, rng,
    )
    if TEMPERATURE in columns:
        measured[TEMPERATURE] = _digitise(
            np.asarray(columns[TEMPERATURE], dtype=float),
            spec.temperature_noise_K, spec.temperature_resolution_K, rng,
        )
    return measured, {name: float(value) for name, value in drawn.items()}


def _local_sample_periods(time_s: np.ndarray) -> np.ndarray:
    """Sampling period [s] in force at each instant (n,): the spacing to the previous instant
    (the first instant takes the spacing to the second). Needs n >= 2, strictly increasing."""
    steps = np.diff(time_s)
    return np.concatenate([steps[:1], steps])


def _resample_ripple(
    time_s: np.ndarray, current: np.ndarray, voltage: np.ndarray, ripple: dict, spec: SensorSpec
) -> tuple[np.ndarray, np.ndarray]:
    """Replace add_ripple's point-sampled tone by what the acquisition chain passes.

    Returns (current, voltage) (n,) holding the clean signal plus the tone as sampled:
    through the anti-alias filter at each local period when it is on, point-sampled
    (aliased, i.e. the input unchanged) when it is off.
    """
    missing = [key for key in _RIPPLE_KEYS if key not in ripple]
    if missing:
        raise DataError(f"ripple lacks {', '.join(missing)}: expected the dict returned by sim.physics.simulate.add_ripple")
    if not spec.anti_alias:
        return current, voltage
    frequency_hz = float(ripple["frequency_hz"])
    phase_rad = float(ripple["phase_rad"])
    # add_ripple leaves resting samples untouched (|I| <= 1 uA) and adds the tone to the others,
    # so the column's own magnitude tells them apart, except where the ripple happens to cancel
    # the current to within 1 uA at an instant: a coincidence of measure zero.
    flowing = np.abs(current) > _IDLE_CURRENT_A
    # Same expression as add_ripple, so the removal cancels to the last bit.
    point_tone = np.sin(2 * np.pi * frequency_hz * time_s + phase_rad) * flowing
    gain = _filter_gain(frequency_hz, _local_sample_periods(time_s), spec.anti_alias_filter)
    filtered_tone = np.abs(gain) * np.sin(2 * np.pi * frequency_hz * time_s + phase_rad + np.angle(gain)) * flowing
    tone_change = filtered_tone - point_tone
    current = current + float(ripple["current_amplitude_A"]) * tone_change
    # the voltage echoes the current ripple with opposite sign (ohmic drop on discharge)
    voltage = voltage - float(ripple["voltage_amplitude_V"]) * tone_change
    return current, voltage


def _filter_gain(frequency_hz: float, periods_s: np.ndarray, filt: AntiAliasFilter) -> np.ndarray:
    """Complex gain (n,) at `frequency_hz` of the filter designed for each period in `periods_s`.

    A Butterworth response depends on f / f_corner only and f_corner is proportional to
    1 / period, so H(f; T) = H(f * T / 1 s; 1 s): one vectorised call covers every period.
    """
    return lowpass_gain(frequency_hz * periods_s, 1.0, filt)


def _digitise(values: np.ndarray, noise_sd: float, resolution: float, rng: np.random.Generator) -> np.ndarray:
    """Add white noise of standard deviation `noise_sd`, then round to multiples of `resolution` (0 = no rounding)."""
    # drawn even when noise_sd is 0 so the rng stream does not depend on the spec's values
    noisy = values + noise_sd * rng.standard_normal(values.shape)
    if resolution == 0.0:
        return noisy
    return np.round(noisy / resolution) * resolution
