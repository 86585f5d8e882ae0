"""Numerical facts about sim.plant.reference.sensor: noise statistics, offsets and gains, quantisation,
ripple aliasing and its removal by the anti-alias filter on non-uniform grids, determinism."""

import numpy as np
import pytest

from sim.config import validate
from sim.errors import ConfigError, DataError
from sim.plant.sensor import SensorSpec, measure
from sim.signals.filters import AntiAliasFilter, alias_frequency, lowpass_gain, tone_amplitude
from sim.physics.simulate import add_ripple

CURRENT, VOLTAGE, TEMPERATURE, TIME = "Current [A]", "Voltage [V]", "Cell temperature [K]", "Time [s]"
IDEAL = dict(
    voltage_noise_V=0.0, current_noise_A=0.0, temperature_noise_K=0.0,
    voltage_offset_sd_V=0.0, current_offset_sd_A=0.0,
    voltage_gain_error_sd=0.0, current_gain_error_sd=0.0,
    voltage_resolution_V=0.0, current_resolution_A=0.0, temperature_resolution_K=0.0,
)
RIPPLE_AMPLITUDE_A = 0.2
RESISTANCE_OHM = 0.05
ATTENUATION_20_DB = 0.1  # amplitude ratio


def ideal_spec(**errors) -> SensorSpec:
    """A sensor with every error off except those given."""
    return SensorSpec(**{**IDEAL, **errors})


def cycling_columns(time_s: np.ndarray, rest_samples: int = 10) -> dict[str, np.ndarray]:
    """Rest, then a 2 A discharge: voltage drops ohmically at the step and sags slowly."""
    current = np.where(np.arange(time_s.size) < rest_samples, 0.0, 2.0)
    voltage = 3.9 - RESISTANCE_OHM * current - 1e-5 * (time_s - time_s[0])
    return {
        TIME: time_s,
        CURRENT: current,
        VOLTAGE: voltage,
        TEMPERATURE: 298.15 + 1e-4 * (time_s - time_s[0]),
        "Ambient temperature [K]": np.full(time_s.size, 298.15),
    }


def rippled(time_s: np.ndarray, frequency_hz: float) -> tuple[dict, dict, dict]:
    """(clean columns, columns with add_ripple's point-sampled tone, ripple dict)."""
    clean = cycling_columns(time_s)
    noisy = {name: values.copy() for name, values in clean.items()}
    ripple = add_ripple(noisy, frequency_hz, RIPPLE_AMPLITUDE_A, phase_rad=0.4)
    return clean, noisy, ripple


def two_rate_grid() -> tuple[np.ndarray, slice, slice]:
    """100 samples 120 s apart, then 3000 samples 1 s apart; (time, coarse part, fine part)."""
    coarse = np.arange(100) * 120.0
    fine = coarse[-1] + 1.0 + np.arange(3000)
    return np.concatenate([coarse, fine]), slice(10, 100), slice(101, None)


# --- noise, offsets, gains, quantisation -------------------------------------------------


def test_white_noise_has_configured_spread_and_zero_mean():
    time_s = np.arange(100_000, dtype=float)
    columns = cycling_columns(time_s)
    spec = ideal_spec(voltage_noise_V=0.5e-3, current_noise_A=5e-3, temperature_noise_K=0.05)
    measured, drawn = measure(columns, spec, np.random.default_rng(1))
    assert drawn == {"voltage_offset_V": 0.0, "current_offset_A": 0.0,
                     "voltage_gain_error": 0.0, "current_gain_error": 0.0}
    for name, sd in ((VOLTAGE, 0.5e-3), (CURRENT, 5e-3), (TEMPERATURE, 0.05)):
        residual = measured[name] - columns[name]
        assert residual.std() == pytest.approx(sd, rel=0.05)
        assert abs(residual.mean()) < 5 * sd / np.sqrt(time_s.size)


def test_offsets_and_gains_are_returned_and_applied_exactly():
    columns = cycling_columns(np.arange(500, dtype=float))
    spec = ideal_spec(voltage_offset_sd_V=1e-3, current_offset_sd_A=5e-3,
                      voltage_gain_error_sd=2e-4, current_gain_error_sd=5e-4)
    measured, drawn = measure(columns, spec, np.random.default_rng(2))
    assert all(value != 0.0 for value in drawn.values())
    np.testing.assert_allclose(
        measured[VOLTAGE], (1 + drawn["voltage_gain_error"]) * columns[VOLTAGE] + drawn["voltage_offset_V"],
        rtol=0, atol=1e-12)
    np.testing.assert_allclose(
        measured[CURRENT], (1 + drawn["current_gain_error"]) * columns[CURRENT] + drawn["current_offset_A"],
        rtol=0, atol=1e-12)
    np.testing.assert_array_equal(measured[TEMPERATURE], columns[TEMPERATURE])


def test_drawn_offsets_follow_their_configured_spread():
    columns = cycling_columns(np.arange(20, dtype=float))
    spec = ideal_spec(voltage_offset_sd_V=1e-3, current_gain_error_sd=5e-4)
    draws = [measure(columns, spec, np.random.default_rng(seed))[1] for seed in range(2000)]
    assert np.std([d["voltage_offset_V"] for d in draws]) == pytest.approx(1e-3, rel=0.1)
    assert np.std([d["current_gain_error"] for d in draws]) == pytest.approx(5e-4, rel=0.1)
    assert all(d["current_offset_A"] == 0.0 for d in draws)


def test_quantisation_rounds_to_the_step_within_half_a_step():
    columns = cycling_columns(np.arange(5000, dtype=float))
    steps = {VOLTAGE: 1e-4, CURRENT: 1e-3, TEMPERATURE: 0.01}
    spec = ideal_spec(voltage_resolution_V=1e-4, current_resolution_A=1e-3, temperature_resolution_K=0.01)
    measured, _ = measure(columns, spec, np.random.default_rng(3))
    for name, step in steps.items():
        counts = measured[name] / step
        np.testing.assert_allclose(counts, np.round(counts), rtol=0, atol=1e-9)
        assert np.max(np.abs(measured[name] - columns[name])) <= step / 2 + 1e-12
    noisy, _ = measure(columns, SensorSpec(), np.random.default_rng(3))
    for name, step in steps.items():
        np.testing.assert_allclose(noisy[name] / step, np.round(noisy[name] / step), rtol=0, atol=1e-9)


def test_other_columns_are_copied_and_inputs_untouched():
    columns = cycling_columns(np.arange(100, dtype=float))
    originals = {name: values.copy() for name, values in columns.items()}
    measured, _ = measure(columns, SensorSpec(), np.random.default_rng(4))
    assert list(measured) == list(columns)
    for name in (TIME, "Ambient temperature [K]"):
        np.testing.assert_array_equal(measured[name], columns[name])
        assert measured[name] is not columns[name]
    for name, values in originals.items():
        np.testing.assert_array_equal(columns[name], values)


# --- ripple and the anti-alias filter -------------------------------------------------------


@pytest.mark.parametrize("anti_alias", [False, True])
def test_ripple_above_nyquist_aliases_unless_filtered(anti_alias):
    time_s = np.arange(3000, dtype=float)  # 1 s sampler, Nyquist 0.5 Hz
    frequency_hz = 1000.2
    alias_hz = alias_frequency(frequency_hz, 1.0)
    assert alias_hz == pytest.approx(0.2)
    clean, columns, ripple = rippled(time_s, frequency_hz)
    measured, _ = measure(columns, ideal_spec(anti_alias=anti_alias), np.random.default_rng(5), ripple)
    flowing = slice(10, None)
    current_tone = tone_amplitude(time_s[flowing], measured[CURRENT][flowing], alias_hz)
    voltage_tone = tone_amplitude(time_s[flowing], measured[VOLTAGE][flowing], alias_hz)
    if anti_alias:
        assert current_tone <= ATTENUATION_20_DB * RIPPLE_AMPLITUDE_A
        assert voltage_tone <= ATTENUATION_20_DB * ripple["voltage_amplitude_V"]
    else:
        assert current_tone == pytest.approx(RIPPLE_AMPLITUDE_A, rel=0.02)
        assert voltage_tone == pytest.approx(ripple["voltage_amplitude_V"], rel=0.02)
    # the converter idles at rest: those samples carry no ripple either way
    np.testing.assert_array_equal(measured[CURRENT][:10], clean[CURRENT][:10])
    np.testing.assert_array_equal(measured[VOLTAGE][:10], clean[VOLTAGE][:10])


def test_filtered_ripple_is_the_analog_response_to_the_tone():
    time_s = np.arange(600, dtype=float) * 0.5  # 2 Hz sampler, corner 0.8 Hz
    frequency_hz = 0.6  # in the passband's roll-off: visible gain and phase shift
    clean, columns, ripple = rippled(time_s, frequency_hz)
    measured, _ = measure(columns, ideal_spec(), np.random.default_rng(6), ripple)
    gain = lowpass_gain(frequency_hz, 0.5, AntiAliasFilter())
    assert 0.5 < abs(gain) < 0.99
    expected = abs(gain) * np.sin(2 * np.pi * frequency_hz * time_s + 0.4 + np.angle(gain)) * (clean[CURRENT] != 0)
    np.testing.assert_allclose(measured[CURRENT] - clean[CURRENT], RIPPLE_AMPLITUDE_A * expected, atol=1e-12)
    np.testing.assert_allclose(measured[VOLTAGE] - clean[VOLTAGE], -ripple["voltage_amplitude_V"] * expected,
                               atol=1e-12)


def test_ripple_is_refiltered_per_segment_of_a_non_uniform_grid():
    time_s, coarse, fine = two_rate_grid()
    # aliases to a nonzero frequency at both rates
    frequency_hz = 1000.2 + 0.25 / 120.0
    coarse_alias_hz, fine_alias_hz = alias_frequency(frequency_hz, 120.0), alias_frequency(frequency_hz, 1.0)
    assert coarse_alias_hz == pytest.approx(0.25 / 120.0) and fine_alias_hz == pytest.approx(0.2 + 0.25 / 120)
    clean, columns, ripple = rippled(time_s, frequency_hz)
    for anti_alias in (False, True):
        measured, _ = measure(columns, ideal_spec(anti_alias=anti_alias), np.random.default_rng(7), ripple)
        residual = measured[CURRENT] - clean[CURRENT]
        for part, alias_hz in ((coarse, coarse_alias_hz), (fine, fine_alias_hz)):
            amplitude = tone_amplitude(time_s[part], residual[part], alias_hz)
            if anti_alias:
                assert amplitude <= ATTENUATION_20_DB * RIPPLE_AMPLITUDE_A
            else:
                assert amplitude == pytest.approx(RIPPLE_AMPLITUDE_A, rel=0.02)


def test_filter_follows_the_local_sampling_rate():
    """A 0.31 Hz tone lies in the passband of the 1 s sampler's filter (corner 0.4 Hz) but far
    above that of the 120 s sampler (corner 3.3 mHz): it survives only in the fine segment."""
    time_s, coarse, fine = two_rate_grid()
    frequency_hz = 0.31
    clean, columns, ripple = rippled(time_s, frequency_hz)
    measured, _ = measure(columns, ideal_spec(), np.random.default_rng(8), ripple)
    residual = measured[CURRENT] - clean[CURRENT]
    fine_gain = abs(lowpass_gain(frequency_hz, 1.0, AntiAliasFilter()))
    coarse_gain = abs(lowpass_gain(frequency_hz, 120.0, AntiAliasFilter()))
    assert fine_gain > 0.9 and coarse_gain < 1e-6
    assert tone_amplitude(time_s[fine], residual[fine], frequency_hz) == pytest.approx(
        fine_gain * RIPPLE_AMPLITUDE_A, rel=1e-6)
    assert np.max(np.abs(residual[coarse])) <= coarse_gain * RIPPLE_AMPLITUDE_A + 1e-12


def test_ripple_dict_must_come_from_add_ripple():
    _, columns, ripple = rippled(np.arange(100, dtype=float), 1000.2)
    del ripple["voltage_amplitude_V"]
    with pytest.raises(DataError, match="voltage_amplitude_V"):
        measure(columns, SensorSpec(), np.random.default_rng(0), ripple)


# --- determinism and validation -------------------------------------------------------------


def test_same_seed_same_readings_different_seed_different_readings():
    _, columns, ripple = rippled(np.arange(1000, dtype=float), 1000.2)
    first, first_drawn = measure(columns, SensorSpec(), np.random.default_rng(42), ripple)
    again, again_drawn = measure(columns, SensorSpec(), np.random.default_rng(42), ripple)
    other, other_drawn = measure(columns, SensorSpec(), np.random.default_rng(43), ripple)
    assert first_drawn == again_drawn and first_drawn != other_drawn
    for name in (CURRENT, VOLTAGE, TEMPERATURE):
        np.testing.assert_array_equal(first[name], again[name])
        assert not np.array_equal(first[name], other[name])


@pytest.mark.parametrize("field, value", [
    ("voltage_noise_V", -1e-3),
    ("current_resolution_A", -0.1),
    ("filter_order", 0),
    ("filter_cutoff_fraction", 1.5),
])
def test_bad_spec_values_name_the_field(field, value):
    with pytest.raises(ConfigError, match=f"sensor: field '{field}' = {value!r}"):
        validate(SensorSpec, {field: value}, "sensor")


def test_unknown_spec_key_is_rejected():
    with pytest.raises(ConfigError, match="unknown key 'voltage_noise'"):
        validate(SensorSpec, {"voltage_noise": 1e-3}, "sensor")


def test_missing_channel_is_a_data_error():
    columns = cycling_columns(np.arange(10, dtype=float))
    del columns[VOLTAGE]
    with pytest.raises(DataError, match="Voltage"):
        measure(columns, SensorSpec(), np.random.default_rng(0))
