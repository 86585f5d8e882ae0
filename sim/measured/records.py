"""The measured tests a :class:`~sim.measured.spec.PairingSpec` names, and each record as the
physics model will see it (loaded, resampled, with the cycler's net charge counter, ended at a
cut-off voltage), with its net discharge.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from sim.errors import ConfigError, DataError
from sim.measured.columns import AMBIENT_TEMPERATURE, TIME, VOLTAGE, detect_columns
from sim.measured.fit_data import DISCHARGE_CAPACITY, throughput_capacity
from sim.measured.loader import MeasuredSeries, load_measured
from sim.measured.spec import REAL_DATA_VARIABLE, PairingSpec, TestGroup

MANIFEST_CSV = "manifest.csv"


@dataclass(frozen=True)
class MeasuredTest:
    """One test file to pair: where it is and what is known about it."""

    index: int
    path: Path
    relative: str              # path relative to the data directory (posix)
    ambient_temperature_K: float | None
    companions: tuple[Path, ...]
    tag: str
    full_to_empty: bool = False


def find_tests(spec: PairingSpec, data_dir: Path) -> list[MeasuredTest]:
    """The tests ``spec`` names, in pattern order then file-name order; ConfigError when a
    pattern matches nothing."""
    if not data_dir.is_dir():
        raise ConfigError(f"data_dir: {data_dir} is not a directory (set ${REAL_DATA_VARIABLE} or data_dir)")
    tests: list[MeasuredTest] = []
    for number, group in enumerate(spec.tests):
        paths = sorted(path for path in data_dir.glob(group.pattern) if path.is_file())
        if not paths:
            raise ConfigError(f"tests.{number}.pattern = {group.pattern!r}: no file matches in {data_dir}")
        tests += [measured_test(len(tests) + offset, path, group, data_dir) for offset, path in enumerate(paths)]
    return tests


def measured_test(index: int, path: Path, group: TestGroup, data_dir: Path) -> MeasuredTest:
    """Test ``index``: the file ``path`` of ``group``, with its companions and ambient temperature."""
    companions = tuple(_companion(path, old, new) for old, new in group.continued_by.items())
    return MeasuredTest(index, path, path.relative_to(data_dir).as_posix(),
                        _ambient_temperature_K(group, path, data_dir), companions, group.tag, group.full_to_empty)


def _companion(path: Path, old: str, new: str) -> Path:
    if old not in path.name:
        raise ConfigError(f"continued_by: {old!r} does not occur in the file name {path.name!r}")
    return path.with_name(path.name.replace(old, new))


def _ambient_temperature_K(group: TestGroup, path: Path, data_dir: Path) -> float | None:
    if group.ambient_temperature_C is not None:
        return group.ambient_temperature_C + 273.15
    if group.ambient_manifest_column is None:
        return None
    for folder in [path.parent, *path.parent.parents]:
        manifest = folder / MANIFEST_CSV
        if manifest.is_file():
            table = pd.read_csv(manifest)
            key = path.relative_to(folder).as_posix()
            if "file" not in table or group.ambient_manifest_column not in table:
                raise DataError(f"{manifest}: needs columns 'file' and '{group.ambient_manifest_column}'")
            rows = table.loc[table["file"] == key, group.ambient_manifest_column]
            if rows.empty or pd.isna(rows.iloc[0]):
                raise DataError(f"{manifest}: no '{group.ambient_manifest_column}' for file '{key}'")
            return float(rows.iloc[0]) + 273.15
        if folder == data_dir:
            break
    raise DataError(f"{path}: no {MANIFEST_CSV} between the file and {data_dir} "
                    f"(tests.ambient_manifest_column = {group.ambient_manifest_column!r})")


def load_test(spec: PairingSpec, path: Path, ambient_temperature_K: float | None) -> MeasuredSeries:
    """One measured record as the physics model will see it: loaded, resampled, with the
    cycler's net discharge counter (when configured) as "Discharge capacity [A.h]", and ended
    at ``spec.end_below_voltage_V``."""
    series = load_measured(path, columns=spec.columns, current_sign=spec.current_sign,
                           ambient_temperature_K=ambient_temperature_K,
                           resample_period_s=spec.resample_period_s)
    if AMBIENT_TEMPERATURE not in series.columns:
        raise ConfigError(f"{path}: no ambient temperature: give tests.ambient_temperature_C or "
                          f"tests.ambient_manifest_column")
    columns = dict(series.columns)
    if spec.charge_counters is not None:
        columns[DISCHARGE_CAPACITY] = _net_counter(spec, path, columns[TIME])
    if spec.end_below_voltage_V is not None:
        below = np.flatnonzero(columns[VOLTAGE] < spec.end_below_voltage_V)
        if below.size:
            if below[0] < 2:
                raise DataError(f"{path}: starts below end_below_voltage_V = {spec.end_below_voltage_V} V")
            columns = {name: values[: below[0]] for name, values in columns.items()}
    return MeasuredSeries(series.source, columns, series.sample_period_s, series.source_columns)


def _net_counter(spec: PairingSpec, path: Path, time_s: np.ndarray) -> np.ndarray:
    """Net discharge counter [Ah] at ``time_s``: the cycler's discharge minus charge Ah,
    interpolated (both are cumulative) onto the record's (possibly resampled) grid."""
    counters = spec.charge_counters
    is_csv = path.name.lower().endswith((".csv", ".csv.gz"))
    names = pd.read_csv(path, nrows=0).columns.tolist() if is_csv else pq.read_schema(path).names
    column_map = spec.columns or detect_columns(names, str(path))
    wanted = [column_map.time, counters.discharge, counters.charge]
    try:
        frame = pd.read_csv(path, usecols=wanted) if is_csv else pd.read_parquet(path, columns=wanted)
    except ValueError as error:
        raise DataError(f"{path}: charge_counters: {str(error).splitlines()[0]}") from None
    raw_time = frame[column_map.time].to_numpy(float)
    net = frame[counters.discharge].to_numpy(float) - frame[counters.charge].to_numpy(float)
    return np.interp(time_s, (raw_time - raw_time[0]) * column_map.time_scale, net - net[0])


def measured_net_discharge(spec: PairingSpec, test: MeasuredTest, measured: MeasuredSeries) -> float:
    """The test's net discharge [Ah], its companions' included (see TestGroup.continued_by);
    the throughput capacity when the test runs from full to empty."""
    companions = [load_test(spec, path, test.ambient_temperature_K) for path in test.companions]
    return throughput_capacity([measured, *companions])


def record_capacity_Ah(row: Mapping[str, Any]) -> tuple[float, str]:
    """The capacity [A.h] of a paired measured record (its samples-table row) that scales its
    current to C-rates and counts its SOC from full: its throughput capacity when the test ran
    full to empty ("throughput"), else the calibrated physics cell's ("physics"); (nan, "")
    when neither is known."""
    for name, source in (("throughput_capacity_Ah", "throughput"), ("physics_capacity_Ah", "physics")):
        value = row.get(name)
        if value is not None and math.isfinite(float(value)) and float(value) > 0.0:
            return float(value), source
    return math.nan, ""
