"""Physics counterparts for measured data: a paired corpus from cycler files.

A :class:`PairingSpec` (YAML) names measured test files, how to read them, the physics cell and
fidelity, and how to calibrate. :func:`pair_measured` calibrates the cell (once on chosen
files, or on every test), drives the calibrated physics model with each test's measured current
and ambient temperature on the measured time grid, and writes the result in the corpus format
of :mod:`sim.corpus.generate`, so training code reads measured and synthetic corpora alike:

    out/
      manifest.json          schema version, resolved spec, data directory, calibration,
                             package versions, counts
      samples.parquet        one row per test: sample_id, status, message, file, tag,
                             ambient_temperature_K, rows, rows_kept, net_discharge_Ah,
                             throughput_capacity_Ah, nominal/physics_capacity_Ah,
                             calibration_* (values and fit figures), rmse_before_mV (nominal
                             cell), rmse_after_mV (calibrated cell), wall_s
      samples/part-*.parquet the same rows one file per test (the resume journal)
      series/part-*.parquet  sample_id, "Time [s]", "Current [A]", "Ambient temperature [K]",
                             "Voltage [V]" (measured), "Cell temperature [K]" (measured, when
                             logged), "Discharge capacity [A.h]", "Physics voltage [V]", ...
      cycles/part-*.parquet  per-test summary (sim.physics.summary.cycle_summary), "Source" =
                             "reference" (the measurement) or "physics"

The measured data are located through ``data_dir``, which may hold ``${HYBAT_REAL_DATA}``
(default: ``<repo>/../shared/data/real``) or be relative to it; nothing is copied.
A test that cannot be read or solved becomes a row with status "failed" and a message; one
whose physics voltage leaves the cell's window by more than VALIDITY_MARGIN_V (the model could
not carry the measured current any further) is "truncated" and its series end there.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from pydantic import Field, model_validator
from tqdm import tqdm

from sim.measured.calibrate import (DISCHARGE_CAPACITY, Calibration, CalibrationOptions, calibrate, held_integral, rmse_mV,
                           throughput_capacity)
from sim.cells import CellSpec
from sim.config import StrictModel, load_config
from sim.corpus import SCHEMA_VERSION, consolidate_journal, package_versions, write_json, write_table
from sim.errors import ConfigError, DataError, HybatError
from sim.physics import Fidelity
from sim.measured.loader import (AMBIENT_TEMPERATURE, CELL_TEMPERATURE, CURRENT, TIME, VOLTAGE, ColumnMap,
                          CurrentSign, MeasuredSeries, detect_columns, load_measured)
from sim.protocols import CurrentTrace
from sim.corpus import PHYSICS_COLUMNS
from sim.physics import ModelCache, prepare_cell, simulate
from sim.physics import cycle_summary

log = logging.getLogger(__name__)

REAL_DATA_VARIABLE = "HYBAT_REAL_DATA"
MANIFEST_CSV = "manifest.csv"
# A physics voltage this far outside the cell's window means the model cannot carry the measured
# current any further (an electrode or the electrolyte ran out; it runs on past its cut-offs to
# follow the measured current, and its voltage then means nothing); the pair ends there.
VALIDITY_MARGIN_V = 0.5


def default_real_data_dir() -> Path:
    """``$HYBAT_REAL_DATA``, else ``<repo>/../shared/data/real``."""
    fallback = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "real"
    return Path(os.environ.get(REAL_DATA_VARIABLE) or fallback)


class TestGroup(StrictModel):
    """Measured tests matched by one glob pattern (relative to the data directory).

    ambient_temperature_C: the chamber temperature [degC] of every matched test.
    ambient_manifest_column: else, the column of the ``manifest.csv`` beside the files (or in a
        folder above them, inside the data directory) that holds it [degC], looked up by the
        file's path relative to that manifest. A file with its own ambient column uses it.
    full_to_empty: the test (with its ``continued_by`` companion) runs from full to empty, so
        its net discharge is the cell's throughput capacity: reported, and the start of the
        fitted capacity (or the capacity itself with calibration capacity: throughput).
    continued_by: file-name substitutions (old: new) naming a companion file that continues
        the test's discharge to empty (A123: {script1: script2}); its net discharge is added
        to the test's own.
    tag: the cycle tag of these tests in the cycles table.
    """

    pattern: str
    ambient_temperature_C: float | None = Field(None, ge=-100.0, le=150.0)
    ambient_manifest_column: str | None = None
    full_to_empty: bool = False
    continued_by: dict[str, str] = Field(default_factory=dict)
    tag: str = "test"


class ChargeCounters(StrictModel):
    """The cycler's cumulative discharge and charge Ah columns (used for throughput only:
    they are quantised, which would make a 1 s held current noisy)."""

    discharge: str
    charge: str


class CalibrationSpec(StrictModel):
    """How the physics cell is calibrated.

    mode: "shared" fits once on ``file`` and applies the result to every test (the capacity and
        balance of one cell, carried across temperatures); "per_test" fits every test on its
        own record; "none" keeps the nominal cell.
    file: for "shared", the test file (path relative to the data directory) to fit on.
    options: what to fit and how (see sim.measured.loader.calibrate.CalibrationOptions).
    """

    mode: Literal["shared", "per_test", "none"] = "shared"
    file: str | None = None
    options: CalibrationOptions = CalibrationOptions()

    @model_validator(mode="after")
    def _file_for_shared(self) -> "CalibrationSpec":
        if self.mode == "shared" and self.file is None:
            raise ValueError("mode 'shared' needs file: the test to calibrate on")
        return self


class PairingSpec(StrictModel):
    """Measured tests and their physics counterpart.

    data_dir: where the measured files are; may hold ${HYBAT_REAL_DATA} (and other environment
        variables); a relative path is taken relative to $HYBAT_REAL_DATA.
    tests: groups of test files (glob patterns relative to data_dir).
    columns: the files' column map; null auto-detects (see sim.measured.loader.COLUMN_ALIASES).
    current_sign: the files' current convention.
    charge_counters: the cycler's cumulative Ah columns, when logged (throughput capacity).
    resample_period_s: resample every test onto this grid [s] (anti-aliased); null keeps the
        measured grid.
    end_below_voltage_V: each record ends at its first sample below this voltage (a cycler
        that overshoots its cut-off: the physics model is not meant to follow it there).
    cell: the nominal physics cell; its ambient temperature is replaced per test.
    physics: the physics model.
    compare_nominal: also run the nominal cell on every full record (for RMSE before
        calibration; doubles the solve time).
    """

    name: str = "measured"
    data_dir: str = "${HYBAT_REAL_DATA}"
    tests: list[TestGroup] = Field(min_length=1)
    columns: ColumnMap | None = None
    current_sign: CurrentSign = "discharge_positive"
    charge_counters: ChargeCounters | None = None
    resample_period_s: float | None = Field(None, gt=0.0, le=3600.0)
    end_below_voltage_V: float | None = Field(None, gt=0.0, le=5.0)
    cell: CellSpec
    physics: Fidelity = Fidelity(model="spme", thermal="lumped")
    calibration: CalibrationSpec = CalibrationSpec(mode="none")
    compare_nominal: bool = True

    def fingerprint(self) -> str:
        """Hash of the resolved spec: a resumed run must match it."""
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()[:16]


def resolve_data_dir(data_dir: str) -> Path:
    """``data_dir`` with environment variables expanded (``${HYBAT_REAL_DATA}`` defaults to
    :func:`default_real_data_dir`); a relative result is relative to that default."""
    real_data = default_real_data_dir()
    expanded = os.path.expandvars(data_dir.replace("${" + REAL_DATA_VARIABLE + "}", str(real_data))
                                  .replace("$" + REAL_DATA_VARIABLE, str(real_data)))
    if "$" in expanded:
        raise ConfigError(f"data_dir = {data_dir!r}: unset environment variable in {expanded!r}")
    path = Path(expanded)
    return path if path.is_absolute() else real_data / path


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
        tests += [_measured_test(len(tests) + offset, path, group, data_dir) for offset, path in enumerate(paths)]
    return tests


def _measured_test(index: int, path: Path, group: TestGroup, data_dir: Path) -> MeasuredTest:
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


def pair_measured(spec: PairingSpec, out_dir: str | Path, *, resume: bool = False,
                  progress: bool = True, cache: ModelCache | None = None) -> dict:
    """Calibrate, pair and write every test of ``spec`` to ``out_dir``; returns the manifest.

    ``resume`` finishes a partly written run of the same spec (the shared calibration is read
    back from its manifest). Failed tests are rows with a message.
    """
    started = time.perf_counter()
    out = Path(out_dir)
    data_dir = resolve_data_dir(spec.data_dir)
    tests = find_tests(spec, data_dir)
    shared = _prepare_directory(spec, out, resume, data_dir, cache)
    bar = tqdm(total=len(tests), desc=f"pair {spec.name}", unit="test", disable=not progress, dynamic_ncols=True)
    for test in tests:
        journal = _journal_path(out, test.index)
        if not journal.exists():
            record, series, cycles = pair_test(spec, test, shared, cache)
            if series is not None:
                write_table(series, out / "series" / f"part-{test.index:06d}.parquet")
                write_table(cycles, out / "cycles" / f"part-{test.index:06d}.parquet")
            write_table({name: [value] for name, value in record.items()}, journal)
        bar.update(1)
    bar.close()
    return _finish(spec, out, data_dir, shared, time.perf_counter() - started)


def pair_measured_cli(config_path: Path, out_dir: Path, *, resume: bool = False) -> dict:
    """`hybat pair-measured CONFIG --out DIR [--resume]`: load the YAML PairingSpec and run it;
    returns the manifest. Config and data problems raise ConfigError / DataError (one line)."""
    return pair_measured(load_config(config_path, PairingSpec), out_dir, resume=resume)


def shared_calibration(spec: PairingSpec, data_dir: Path, cache: ModelCache | None = None) -> Calibration:
    """Calibrate ``spec.cell`` on ``spec.calibration.file`` (mode "shared")."""
    file = spec.calibration.file
    matches = [test for test in find_tests(spec, data_dir) if test.relative == file]
    if matches:
        test = matches[0]
    else:
        path = data_dir / file
        if not path.is_file():
            raise ConfigError(f"calibration.file = {file!r}: not found in {data_dir}")
        group = next((g for g in spec.tests if fnmatch.fnmatch(file, g.pattern)), spec.tests[0])
        test = _measured_test(-1, path, group, data_dir)
    measured = load_test(spec, test.path, test.ambient_temperature_K)
    return _calibrate_test(spec, test, measured, cache)


def _calibrate_test(spec: PairingSpec, test: MeasuredTest, measured: MeasuredSeries,
                    cache: ModelCache | None) -> Calibration:
    net_discharge = measured_net_discharge(spec, test, measured)
    return calibrate(_cell_for(spec, measured), measured, spec.physics, options=spec.calibration.options,
                     throughput_capacity_Ah=net_discharge if test.full_to_empty else None, cache=cache)


def measured_net_discharge(spec: PairingSpec, test: MeasuredTest, measured: MeasuredSeries) -> float:
    """The test's net discharge [Ah], its companions' included (see TestGroup.continued_by);
    the throughput capacity when the test runs from full to empty."""
    companions = [load_test(spec, path, test.ambient_temperature_K) for path in test.companions]
    return throughput_capacity([measured, *companions])


def _cell_for(spec: PairingSpec, measured: MeasuredSeries) -> CellSpec:
    ambient = float(np.mean(measured.columns[AMBIENT_TEMPERATURE]))
    return spec.cell.with_updates(ambient_temperature_K=round(ambient, 2))


def pair_test(spec: PairingSpec, test: MeasuredTest, shared: Calibration | None,
              cache: ModelCache | None = None) -> tuple[dict, dict | None, dict | None]:
    """One test's samples row, series and cycles columns (None when it failed)."""
    started = time.perf_counter()
    record: dict = {"sample_id": test.index, "status": "failed", "message": "", "file": test.relative,
                    "tag": test.tag}
    try:
        measured = load_test(spec, test.path, test.ambient_temperature_K)
        record.update(ambient_temperature_K=float(np.mean(measured.columns[AMBIENT_TEMPERATURE])),
                      rows=len(measured.columns[TIME]),
                      simulated_hours=float(measured.columns[TIME][-1] / 3600.0),
                      net_discharge_Ah=measured_net_discharge(spec, test, measured))
        record["throughput_capacity_Ah"] = record["net_discharge_Ah"] if test.full_to_empty else float("nan")
        calibration = (_calibrate_test(spec, test, measured, cache) if spec.calibration.mode == "per_test"
                       else shared)
        result = _pair(spec, test, measured, calibration, record, cache)
    except Exception as error:  # an unreadable file or an unusable record is data, not a crash
        record["message"] = str(error) if isinstance(error, HybatError) else f"{type(error).__name__}: {error}"
        result = (record, None, None)
    result[0]["wall_s"] = time.perf_counter() - started
    return result


def _pair(spec: PairingSpec, test: MeasuredTest, measured: MeasuredSeries, calibration: Calibration | None,
          record: dict, cache: ModelCache | None) -> tuple[dict, dict | None, dict | None]:
    time_s = measured.columns[TIME]
    trace = CurrentTrace(time_s, measured.columns[CURRENT])
    nominal = _cell_for(spec, measured)
    cell = calibration.apply(nominal) if calibration is not None else nominal
    if calibration is not None:
        record.update(calibration.to_record())
    prepared = prepare_cell(cell, spec.physics)
    record.update(nominal_capacity_Ah=prepare_cell(nominal, spec.physics).capacity_Ah,
                  physics_capacity_Ah=prepared.capacity_Ah)
    physics = simulate(cell, trace, spec.physics, cache=cache, voltage_cutoffs=False)
    produced = len(physics.columns[TIME]) if physics.ok else 0
    if produced and not np.array_equal(physics.columns[TIME], time_s[:produced]):
        produced = 0  # not the measured grid: nothing to pair
    voltage = physics.columns[VOLTAGE][:produced] if produced else np.array([])
    kept = _valid_rows(voltage, prepared.window.lower, prepared.window.upper)
    if kept < 2:
        record["message"] = f"physics: {physics.message}" + ("" if produced < 2 else "; voltage outside its window")
        return record, None, None
    status, message = physics.status, f"physics: {physics.message}"
    if kept < produced:
        status, message = "truncated", (
            f"physics: voltage left [{prepared.window.lower}, {prepared.window.upper}] V by more than "
            f"{VALIDITY_MARGIN_V} V at t = {time_s[kept]:.0f} s (the model cannot carry the measured current "
            f"further: an electrode or the electrolyte ran out); the series end there")
    reference = {name: values[:kept] for name, values in _reference_columns(measured).items()}
    physics_columns = {name: values[:kept] for name, values in physics.columns.items()}
    record.update(status=status, message=message, rows_kept=kept,
                  rmse_after_mV=rmse_mV(physics_columns[VOLTAGE] - reference[VOLTAGE]))
    if spec.compare_nominal:
        before = simulate(nominal, trace, spec.physics, cache=cache, voltage_cutoffs=False)
        record["rmse_before_mV"] = (rmse_mV(before.columns[VOLTAGE][:kept] - reference[VOLTAGE])
                                    if before.ok and len(before.columns[TIME]) >= kept else float("nan"))
    boundaries = [(test.tag, float(time_s[0]), float(time_s[kept - 1]))]
    cycles = _cycles(test.index, cycle_summary(reference, boundaries), cycle_summary(physics_columns, boundaries))
    return record, _series(test.index, reference, physics_columns), cycles


def _valid_rows(voltage: np.ndarray, lower_V: float, upper_V: float) -> int:
    """How many leading samples stay within the voltage window widened by VALIDITY_MARGIN_V."""
    outside = ~((voltage > lower_V - VALIDITY_MARGIN_V) & (voltage < upper_V + VALIDITY_MARGIN_V))
    return int(np.argmax(outside)) if outside.any() else len(voltage)


def _reference_columns(measured: MeasuredSeries) -> dict[str, np.ndarray]:
    """The measured channels under corpus names; "Discharge capacity [A.h]" is the cycler's
    counter when configured, else the integral of the held measured current."""
    columns = {name: measured.columns[name] for name in (TIME, CURRENT, AMBIENT_TEMPERATURE, VOLTAGE,
                                                         CELL_TEMPERATURE) if name in measured.columns}
    if DISCHARGE_CAPACITY in measured.columns:
        columns[DISCHARGE_CAPACITY] = measured.columns[DISCHARGE_CAPACITY]
    else:
        columns[DISCHARGE_CAPACITY] = held_integral(measured.columns[TIME], measured.columns[CURRENT]) / 3600.0
    return columns


def _series(index: int, reference: dict[str, np.ndarray], physics: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    series = {"sample_id": np.full(len(reference[TIME]), index, dtype=np.int64), **reference}
    series.update({column: physics[name] for name, column in PHYSICS_COLUMNS.items() if name in physics})
    return series


def _cycles(index: int, reference: dict[str, np.ndarray], physics: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    names = [name for name in reference if name in physics]
    count = (len(reference["Tag"]), len(physics["Tag"]))
    cycles = {"sample_id": np.full(sum(count), index, dtype=np.int64),
              "Source": np.array(["reference"] * count[0] + ["physics"] * count[1])}
    cycles.update({name: np.concatenate([reference[name], physics[name]]) for name in names})
    return cycles


def _journal_path(out: Path, index: int) -> Path:
    return out / "samples" / f"part-{index:06d}.parquet"


def _prepare_directory(spec: PairingSpec, out: Path, resume: bool, data_dir: Path,
                       cache: ModelCache | None) -> Calibration | None:
    """Make the folders, run (or read back) the shared calibration, write a running manifest."""
    manifest_path = out / "manifest.json"
    if out.exists() and any(out.iterdir()):
        if not resume:
            raise ConfigError(f"out_dir {out} is not empty; pass resume to finish it or choose another directory")
        manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
        if manifest.get("fingerprint") != spec.fingerprint():
            raise ConfigError(f"out_dir {out}: cannot resume, it holds a different pairing spec (or none)")
        stored = manifest.get("calibration")
        return Calibration(**stored) if stored else None
    shared = shared_calibration(spec, data_dir, cache) if spec.calibration.mode == "shared" else None
    for folder in ("samples", "series", "cycles"):
        (out / folder).mkdir(parents=True, exist_ok=True)
    write_json(manifest_path, _manifest(spec, "running", data_dir, shared))
    return shared


def _manifest(spec: PairingSpec, status: str, data_dir: Path, shared: Calibration | None) -> dict:
    return {"schema_version": SCHEMA_VERSION, "kind": "measured", "status": status, "name": spec.name,
            "fingerprint": spec.fingerprint(), "spec": spec.model_dump(mode="json"),
            "data_dir": str(data_dir), "calibration": asdict(shared) if shared is not None else None,
            "versions": package_versions(), "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def _finish(spec: PairingSpec, out: Path, data_dir: Path, shared: Calibration | None, wall_s: float) -> dict:
    """Consolidate the journal into samples.parquet and write the final manifest."""
    manifest = _manifest(spec, "complete", data_dir, shared) | consolidate_journal(out) | {
        "backend": "serial", "wall_s": wall_s}
    write_json(out / "manifest.json", manifest)
    return manifest

