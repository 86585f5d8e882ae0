"""What a cycler file's columns are called: the PyBaMM names of the measured channels, the
known aliases of each quantity (:data:`COLUMN_ALIASES`), the :class:`ColumnMap` that names a
file's columns and their units, and :func:`detect_columns`, which builds one from the aliases.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from sim.config import StrictModel
from sim.errors import DataError

TIME = "Time [s]"
CURRENT = "Current [A]"
VOLTAGE = "Voltage [V]"
CELL_TEMPERATURE = "Cell temperature [K]"
AMBIENT_TEMPERATURE = "Ambient temperature [K]"
# the uncalibrated (nominal) cell driven by the same measured current, kept beside the calibrated
# "Physics voltage [V]" by pairing with compare_nominal: a baseline to score, never a feature
NOMINAL_PHYSICS_VOLTAGE = "Nominal physics voltage [V]"

TemperatureUnit = Literal["degC", "K"]
CurrentSign = Literal["discharge_positive", "charge_positive"]
Direction = Literal["discharge", "charge"]

# quantity -> (source column name, unit), in order of preference; matched ignoring case and
# surrounding spaces. Tidy names, hybat/PyBaMM names, BDF preferred labels, BDF machine names.
COLUMN_ALIASES: dict[str, tuple[tuple[str, str], ...]] = {
    "time": (
        ("time_s", "s"), (TIME, "s"), ("Test Time / s", "s"), ("test_time_second", "s"),
        ("Unix Time / s", "s"), ("unix_time_second", "s"),
    ),
    "current": (
        ("current_A", "A"), (CURRENT, "A"), ("Current / A", "A"), ("current_ampere", "A"),
    ),
    "voltage": (
        ("voltage_V", "V"), (VOLTAGE, "V"), ("Voltage / V", "V"), ("voltage_volt", "V"),
    ),
    "temperature": (
        ("temperature_C", "degC"), ("temperature_K", "K"), (CELL_TEMPERATURE, "K"),
        ("Temperature T1 / degC", "degC"), ("Surface Temperature T1 / degC", "degC"),
        ("temperature_t1_celsius", "degC"),
    ),
    "ambient_temperature": (
        ("ambient_C", "degC"), ("ambient_K", "K"), (AMBIENT_TEMPERATURE, "K"),
        ("Ambient Temperature / degC", "degC"), ("ambient_temperature_celsius", "degC"),
    ),
}
REQUIRED_QUANTITIES = ("time", "current", "voltage")


class ColumnMap(StrictModel):
    """Source column names for each quantity (None = absent) and their units.

    time, current, voltage: required column names.
    temperature, ambient_temperature: cell surface and chamber temperature columns, optional.
    time_scale: seconds per source time unit (3600 for hours). Time is shifted to start at 0.
    current_scale, voltage_scale: amperes / volts per source unit (0.001 for mA / mV).
        None means amperes / volts, checked against the milliamp / millivolt heuristics;
        a declared scale (even 1.0) turns those heuristics off.
    temperature_unit, ambient_temperature_unit: "degC" or "K".
    """

    time: str
    current: str
    voltage: str
    temperature: str | None = None
    ambient_temperature: str | None = None
    time_scale: float = Field(1.0, gt=0)
    current_scale: float | None = Field(None, gt=0)
    voltage_scale: float | None = Field(None, gt=0)
    temperature_unit: TemperatureUnit = "degC"
    ambient_temperature_unit: TemperatureUnit = "degC"


def detect_columns(names: list[str], source: str = "file") -> ColumnMap:
    """Build a ColumnMap from the file's column ``names`` using :data:`COLUMN_ALIASES`."""
    by_key = {_alias_key(name): name for name in names}
    found: dict[str, tuple[str, str]] = {}
    for quantity, aliases in COLUMN_ALIASES.items():
        match = next(((by_key[_alias_key(alias)], unit) for alias, unit in aliases
                      if _alias_key(alias) in by_key), None)
        if match is not None:
            found[quantity] = match
    for quantity in REQUIRED_QUANTITIES:
        if quantity not in found:
            accepted = quoted([alias for alias, _ in COLUMN_ALIASES[quantity]])
            raise DataError(
                f"{source}: no {quantity} column; accepted names: {accepted}; the file has "
                f"{quoted(names)}; name it with columns=ColumnMap(...)"
            )
    units = {quantity: unit for quantity, (_, unit) in found.items()}
    return ColumnMap(
        **{quantity: column for quantity, (column, _) in found.items()},
        temperature_unit=units.get("temperature", "degC"),
        ambient_temperature_unit=units.get("ambient_temperature", "degC"),
    )


PYBAMM_NAMES = {
    "time": TIME,
    "current": CURRENT,
    "voltage": VOLTAGE,
    "temperature": CELL_TEMPERATURE,
    "ambient_temperature": AMBIENT_TEMPERATURE,
}


def _alias_key(name: str) -> str:
    return name.strip().casefold()


def quoted(names: list[str]) -> str:
    """The names, quoted and comma-separated, for messages."""
    return ", ".join(f"'{name}'" for name in names)
