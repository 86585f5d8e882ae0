"""Facts about sim.measured.columns: which cycler column names map to which quantity and unit,
and the one-line error naming the file when a required column is missing."""

from __future__ import annotations

import pytest

from sim.errors import DataError
from sim.measured.columns import (AMBIENT_TEMPERATURE, CELL_TEMPERATURE, COLUMN_ALIASES, CURRENT, PYBAMM_NAMES,
                                  REQUIRED_QUANTITIES, TIME, VOLTAGE, ColumnMap, detect_columns, quoted)

BDF_PREFERRED = ["Test Time / s", "Current / A", "Voltage / V", "Temperature T1 / degC",
                 "Ambient Temperature / degC"]
BDF_MACHINE = ["test_time_second", "current_ampere", "voltage_volt", "temperature_t1_celsius",
               "ambient_temperature_celsius"]
TIDY = ["time_s", "current_A", "voltage_V", "temperature_C", "ambient_C"]
PYBAMM = [TIME, CURRENT, VOLTAGE, CELL_TEMPERATURE, AMBIENT_TEMPERATURE]
QUANTITIES = ("time", "current", "voltage", "temperature", "ambient_temperature")


@pytest.mark.parametrize("names", [BDF_PREFERRED, BDF_MACHINE, TIDY], ids=["bdf", "bdf-machine", "tidy"])
def test_battery_data_format_and_tidy_names_map_to_their_quantities_in_celsius(names):
    column_map = detect_columns(names)
    assert [getattr(column_map, quantity) for quantity in QUANTITIES] == names
    assert (column_map.temperature_unit, column_map.ambient_temperature_unit) == ("degC", "degC")
    # detected names carry no declared scale: seconds, amperes and volts, heuristics on
    assert (column_map.time_scale, column_map.current_scale, column_map.voltage_scale) == (1.0, None, None)


def test_pybamm_names_map_to_their_quantities_in_kelvin():
    column_map = detect_columns(PYBAMM)
    assert [getattr(column_map, quantity) for quantity in QUANTITIES] == PYBAMM
    assert (column_map.temperature_unit, column_map.ambient_temperature_unit) == ("K", "K")
    assert PYBAMM_NAMES == dict(zip(QUANTITIES, PYBAMM))


def test_names_match_ignoring_case_and_surrounding_spaces_and_keep_the_file_spelling():
    names = ["  TEST TIME / S ", "current / a", "VOLTAGE_V", "Temperature_K"]
    column_map = detect_columns(names)
    assert (column_map.time, column_map.current, column_map.voltage, column_map.temperature) == tuple(names)
    assert column_map.temperature_unit == "K" and column_map.ambient_temperature is None


def test_the_first_alias_of_a_quantity_wins_when_a_file_has_several():
    # a BDF export with both test time and unix time: test time starts at 0, listed first
    column_map = detect_columns(["Unix Time / s", "Test Time / s", "Voltage / V", "current_A", "Current / A"])
    assert (column_map.time, column_map.current) == ("Test Time / s", "current_A")
    assert COLUMN_ALIASES["time"].index(("Test Time / s", "s")) < COLUMN_ALIASES["time"].index(("Unix Time / s", "s"))


def test_optional_temperatures_are_absent_when_the_file_has_none():
    column_map = detect_columns(["time_s", "current_A", "voltage_V", "step"])
    assert column_map.temperature is None and column_map.ambient_temperature is None


@pytest.mark.parametrize("missing", REQUIRED_QUANTITIES)
def test_a_missing_required_column_names_the_file_the_quantity_and_the_accepted_names(missing):
    names = [name for name, quantity in zip(TIDY, QUANTITIES) if quantity != missing]
    with pytest.raises(DataError) as caught:
        detect_columns(names, source="cells/a.csv")
    message = str(caught.value)
    assert message.startswith(f"cells/a.csv: no {missing} column")
    assert all(f"'{alias}'" in message for alias, _ in COLUMN_ALIASES[missing])
    assert "'ambient_C'" in message and "ColumnMap(" in message and "\n" not in message


def test_column_map_rejects_non_positive_scales_and_unknown_units():
    with pytest.raises(ValueError, match="time_scale"):
        ColumnMap(time="t", current="I", voltage="V", time_scale=0.0)
    with pytest.raises(ValueError, match="temperature_unit"):
        ColumnMap(time="t", current="I", voltage="V", temperature_unit="degF")


def test_quoted_lists_names_for_messages():
    assert quoted(["a", "b c"]) == "'a', 'b c'"
    assert quoted([]) == ""
