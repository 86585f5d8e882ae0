"""Measured cycler time series as PyBaMM-named SI columns.

:func:`load_measured` reads one CSV, gzip CSV (``.csv.gz``) or Parquet file, finds its time,
current, voltage and temperature columns (from known aliases, see
:data:`sim.measured.columns.COLUMN_ALIASES`, or from a :class:`~sim.measured.columns.ColumnMap`), converts them to SI with discharge current positive, validates
them and, on request, resamples them onto a uniform grid. Every problem with the file is a
one-line :class:`~sim.errors.DataError` naming the file, the column and the offending value
or row; bad arguments are a :class:`~sim.errors.ConfigError`. Rows are 0-based data rows
(the header is not counted), as pandas numbers them.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from sim.config import validate
from sim.errors import ConfigError, DataError
from sim.measured.columns import (AMBIENT_TEMPERATURE, CURRENT, PYBAMM_NAMES, TIME, VOLTAGE,
                                  ColumnMap, CurrentSign, Direction, detect_columns, quoted)
from sim.signals import resample

log = logging.getLogger(__name__)

ZERO_CELSIUS_K = 273.15
# A cell or chamber outside -100..150 degC means a unit mix-up (K read as degC or the reverse).
PLAUSIBLE_TEMPERATURE_K = (173.15, 423.15)
# No single cell has a median terminal voltage above 100 V or carries more than 1000 A.
MILLIVOLT_MEDIAN = 100.0
MILLIAMP_MAX = 1000.0
# (max dt - min dt) / median dt above this makes the sampling irregular.
IRREGULAR_SPREAD = 0.01
# Longer NaN runs than this are missing data, not dropped samples, and are not interpolated.
MAX_INTERPOLATED_NAN_RUN = 2
# Cyclers write the float32 extreme (+-3.4e38) where a channel has no value for a sample (the
# Samsung 30Q S002 1C test's first current): read as missing, like a NaN.
MISSING_MARKER = 3.0e38


@dataclass(frozen=True)
class MeasuredSeries:
    """One measured test on a common time grid.

    source: the file it was read from.
    columns: PyBaMM name -> (n,) float64 array, SI units, discharge current positive:
        "Time [s]" (0 at the first sample), "Current [A]", "Voltage [V]" and, when known,
        "Cell temperature [K]", "Ambient temperature [K]".
    sample_period_s: the grid period [s]; None when the sampling is irregular.
    source_columns: PyBaMM name -> the file's column it came from (for messages).
    """

    source: str
    columns: dict[str, np.ndarray]
    sample_period_s: float | None
    source_columns: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        missing = [name for name in (TIME, CURRENT, VOLTAGE) if name not in self.columns]
        if missing:
            raise DataError(f"{self.source}: series lacks required column(s) {missing}")
        lengths = {name: len(values) for name, values in self.columns.items()}
        if len(set(lengths.values())) != 1:
            raise DataError(f"{self.source}: columns differ in length: {lengths}")

    def to_frame(self) -> pd.DataFrame:
        """The columns as a DataFrame with PyBaMM column names."""
        return pd.DataFrame(self.columns)

    def net_discharge_Ah(self) -> float:
        """Net charge taken out of the cell [Ah]: trapezoidal integral of discharge current."""
        return float(np.trapezoid(self.columns[CURRENT], self.columns[TIME]) / 3600.0)


def load_measured(
    path: str | Path,
    *,
    columns: ColumnMap | dict[str, Any] | None = None,
    current_sign: CurrentSign = "discharge_positive",
    ambient_temperature_K: float | None = None,
    resample_period_s: float | None = None,
    anti_alias: bool = True,
    expect: Direction | None = None,
) -> MeasuredSeries:
    """Load a measured cycler time series from a CSV, ``.csv.gz`` or Parquet file.

    path: the file; its suffix picks the reader.
    columns: which columns hold what; None auto-detects from :data:`COLUMN_ALIASES`.
    current_sign: the file's convention; "charge_positive" currents are negated so the
        result is discharge positive.
    ambient_temperature_K: constant ambient temperature [K] used when the file has no ambient
        column (e.g. the chamber set-point); ignored when it has one.
    resample_period_s: if given, every channel is resampled onto a uniform grid of this
        period [s] with :func:`sim.signals.filters.resample` (``anti_alias`` passed through).
    expect: "discharge" or "charge" for a test known to be one; raises DataError when the
        net charge throughput has the other sign (see :func:`check_sign_convention`).
    """
    path = Path(path)
    source = str(path)
    _check_arguments(current_sign, ambient_temperature_K, resample_period_s, expect)
    declared_map = None if columns is None else _as_column_map(columns)
    file_format = _file_format(path)
    names = _file_column_names(path, file_format)
    column_map = declared_map or detect_columns(names, source)
    wanted = _mapped_columns(column_map)
    absent = [column for column in wanted.values() if column not in names]
    if absent:
        raise DataError(f"{source}: column '{absent[0]}' not found; the file has {quoted(names)}")
    frame = _read_columns(path, file_format, list(wanted.values()))
    if len(frame) < 2:
        raise DataError(f"{source}: needs at least 2 rows of data, found {len(frame)}")

    series_columns = _convert(frame, column_map, current_sign, source)
    if AMBIENT_TEMPERATURE not in series_columns and ambient_temperature_K is not None:
        series_columns[AMBIENT_TEMPERATURE] = np.full(len(frame), float(ambient_temperature_K))
    source_columns = {pybamm_name: wanted[quantity]
                      for quantity, pybamm_name in PYBAMM_NAMES.items() if quantity in wanted}
    series = MeasuredSeries(source, series_columns, _uniform_period(series_columns[TIME]),
                            source_columns)
    if series.sample_period_s is None and resample_period_s is None:
        log.info("%s: irregular sampling kept (sample_period_s=None)", source)
    if resample_period_s is not None:
        series = _resampled(series, resample_period_s, anti_alias)
    if expect is not None:
        check_sign_convention(series, expect)
    return series


def check_sign_convention(series: MeasuredSeries, expect: Direction) -> float:
    """Raise DataError if a known discharge (charge) test has net charge going in (out).

    A known discharge test whose current is mostly negative under the discharge-positive
    convention means the declared ``current_sign`` was wrong. Returns the net discharge
    throughput [Ah].
    """
    if expect not in ("discharge", "charge"):
        raise ConfigError(f"expect={expect!r}: allowed values are 'discharge', 'charge'")
    net_Ah = series.net_discharge_Ah()
    wrong_sign = net_Ah <= 0 if expect == "discharge" else net_Ah >= 0
    if wrong_sign:
        column = series.source_columns.get(CURRENT, CURRENT)
        raise DataError(
            f"{series.source}: column '{column}' gives a net discharge throughput of "
            f"{net_Ah:.4g} Ah on a known {expect} test; the current sign convention looks "
            f"inverted: load it with the other current_sign"
        )
    return net_Ah


def _check_arguments(current_sign: str, ambient_temperature_K: float | None,
                     resample_period_s: float | None, expect: str | None) -> None:
    if current_sign not in ("discharge_positive", "charge_positive"):
        raise ConfigError(f"current_sign={current_sign!r}: allowed values are "
                          f"'discharge_positive', 'charge_positive'")
    if expect not in (None, "discharge", "charge"):
        raise ConfigError(f"expect={expect!r}: allowed values are None, 'discharge', 'charge'")
    if resample_period_s is not None and not (math.isfinite(resample_period_s)
                                              and resample_period_s > 0):
        raise ConfigError(f"resample_period_s={resample_period_s!r}: must be a positive number "
                          f"of seconds or None")
    low, high = PLAUSIBLE_TEMPERATURE_K
    if ambient_temperature_K is not None and not low <= ambient_temperature_K <= high:
        raise ConfigError(f"ambient_temperature_K={ambient_temperature_K!r}: must be in "
                          f"{low}..{high} K (add 273.15 to a value in degC)")


def _as_column_map(columns: ColumnMap | dict[str, Any]) -> ColumnMap:
    if isinstance(columns, ColumnMap):
        return columns
    if isinstance(columns, dict):
        return validate(ColumnMap, columns, "columns")
    raise ConfigError(f"columns: expected a ColumnMap, a dict or None, got "
                      f"{type(columns).__name__}")


def _mapped_columns(column_map: ColumnMap) -> dict[str, str]:
    """quantity -> source column name, for the quantities the map names."""
    return {quantity: getattr(column_map, quantity) for quantity in PYBAMM_NAMES
            if getattr(column_map, quantity) is not None}


def _file_format(path: Path) -> Literal["csv", "parquet"]:
    name = path.name.lower()
    if name.endswith((".csv", ".csv.gz")):
        return "csv"
    if name.endswith((".parquet", ".pq")):
        return "parquet"
    raise DataError(f"{path}: unsupported file type; expected .csv, .csv.gz or .parquet")


def _file_column_names(path: Path, file_format: str) -> list[str]:
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        if file_format == "parquet":
            return list(pq.read_schema(path).names)
        return [str(name) for name in pd.read_csv(path, nrows=0).columns]
    except (OSError, ValueError, EOFError) as error:
        raise DataError(f"{path}: cannot read as {file_format}: {_first_line(error)}") from None


def _read_columns(path: Path, file_format: str, names: list[str]) -> pd.DataFrame:
    try:
        if file_format == "parquet":
            return pd.read_parquet(path, columns=names)
        return pd.read_csv(path, usecols=names)
    except (OSError, ValueError, EOFError) as error:
        raise DataError(f"{path}: cannot read as {file_format}: {_first_line(error)}") from None


def _convert(frame: pd.DataFrame, column_map: ColumnMap, current_sign: str,
             source: str) -> dict[str, np.ndarray]:
    """Validated SI channels under PyBaMM names, in canonical order."""
    raw_time = _numeric(frame, column_map.time, source, along=None)
    _check_increasing(raw_time, column_map.time, source)
    time_s = (raw_time - raw_time[0]) * column_map.time_scale

    current = _numeric(frame, column_map.current, source, along=time_s)
    if column_map.current_scale is None:
        _check_not_milliamps(current, column_map.current, source)
    current = current * (column_map.current_scale or 1.0)
    if current_sign == "charge_positive":
        current = -current

    voltage = _numeric(frame, column_map.voltage, source, along=time_s)
    if column_map.voltage_scale is None:
        _check_not_millivolts(voltage, column_map.voltage, source)
    channels = {TIME: time_s, CURRENT: current,
                VOLTAGE: voltage * (column_map.voltage_scale or 1.0)}

    for quantity, unit in (("temperature", column_map.temperature_unit),
                           ("ambient_temperature", column_map.ambient_temperature_unit)):
        column = getattr(column_map, quantity)
        if column is not None:
            values = _numeric(frame, column, source, along=time_s)
            channels[PYBAMM_NAMES[quantity]] = _temperature_K(values, unit, column, source)
    return channels


def _numeric(frame: pd.DataFrame, column: str, source: str,
             along: np.ndarray | None) -> np.ndarray:
    """The column as float64 with short NaN runs interpolated (over ``along`` or row index)."""
    raw = frame[column]
    values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=float, na_value=np.nan, copy=True)
    garbage = np.isnan(values) & raw.notna().to_numpy()
    if garbage.any():
        row = int(np.flatnonzero(garbage)[0])
        raise DataError(f"{source}: column '{column}' row {row} holds {raw.iloc[row]!r}, "
                        f"which is not a number")
    if np.isinf(values).any():
        row = int(np.flatnonzero(np.isinf(values))[0])
        raise DataError(f"{source}: column '{column}' row {row} is {values[row]}")
    values[np.abs(values) >= MISSING_MARKER] = np.nan
    return _fill_short_nan_runs(values, column, source, along)


def _fill_short_nan_runs(values: np.ndarray, column: str, source: str,
                         along: np.ndarray | None) -> np.ndarray:
    missing = np.isnan(values)
    if not missing.any():
        return values
    edges = np.diff(np.concatenate(([0], missing.astype(np.int8), [0])))
    starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    longest = int(np.argmax(stops - starts))
    if stops[longest] - starts[longest] > MAX_INTERPOLATED_NAN_RUN:
        raise DataError(
            f"{source}: column '{column}' has {stops[longest] - starts[longest]} consecutive NaN "
            f"values at rows {starts[longest]}-{stops[longest] - 1}; at most "
            f"{MAX_INTERPOLATED_NAN_RUN} in a row are interpolated"
        )
    if missing.all():
        raise DataError(f"{source}: column '{column}' holds no value")
    x = np.arange(len(values), dtype=float) if along is None else along
    filled = values.copy()
    filled[missing] = np.interp(x[missing], x[~missing], values[~missing])  # the nearest value at the ends
    log.warning("%s: column '%s': filled %d missing value(s) (NaN or the +-3.4e38 marker) at rows %s, "
                "linearly inside, by the nearest value at the ends",
                source, column, int(missing.sum()), np.flatnonzero(missing)[:10].tolist())
    return filled


def _check_increasing(time: np.ndarray, column: str, source: str) -> None:
    steps = np.diff(time)
    bad = np.flatnonzero(steps <= 0)
    if bad.size:
        row = int(bad[0]) + 1
        kind = "duplicated" if steps[bad[0]] == 0 else "decreasing"
        raise DataError(
            f"{source}: column '{column}' must strictly increase but row {row} has "
            f"{float(time[row])!r} after {float(time[row - 1])!r} ({kind} time, "
            f"{bad.size} such row(s)); pick another time column with columns=ColumnMap(...) "
            f"or split the file"
        )


def _check_not_milliamps(current: np.ndarray, column: str, source: str) -> None:
    row = int(np.argmax(np.abs(current)))
    if abs(current[row]) > MILLIAMP_MAX:
        raise DataError(
            f"{source}: column '{column}' reaches {current[row]:.6g} at row {row}, which looks "
            f"like milliamps; divide by 1000 or declare the unit (current_scale=0.001 for mA, "
            f"1.0 if amperes are right)"
        )


def _check_not_millivolts(voltage: np.ndarray, column: str, source: str) -> None:
    median = float(np.median(voltage))
    if median > MILLIVOLT_MEDIAN:
        raise DataError(
            f"{source}: column '{column}' has median {median:.6g}, which looks like millivolts; "
            f"divide by 1000 or declare the unit (voltage_scale=0.001 for mV, 1.0 if volts "
            f"are right)"
        )


def _temperature_K(values: np.ndarray, unit: str, column: str, source: str) -> np.ndarray:
    kelvin = values + ZERO_CELSIUS_K if unit == "degC" else values
    low, high = PLAUSIBLE_TEMPERATURE_K
    outside = np.flatnonzero((kelvin < low) | (kelvin > high))
    if outside.size:
        row = int(outside[0])
        median_K = float(np.median(kelvin))
        if unit == "degC" and median_K > high:
            hint = "looks like kelvin; declare temperature_unit='K'"
        elif unit == "K" and median_K < low:
            hint = "looks like degC; declare temperature_unit='degC'"
        else:
            hint = "check the sensor"
        offset = ZERO_CELSIUS_K if unit == "degC" else 0.0
        raise DataError(
            f"{source}: column '{column}' row {row} is {values[row]:.6g} {unit}, outside the "
            f"plausible {low - offset:.6g}..{high - offset:.6g} {unit}; {hint}"
        )
    return kelvin


def _uniform_period(time_s: np.ndarray) -> float | None:
    """The median time step [s], or None if the steps spread by more than IRREGULAR_SPREAD."""
    steps = np.diff(time_s)
    period = float(np.median(steps))
    if (steps.max() - steps.min()) / period > IRREGULAR_SPREAD:
        return None
    return period


def _resampled(series: MeasuredSeries, period_s: float, anti_alias: bool) -> MeasuredSeries:
    names = [name for name in series.columns if name != TIME]
    stacked = np.column_stack([series.columns[name] for name in names])  # (n, channels)
    time_s, values = resample(series.columns[TIME], stacked, period_s, anti_alias=anti_alias)
    values = np.asarray(values, dtype=float).reshape(len(time_s), len(names))
    columns = {TIME: np.asarray(time_s, dtype=float)}
    columns.update({name: np.ascontiguousarray(values[:, index])
                    for index, name in enumerate(names)})
    log.info("%s: resampled %d rows onto a %g s grid (%d rows, anti_alias=%s)", series.source,
             len(series.columns[TIME]), period_s, len(time_s), anti_alias)
    return MeasuredSeries(series.source, columns, float(period_s), series.source_columns)


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
