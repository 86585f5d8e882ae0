"""Facts about sim.signals.grid: checks that raise DataError naming the argument and the value,
and the uniform grids filtering and sampling work on."""

from __future__ import annotations

import numpy as np
import pytest

from sim.errors import DataError
from sim.signals.grid import (check_frequency, check_period, check_series, check_time, check_tones, interp_rows,
                              restore_shape, sample_instants, uniform_grid)


@pytest.mark.parametrize(("time_s", "message"), [
    ([0.0, 1.0, 1.0, 2.0], r"strictly increasing; got time_s\[2\] = 1.0 after time_s\[1\] = 1.0"),
    ([0.0, 2.0, 1.0], r"strictly increasing; got time_s\[2\] = 1.0 after time_s\[1\] = 2.0"),
    ([0.0, np.nan, 2.0], r"time_s\[1\] = nan: times must be finite"),
    ([0.0, 1.0, np.inf], r"time_s\[2\] = inf"),
    ([0.0], r"time_s has shape \(1,\)"),
    ([[0.0, 1.0], [2.0, 3.0]], r"time_s has shape \(2, 2\)"),
], ids=["repeated", "decreasing", "nan", "inf", "one-sample", "2d"])
def test_check_time_rejects_non_increasing_nan_or_short_time_naming_the_argument(time_s, message):
    with pytest.raises(DataError, match=message):
        check_time(time_s)


def test_check_time_returns_a_float_array():
    time = check_time([0, 1, 5])
    assert time.dtype == float and time.tolist() == [0.0, 1.0, 5.0]


def test_check_series_returns_two_dimensional_values_and_names_bad_ones():
    time, values = check_series([0.0, 1.0, 2.0], [3.0, 4.0, 5.0])
    assert values.shape == (3, 1) and values[:, 0].tolist() == [3.0, 4.0, 5.0]
    assert check_series(time, np.ones((3, 2)))[1].shape == (3, 2)
    with pytest.raises(DataError, match=r"values has shape \(2,\): expected \(3,\) or \(3, channels\)"):
        check_series(time, [1.0, 2.0])
    with pytest.raises(DataError, match=r"values\[1, 0\] = nan"):
        check_series(time, [[1.0, 1.0], [np.nan, 1.0], [1.0, 1.0]])


@pytest.mark.parametrize("period_s", [0.0, -1.0, np.nan, np.inf])
def test_check_period_rejects_non_positive_or_infinite_periods_naming_the_argument(period_s):
    with pytest.raises(DataError, match=r"sample_period = .*positive finite number of seconds"):
        check_period(period_s, name="sample_period")
    assert check_period(np.float32(0.5)) == 0.5 and isinstance(check_period(1), float)


def test_check_frequency_accepts_zero_and_rejects_negative():
    assert check_frequency(0) == 0.0
    with pytest.raises(DataError, match=r"frequency_hz = -1.0: must be a finite frequency >= 0 Hz"):
        check_frequency(-1.0)


def test_check_tones_returns_rows_and_names_the_bad_tone():
    assert check_tones([(50.0, 2.0, 0.1)]).tolist() == [[50.0, 2.0, 0.1]]
    assert check_tones([]).shape == (0, 3)
    with pytest.raises(DataError, match=r"tones\[1\] = \(1.0, 2.0\)"):
        check_tones([(50.0, 2.0, 0.1), (1.0, 2.0)])
    with pytest.raises(DataError, match=r"tones\[0\] frequency"):
        check_tones([(-5.0, 1.0, 0.0)])


def test_a_uniform_grid_is_detected_and_kept_as_it_is():
    time = np.arange(0.0, 10.0, 0.1)
    data = np.sin(time)[:, None]
    new_time, new_data, step = uniform_grid(time, data)
    assert new_time is time and new_data is data
    assert step == pytest.approx(0.1)


def test_a_jittered_grid_is_not_uniform_and_is_interpolated_onto_its_median_step():
    time = np.arange(0.0, 100.0) + np.random.default_rng(0).uniform(-0.3, 0.3, 100)
    data = np.column_stack([2.0 * time + 1.0, -time])  # linear: interpolation is exact
    new_time, new_data, step = uniform_grid(time, data)
    assert step == pytest.approx(np.median(np.diff(time)))
    np.testing.assert_allclose(np.diff(new_time), step, rtol=1e-9)
    assert new_time[0] == time[0] and new_time[-1] <= time[-1]
    np.testing.assert_allclose(new_data, np.column_stack([2.0 * new_time + 1.0, -new_time]), rtol=1e-12)


def test_sample_instants_include_the_end_up_to_rounding():
    np.testing.assert_allclose(sample_instants(1.0, 2.0, 0.1), 1.0 + 0.1 * np.arange(11))
    assert sample_instants(0.0, 0.95, 0.1)[-1] == pytest.approx(0.9)


def test_interp_rows_interpolates_every_column_and_restore_shape_drops_a_single_channel():
    time = np.array([0.0, 2.0])
    data = np.array([[0.0, 10.0], [2.0, 30.0]])
    assert interp_rows(np.array([1.0]), time, data).tolist() == [[1.0, 20.0]]
    assert restore_shape(data[:, :1], ndim=1).tolist() == [0.0, 2.0]
    assert restore_shape(data, ndim=2) is data
