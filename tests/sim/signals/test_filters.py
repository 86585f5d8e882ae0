"""Numerical facts about sim.signals.filters: resampling accuracy, aliasing, filter attenuation."""

import warnings

import numpy as np
import pytest

from sim.errors import ConfigError, DataError
from sim.signals.filters import (
    AliasingWarning,
    AntiAliasFilter,
    alias_frequency,
    check_nyquist,
    lowpass_gain,
    nyquist_content,
    resample,
    sample_sensor,
    tone_amplitude,
)

FINE_STEP_S = 0.01  # 100 Hz simulation grid
SAMPLE_PERIOD_S = 0.1  # 10 Hz sampler, Nyquist 5 Hz
DURATION_S = 100.0
ATTENUATION_20_DB = 0.1  # amplitude ratio


def fine_time(jitter: bool = False) -> np.ndarray:
    """0..100 s at 100 Hz; with jitter, each instant moved by up to +-30 % of a step."""
    time = np.arange(0.0, DURATION_S, FINE_STEP_S)
    if jitter:
        time = time + np.random.default_rng(0).uniform(-0.3, 0.3, time.size) * FINE_STEP_S
    return time


def slow_channels(time: np.ndarray) -> np.ndarray:
    """(n, 2): 1 A sine at 0.05 Hz and 2 A cosine at 0.03 Hz, far below the 5 Hz Nyquist."""
    return np.column_stack([np.sin(2 * np.pi * 0.05 * time), 2.0 * np.cos(2 * np.pi * 0.03 * time)])


# --- resample ---------------------------------------------------------------------------


@pytest.mark.parametrize("jitter", [False, True], ids=["regular", "jittered"])
@pytest.mark.parametrize("two_d", [False, True], ids=["1d", "2d"])
def test_resample_slow_sinusoid_matches_analytic(jitter, two_d):
    time = fine_time(jitter)
    values = slow_channels(time) if two_d else slow_channels(time)[:, 0]
    new_time, new_values = resample(time, values, SAMPLE_PERIOD_S)
    expected = slow_channels(new_time) if two_d else slow_channels(new_time)[:, 0]
    assert new_values.shape == expected.shape
    interior = slice(10, -10)  # 1 s from each edge, where filtfilt padding matters
    # 1e-3 of the 1 A / 2 A amplitudes
    amplitudes = np.array([1.0, 2.0]) if two_d else 1.0
    assert np.all(np.abs(new_values[interior] - expected[interior]) <= 1e-3 * amplitudes)


def test_resample_grid_is_uniform_from_start_to_end():
    time = fine_time(jitter=True)
    new_time, _ = resample(time, slow_channels(time), SAMPLE_PERIOD_S)
    assert new_time[0] == time[0]
    assert new_time[-1] <= time[-1] < new_time[-1] + SAMPLE_PERIOD_S
    np.testing.assert_allclose(np.diff(new_time), SAMPLE_PERIOD_S, rtol=1e-9)


def test_resample_upsampling_reproduces_a_ramp():
    time = np.arange(0.0, 10.0, 1.0)
    new_time, new_values = resample(time, 3.0 * time + 1.0, 0.25)
    np.testing.assert_allclose(new_values, 3.0 * new_time + 1.0, rtol=1e-12)


def test_resample_tone_above_nyquist_aliases_without_filter_and_is_attenuated_with_it():
    time = fine_time()
    tone_hz = 7.3  # above the 5 Hz Nyquist, appears at 2.7 Hz
    values = np.sin(2 * np.pi * tone_hz * time)
    alias_hz = alias_frequency(tone_hz, SAMPLE_PERIOD_S)
    assert alias_hz == pytest.approx(2.7)

    raw_time, raw = resample(time, values, SAMPLE_PERIOD_S, anti_alias=False)
    assert tone_amplitude(raw_time, raw, alias_hz) == pytest.approx(1.0, rel=0.01)

    filtered_time, filtered = resample(time, values, SAMPLE_PERIOD_S, anti_alias=True)
    assert tone_amplitude(filtered_time, filtered, alias_hz) <= ATTENUATION_20_DB


# --- sample_sensor ----------------------------------------------------------------------

RIPPLE = (1003.7, 2.0, 0.3)  # 1 kHz inverter ripple, 2 A, aliases to 3.7 Hz at 10 Hz


@pytest.mark.parametrize("anti_alias", [False, True])
def test_sample_sensor_ripple_aliases_unless_filtered(anti_alias):
    time = fine_time()
    slow_current = np.sin(2 * np.pi * 0.02 * time)
    sample_time, samples = sample_sensor(
        time, slow_current, SAMPLE_PERIOD_S, anti_alias=anti_alias, tones=[RIPPLE]
    )
    alias_hz = alias_frequency(RIPPLE[0], SAMPLE_PERIOD_S)
    assert alias_hz == pytest.approx(3.7)
    measured = tone_amplitude(sample_time, samples, alias_hz)
    if anti_alias:
        assert measured <= ATTENUATION_20_DB * RIPPLE[1]
    else:
        assert measured == pytest.approx(RIPPLE[1], rel=0.05)


def test_sample_sensor_tone_follows_analog_gain_in_passband():
    time = fine_time()
    tone_hz = 2.0  # below the 4 Hz corner: passes with |H(2 Hz)|, ~0.996
    sample_time, samples = sample_sensor(time, np.zeros_like(time), SAMPLE_PERIOD_S, tones=[(tone_hz, 1.0, 0.0)])
    expected_gain = abs(lowpass_gain(tone_hz, SAMPLE_PERIOD_S))
    assert tone_amplitude(sample_time, samples, tone_hz) == pytest.approx(expected_gain, rel=1e-6)


def test_sample_sensor_preserves_slow_signal_up_to_filter_delay():
    time = fine_time()
    slow_hz = 0.02
    sample_time, samples = sample_sensor(time, np.sin(2 * np.pi * slow_hz * time), SAMPLE_PERIOD_S)
    # Butterworth(4) with a 4 Hz corner delays slow signals by ~0.104 s: about one sample.
    delay_s = -np.angle(lowpass_gain(slow_hz, SAMPLE_PERIOD_S)) / (2 * np.pi * slow_hz)
    assert 0.09 < delay_s < 0.12
    delayed = np.sin(2 * np.pi * slow_hz * (sample_time - delay_s))
    after_start = sample_time >= 1.0  # the filter starts in steady state, it cannot know t < 0
    assert np.max(np.abs(samples - delayed)[after_start]) <= 1e-3
    # Against the undelayed signal the error is bounded by slope * delay = 2*pi*f*A*delay.
    undelayed_error = np.abs(samples - np.sin(2 * np.pi * slow_hz * sample_time))
    assert np.max(undelayed_error) <= 2 * np.pi * slow_hz * delay_s + 1e-3


def test_sample_sensor_keeps_constant_without_start_up_transient():
    time = fine_time()
    _, samples = sample_sensor(time, np.full((time.size, 2), [3.7, -1.0]), SAMPLE_PERIOD_S)
    assert samples.shape[1] == 2
    np.testing.assert_allclose(samples, np.broadcast_to([3.7, -1.0], samples.shape), atol=1e-9)


def test_sample_sensor_rejects_grid_too_coarse_for_filter():
    time = np.arange(0.0, 10.0, 1.0)
    with pytest.raises(DataError, match="time_s step"):
        sample_sensor(time, np.zeros_like(time), 0.5)


# --- filter, alias and tone helpers -----------------------------------------------------


def test_lowpass_gain_is_butterworth():
    corner_hz = 0.8 * 0.5 / SAMPLE_PERIOD_S  # 4 Hz
    gain = np.abs(lowpass_gain(np.array([0.0, corner_hz, 100 * corner_hz]), SAMPLE_PERIOD_S))
    assert gain[0] == pytest.approx(1.0)
    assert gain[1] == pytest.approx(1 / np.sqrt(2))
    assert gain[2] == pytest.approx(100.0**-4, rel=1e-6)  # 80 dB/decade for order 4


@pytest.mark.parametrize(
    ("tone_hz", "period_s", "alias_hz"),
    [(1003.7, 0.1, 3.7), (7.0, 0.1, 3.0), (3.0, 0.1, 3.0), (20.0, 0.1, 0.0), (50.0, 1 / 49, 1.0)],
)
def test_alias_frequency(tone_hz, period_s, alias_hz):
    assert alias_frequency(tone_hz, period_s) == pytest.approx(alias_hz, abs=1e-9)


def test_tone_amplitude_recovers_amplitude_beside_offset():
    time = np.arange(0.0, 20.0, 0.05)
    values = 4.2 + 0.7 * np.cos(2 * np.pi * 1.3 * time + 1.0)
    assert tone_amplitude(time, values, 1.3) == pytest.approx(0.7, rel=1e-9)


# --- Nyquist checks ---------------------------------------------------------------------


def test_nyquist_content_is_power_fraction_above_new_nyquist():
    time = fine_time()
    ripple_amplitude = 0.05
    values = 3.7 + np.sin(2 * np.pi * 0.02 * time) + ripple_amplitude * np.sin(2 * np.pi * 7.3 * time)
    expected = ripple_amplitude**2 / (1 + ripple_amplitude**2)  # power ratio, mean excluded
    assert nyquist_content(time, values, SAMPLE_PERIOD_S) == pytest.approx(expected, rel=0.05)
    assert nyquist_content(time, values, FINE_STEP_S) == 0.0  # nothing above the input's own Nyquist


def test_check_nyquist_warns_for_fast_content():
    time = fine_time()
    values = np.sin(2 * np.pi * 7.3 * time)
    with pytest.warns(AliasingWarning, match=r"Current \[A\].*fs/2 = 5 Hz"):
        fraction = check_nyquist(time, values, SAMPLE_PERIOD_S, name="Current [A]")
    assert fraction > 0.99


def test_check_nyquist_silent_for_slow_signal():
    time = fine_time()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fraction = check_nyquist(time, slow_channels(time), SAMPLE_PERIOD_S)
    assert fraction < 1e-6


# --- bad input --------------------------------------------------------------------------


def _good():
    time = np.arange(0.0, 1.0, 0.01)
    return time, np.sin(time), SAMPLE_PERIOD_S


@pytest.mark.parametrize(
    ("mutate", "argument"),
    [
        (lambda t, v, p: (t[::-1], v, p), "time_s"),
        (lambda t, v, p: (t, v[:-1], p), "values"),
        (lambda t, v, p: (t, v, 0.0), "period_s"),
        (lambda t, v, p: (t, v, -0.1), "period_s"),
        (lambda t, v, p: (t, np.where(t > 0.5, np.nan, v), p), "values"),
        (lambda t, v, p: (np.where(t > 0.5, np.nan, t), v, p), "time_s"),
    ],
    ids=["decreasing-time", "length-mismatch", "zero-period", "negative-period", "nan-values", "nan-time"],
)
@pytest.mark.parametrize("function", [resample, sample_sensor, nyquist_content, check_nyquist])
def test_bad_input_raises_data_error_naming_argument(function, mutate, argument):
    time, values, period = mutate(*_good())
    with pytest.raises(DataError, match=argument):
        function(time, values, period)


def test_bad_filter_raises_config_error():
    with pytest.raises(ConfigError, match="cutoff_fraction"):
        AntiAliasFilter(cutoff_fraction=1.5)
    with pytest.raises(ConfigError, match="order"):
        AntiAliasFilter(order=0)


def test_bad_tone_raises_data_error():
    time = fine_time()
    with pytest.raises(DataError, match=r"tones\[0\]"):
        sample_sensor(time, np.zeros_like(time), SAMPLE_PERIOD_S, tones=[(-5.0, 1.0, 0.0)])
