"""The CSV profile readers: round trips, km/h conversion, and a DataError naming the file, the
column and the line for every malformed file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sim.errors import DataError
from sim.protocols.drive_cycles import dynamic_current_profile, stochastic_speed_trace
from sim.protocols.profile_csv import read_current_csv, read_speed_csv


def write_csv(path: Path, header: str, rows: list[str]) -> Path:
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def write_columns(path: Path, header: str, *columns: np.ndarray) -> Path:
    np.savetxt(path, np.column_stack(columns), delimiter=",", header=header, comments="", fmt="%.17g")
    return path


def test_speed_csv_round_trip(tmp_path: Path) -> None:
    time_s, speed_mps = stochastic_speed_trace(300.0, 1.0, 5)
    path = write_columns(tmp_path / "trace.csv", "time_s,speed_mps", time_s, speed_mps)
    read_time_s, read_speed_mps = read_speed_csv(path)
    np.testing.assert_allclose(read_time_s, time_s, rtol=1e-15)
    np.testing.assert_allclose(read_speed_mps, speed_mps, rtol=1e-15)


def test_speed_csv_converts_kmh(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "kmh.csv", "time_s, speed_kmh", ["0, 0", "1, 36", "2, 90"])
    _, speed_mps = read_speed_csv(path)
    np.testing.assert_allclose(speed_mps, [0.0, 10.0, 25.0])


def test_current_csv_round_trip(tmp_path: Path) -> None:
    time_s, current_A = dynamic_current_profile(300.0, 0.5, 6)
    path = write_columns(tmp_path / "current.csv", "time_s,current_A", time_s, current_A)
    read_time_s, read_current_A = read_current_csv(path)
    np.testing.assert_allclose(read_time_s, time_s, rtol=1e-15)
    np.testing.assert_allclose(read_current_A, current_A, rtol=1e-15)


MALFORMED_SPEED = {
    "missing time": ("t,speed_mps", ["0,1", "1,2"], "time_s"),
    "missing speed": ("time_s,velocity", ["0,1", "1,2"], "speed_mps"),
    "both speeds": ("time_s,speed_mps,speed_kmh", ["0,1,3.6", "1,2,7.2"], "speed_kmh"),
    "decreasing time": ("time_s,speed_mps", ["0,1", "2,2", "1,3"], "time_s"),
    "repeated time": ("time_s,speed_mps", ["0,1", "0,2"], "time_s"),
    "NaN speed": ("time_s,speed_mps", ["0,1", "1,nan", "2,3"], "speed_mps"),
    "empty speed": ("time_s,speed_kmh", ["0,1", "1,", "2,3"], "speed_kmh"),
    "text time": ("time_s,speed_mps", ["0,1", "one,2"], "time_s"),
    "negative speed": ("time_s,speed_mps", ["0,1", "1,-2"], "speed_mps"),
}
MALFORMED_CURRENT = {
    "missing current": ("time_s,current", ["0,1", "1,2"], "current_A"),
    "decreasing time": ("time_s,current_A", ["0,1", "2,2", "1,3"], "time_s"),
    "NaN current": ("time_s,current_A", ["0,1", "1,NaN"], "current_A"),
}


@pytest.mark.parametrize("case", list(MALFORMED_SPEED))
def test_malformed_speed_csv_raises_data_error_naming_file_and_column(tmp_path: Path, case: str) -> None:
    header, rows, column = MALFORMED_SPEED[case]
    path = write_csv(tmp_path / "bad_speed.csv", header, rows)
    with pytest.raises(DataError, match=column) as error:
        read_speed_csv(path)
    assert str(path) in str(error.value)


@pytest.mark.parametrize("case", list(MALFORMED_CURRENT))
def test_malformed_current_csv_raises_data_error_naming_file_and_column(tmp_path: Path, case: str) -> None:
    header, rows, column = MALFORMED_CURRENT[case]
    path = write_csv(tmp_path / "bad_current.csv", header, rows)
    with pytest.raises(DataError, match=column) as error:
        read_current_csv(path)
    assert str(path) in str(error.value)


def test_missing_or_empty_file_raises_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        read_current_csv(tmp_path / "absent.csv")
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(DataError, match="empty.csv"):
        read_speed_csv(empty)


def test_non_monotonic_time_names_the_file_the_column_the_line_and_both_times(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "profile.csv", "time_s,current_A", ["0,1", "1,1", "3,1", "2,1"])
    with pytest.raises(DataError) as error:
        read_current_csv(path)
    message = str(error.value)
    # the header is line 1, so the fourth data row (t = 2 after t = 3) is line 5
    assert str(path) in message and "'time_s'" in message and "line 5" in message and "(3.0 then 2.0)" in message


def test_non_numeric_value_names_its_line_and_value(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "profile.csv", "time_s,current_A", ["0,1", "1,two", "2,1"])
    with pytest.raises(DataError, match=r"column 'current_A' has .* 'two' at line 3"):
        read_current_csv(path)


def test_negative_speed_names_its_line(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "speed.csv", "time_s,speed_kmh", ["0,0", "1,5", "2,-3"])
    with pytest.raises(DataError, match=r"'speed_kmh' has negative speed -3.0 at line 4"):
        read_speed_csv(path)


def test_a_single_data_row_is_too_short(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "one.csv", "time_s,current_A", ["0,1"])
    with pytest.raises(DataError, match="1 data row"):
        read_current_csv(path)


def test_padded_column_names_are_stripped_and_current_keeps_its_sign(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "padded.csv", " time_s , current_A ", ["0, 2.5", "1, -1.0", "2, 0"])
    time_s, current_A = read_current_csv(path)
    np.testing.assert_array_equal(time_s, [0.0, 1.0, 2.0])
    np.testing.assert_array_equal(current_A, [2.5, -1.0, 0.0])  # positive on discharge, as written
