"""Tests for sim.measured.loader: loading cycler files into PyBaMM-named SI series."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sim.errors import ConfigError, DataError
from sim.measured.columns import AMBIENT_TEMPERATURE, CELL_TEMPERATURE, CURRENT, TIME, VOLTAGE, ColumnMap
from sim.measured.loader import (
    check_sign_convention,
    load_measured,
)
from tests.real_data import A123_DIR, needs_a123


TIDY_NAMES = {"time": "time_s", "current": "current_A", "voltage": "voltage_V",
              "temperature": "temperature_C", "ambient": "ambient_C"}
BDF_NAMES = {"time": "Test Time / s", "current": "Current / A", "voltage": "Voltage / V",
             "temperature": "Temperature T1 / degC", "ambient": "Ambient Temperature / degC"}


def synthetic_test(rows: int = 600) -> dict[str, np.ndarray]:
    """A 1 s cycler record: 2 A discharge pulses with rests, rounded like a cycler export."""
    time_s = np.arange(rows, dtype=float)
    current = np.where((time_s // 60) % 2 == 0, 2.0, 0.0)
    charge_out_Ah = np.cumsum(current) / 3600.0
    voltage = 3.9 - 0.3 * charge_out_Ah - 0.04 * current
    temperature_C = 25.0 + 0.5 * charge_out_Ah
    return {"time": time_s, "current": np.round(current, 5), "voltage": np.round(voltage, 5),
            "temperature": np.round(temperature_C, 3), "ambient": np.full(rows, 24.5)}


def write(frame: pd.DataFrame, directory: Path, stem: str, suffix: str) -> Path:
    path = directory / f"{stem}{suffix}"
    if suffix == ".parquet":
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False)  # pandas compresses .csv.gz by its suffix
    return path


def named(data: dict[str, np.ndarray], names: dict[str, str]) -> pd.DataFrame:
    return pd.DataFrame({names[key]: values for key, values in data.items()})


@pytest.fixture
def tidy_csv(tmp_path: Path) -> Path:
    return write(named(synthetic_test(), TIDY_NAMES), tmp_path, "tidy", ".csv")


@pytest.mark.parametrize("names", [TIDY_NAMES, BDF_NAMES], ids=["tidy", "bdf"])
@pytest.mark.parametrize("suffix", [".csv", ".csv.gz", ".parquet"])
def test_every_naming_and_format_loads_to_the_same_si_arrays(tmp_path, names, suffix):
    data = synthetic_test()
    reference = load_measured(write(named(data, TIDY_NAMES), tmp_path, "ref", ".csv"))
    series = load_measured(write(named(data, names), tmp_path, "cell", suffix))

    assert list(series.columns) == [TIME, CURRENT, VOLTAGE, CELL_TEMPERATURE, AMBIENT_TEMPERATURE]
    for name, values in reference.columns.items():
        np.testing.assert_array_equal(series.columns[name], values, err_msg=name)
    np.testing.assert_allclose(series.columns[CELL_TEMPERATURE], data["temperature"] + 273.15)
    np.testing.assert_allclose(series.columns[AMBIENT_TEMPERATURE], 24.5 + 273.15)
    assert series.sample_period_s == 1.0
    # 5 pulses of 2 A x 60 s = 600 As = 1/6 Ah out (trapezoid loses half a step per edge).
    assert series.net_discharge_Ah() == pytest.approx(600.0 / 3600.0, rel=0.02)


def test_to_frame_round_trips_through_pybamm_names(tmp_path, tidy_csv):
    series = load_measured(tidy_csv)
    path = tmp_path / "hybat.parquet"
    series.to_frame().to_parquet(path, index=False)
    again = load_measured(path)
    for name, values in series.columns.items():
        np.testing.assert_array_equal(again.columns[name], values, err_msg=name)


def test_charge_positive_file_is_flipped_to_discharge_positive(tmp_path, tidy_csv):
    data = synthetic_test()
    data["current"] = -data["current"]
    charge_positive = write(named(data, TIDY_NAMES), tmp_path, "chg_pos", ".csv")

    reference = load_measured(tidy_csv)
    series = load_measured(charge_positive, current_sign="charge_positive")

    np.testing.assert_array_equal(series.columns[CURRENT], reference.columns[CURRENT])
    assert series.net_discharge_Ah() > 0
    assert check_sign_convention(series, "discharge") == pytest.approx(reference.net_discharge_Ah())


def test_explicit_column_map_with_declared_millivolts_matches_volts(tmp_path, tidy_csv):
    data = synthetic_test()
    frame = pd.DataFrame({"t [h]": data["time"] / 3600.0, "I": data["current"],
                          "U [mV]": data["voltage"] * 1000.0, "T": data["temperature"] + 273.15})
    path = write(frame, tmp_path, "custom", ".csv")
    column_map = ColumnMap(time="t [h]", current="I", voltage="U [mV]", temperature="T",
                           time_scale=3600.0, voltage_scale=0.001, temperature_unit="K")
    series = load_measured(path, columns=column_map, ambient_temperature_K=298.15)
    reference = load_measured(tidy_csv)

    for name in (TIME, CURRENT, VOLTAGE, CELL_TEMPERATURE):
        np.testing.assert_allclose(series.columns[name], reference.columns[name],
                                   rtol=1e-12, atol=1e-9, err_msg=name)
    np.testing.assert_array_equal(series.columns[AMBIENT_TEMPERATURE], 298.15)
    assert series.source_columns[VOLTAGE] == "U [mV]"


def test_column_map_rejects_unknown_keys_and_non_positive_scales():
    with pytest.raises(ConfigError, match="unknown key 'volts'"):
        load_measured("unused.csv", columns={"time": "t", "current": "I", "voltage": "V",
                                             "volts": "V"})
    with pytest.raises(ConfigError, match="voltage_scale"):
        load_measured("unused.csv", columns={"time": "t", "current": "I", "voltage": "V",
                                             "voltage_scale": -1.0})


def test_single_nan_is_interpolated_and_logged(tmp_path, caplog):
    data = synthetic_test()
    frame = named(data, TIDY_NAMES)
    frame.loc[30, "voltage_V"] = np.nan
    with caplog.at_level(logging.WARNING, logger="sim.measured.loader"):
        series = load_measured(write(frame, tmp_path, "one_nan", ".csv"))

    expected = 0.5 * (data["voltage"][29] + data["voltage"][31])
    assert series.columns[VOLTAGE][30] == pytest.approx(expected, abs=1e-12)
    assert "voltage_V" in caplog.text and "filled 1 missing value" in caplog.text


def test_a_missing_value_marker_reads_as_missing_and_an_edge_takes_the_nearest_value(tmp_path):
    data = synthetic_test()
    frame = named(data, TIDY_NAMES)
    frame.loc[0, "current_A"] = -3.4e38  # a cycler's float32 "no value"
    frame.loc[40, "current_A"] = 3.4e38
    series = load_measured(write(frame, tmp_path, "marker", ".csv"))
    assert series.columns[CURRENT][0] == pytest.approx(series.columns[CURRENT][1], abs=1e-12)
    assert series.columns[CURRENT][40] == pytest.approx(0.5 * (series.columns[CURRENT][39] +
                                                               series.columns[CURRENT][41]), abs=1e-12)


def corrupt_missing_column(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.drop(columns="voltage_V")


def corrupt_decreasing_time(frame: pd.DataFrame) -> pd.DataFrame:
    frame.loc[[40, 41], "time_s"] = [41.0, 40.0]
    return frame


def corrupt_duplicated_time(frame: pd.DataFrame) -> pd.DataFrame:
    frame.loc[41, "time_s"] = 40.0
    return frame


def corrupt_nan_run(frame: pd.DataFrame) -> pd.DataFrame:
    frame.loc[100:102, "voltage_V"] = np.nan
    return frame


def corrupt_millivolts(frame: pd.DataFrame) -> pd.DataFrame:
    frame["voltage_V"] *= 1000.0
    return frame


def corrupt_milliamps(frame: pd.DataFrame) -> pd.DataFrame:
    frame["current_A"] *= 1000.0
    return frame


def corrupt_kelvin_as_celsius(frame: pd.DataFrame) -> pd.DataFrame:
    frame["temperature_C"] += 273.15
    return frame


def corrupt_inverted_sign(frame: pd.DataFrame) -> pd.DataFrame:
    frame["current_A"] = -frame["current_A"]
    return frame


def corrupt_text_in_current(frame: pd.DataFrame) -> pd.DataFrame:
    frame["current_A"] = frame["current_A"].astype(object)
    frame.loc[7, "current_A"] = "overload"
    return frame


@pytest.mark.parametrize(
    ("corrupt", "column", "detail"),
    [
        (corrupt_missing_column, "voltage_V", "no voltage column"),
        (corrupt_decreasing_time, "time_s", "row 41 has 40.0 after 41.0 (decreasing time"),
        (corrupt_duplicated_time, "time_s", "row 41 has 40.0 after 40.0 (duplicated time"),
        (corrupt_nan_run, "voltage_V", "3 consecutive NaN values at rows 100-102"),
        (corrupt_millivolts, "voltage_V", "looks like millivolts; divide by 1000 or declare"),
        (corrupt_milliamps, "current_A", "looks like milliamps"),
        (corrupt_kelvin_as_celsius, "temperature_C", "looks like kelvin"),
        (corrupt_inverted_sign, "current_A", "known discharge test"),
        (corrupt_text_in_current, "current_A", "row 7 holds 'overload'"),
    ],
    ids=lambda value: getattr(value, "__name__", None),
)
def test_malformed_file_raises_one_line_data_error_naming_file_and_column(
        tmp_path, corrupt, column, detail):
    path = write(corrupt(named(synthetic_test(), TIDY_NAMES)), tmp_path, "bad_cell", ".csv.gz")
    with pytest.raises(DataError) as caught:
        load_measured(path, expect="discharge")
    message = str(caught.value)
    assert str(path) in message
    assert f"'{column}'" in message
    assert detail in message
    assert "\n" not in message


def test_irregular_sampling_is_kept_or_resampled_onto_a_uniform_grid(tmp_path):
    rng = np.random.default_rng(7)
    time_s = np.cumsum(rng.uniform(0.5, 1.5, 3000))
    time_s -= time_s[0]
    slow_voltage = 3.6 + 0.1 * np.sin(2 * np.pi * time_s / 600.0)  # 600 s period
    frame = pd.DataFrame({"time_s": time_s, "current_A": np.full_like(time_s, 0.5),
                          "voltage_V": slow_voltage})
    path = write(frame, tmp_path, "irregular", ".parquet")

    kept = load_measured(path)
    assert kept.sample_period_s is None
    np.testing.assert_array_equal(kept.columns[TIME], time_s)

    series = load_measured(path, resample_period_s=2.0)
    new_time = series.columns[TIME]
    assert series.sample_period_s == 2.0
    np.testing.assert_allclose(np.diff(new_time), 2.0, rtol=1e-9)
    assert new_time[0] == 0.0 and new_time[-1] <= time_s[-1]
    expected = 3.6 + 0.1 * np.sin(2 * np.pi * new_time / 600.0)
    # Interpolation plus a low-pass at 0.2 Hz barely touch a 1/600 Hz signal: under 0.5 mV.
    assert np.max(np.abs(series.columns[VOLTAGE] - expected)) < 5e-4
    np.testing.assert_allclose(series.columns[CURRENT], 0.5, rtol=1e-9)


@needs_a123
def test_real_a123_dynamic_test_balances_its_charge_throughput():
    relative = "dyn/A123_DYN_p25C_script1.csv.gz"
    manifest = pd.read_csv(A123_DIR / "manifest.csv").set_index("file").loc[relative]

    series = load_measured(A123_DIR / relative, ambient_temperature_K=298.15, expect="discharge")

    assert series.sample_period_s == 1.0
    assert len(series.columns[TIME]) == manifest["rows"]
    net_Ah = series.net_discharge_Ah()
    manifest_net_Ah = manifest["dis_Ah_total"] - manifest["chg_Ah_total"]
    assert net_Ah == pytest.approx(2.0, abs=0.1)  # 100 % -> ~10 % SOC of a ~2.05 Ah cell
    assert net_Ah == pytest.approx(manifest_net_Ah, rel=0.02)
    assert 1.9 < series.columns[VOLTAGE].min() < series.columns[VOLTAGE].max() < 3.6
