"""Physics counterparts for measured data: a paired corpus from cycler files.

:func:`pair_measured` calibrates the cell of a :class:`~sim.measured.spec.PairingSpec` (once on
chosen files, then optionally its series resistance over tests at several temperatures, or on
every test), drives the calibrated physics model with each test's measured
current and ambient temperature on the measured time grid, and writes the result with
:class:`sim.corpus.CorpusWriter`, so training code reads measured and synthetic corpora alike.
The manifest adds "kind": "measured", the data directory and the shared calibration; a samples
row holds sample_id, status, message, file, tag, ambient_temperature_K, rows, rows_kept,
net_discharge_Ah, throughput_capacity_Ah, nominal/physics_capacity_Ah, calibration_* (values
and fit figures), rmse_before_mV (nominal cell), rmse_after_mV (calibrated cell) and wall_s;
the cycles are one per-test summary (:func:`sim.physics.cycle_summary`), "Source" = "reference"
(the measurement) or "physics". With compare_nominal the series also hold the nominal cell's
voltage, "Nominal physics voltage [V]" (NaN on rows it did not solve), to score per row.

A test that cannot be read or solved becomes a row with status "failed" and a message; one
whose physics voltage leaves the cell's window (:mod:`sim.corpus.validity`: the model could
not carry the measured current any further) is "truncated" and its series end there.
"""

from __future__ import annotations

import fnmatch
import logging
import math
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from sim.cells import CellSpec
from sim.config import load_config
from sim.corpus import CorpusWriter, SampleResult, cycles_table, left_window_message, rows_inside_window, series_table
from sim.errors import ConfigError, HybatError
from sim.measured.calibrate import Calibration, calibrate
from sim.measured.columns import (AMBIENT_TEMPERATURE, CELL_TEMPERATURE, CURRENT, NOMINAL_PHYSICS_VOLTAGE, TIME,
                                  VOLTAGE)
from sim.measured.fit_data import DISCHARGE_CAPACITY, held_integral, rmse_mV
from sim.measured.loader import MeasuredSeries
from sim.measured.records import MeasuredTest, measured_test, find_tests, load_test, measured_net_discharge
from sim.measured.spec import PairingSpec, resolve_data_dir
from sim.measured.temperature_fit import fit_series_resistance
from sim.physics import ModelCache, Trajectory, cycle_summary, prepare_cell, simulate
from sim.plant import TRUTH_COLUMNS
from sim.protocols import CurrentTrace

log = logging.getLogger(__name__)


def pair_measured(spec: PairingSpec, out_dir: str | Path, *, resume: bool = False,
                  progress: bool = True, cache: ModelCache | None = None) -> dict:
    """Calibrate, pair and write every test of ``spec`` to ``out_dir``; returns the manifest.

    ``resume`` finishes a partly written run of the same spec (the shared calibration is read
    back from its manifest). Failed tests are rows with a message.
    """
    started = time.perf_counter()
    data_dir = resolve_data_dir(spec.data_dir)
    tests = find_tests(spec, data_dir)
    writer = CorpusWriter(out_dir, spec, resume=resume, what="pairing spec")
    if writer.resumed is not None:
        stored = writer.resumed.get("calibration")
        shared = Calibration(**stored) if stored else None
    else:
        shared = shared_calibration(spec, data_dir, cache) if spec.calibration.mode == "shared" else None
        if spec.calibration.temperature_files:
            shared = with_series_resistance(spec, tests, shared, cache)
    pending = set(writer.open([test.index for test in tests], label="pair", unit="test", progress=progress,
                              kind="measured", data_dir=str(data_dir),
                              calibration=asdict(shared) if shared is not None else None))
    for test in tests:
        if test.index in pending:
            result = pair_test(spec, test, shared, cache)
            writer.write(result.record, result.series, result.cycles)
    return writer.finish("serial", time.perf_counter() - started)


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
        test = measured_test(-1, path, group, data_dir)
    measured = load_test(spec, test.path, test.ambient_temperature_K)
    return _calibrate_test(spec, test, measured, cache)


def with_series_resistance(spec: PairingSpec, tests: list[MeasuredTest], shared: Calibration,
                           cache: ModelCache | None = None) -> Calibration:
    """``shared`` with a series resistance and its activation energy fitted on the tests
    ``calibration.temperature_files`` names (:mod:`sim.measured.temperature_fit`)."""
    patterns = spec.calibration.temperature_files
    chosen = [test for test in tests if any(fnmatch.fnmatchcase(test.relative, p) for p in patterns)]
    records = []
    for test in chosen:
        measured = load_test(spec, test.path, test.ambient_temperature_K)
        records.append((shared.apply(_cell_for(spec, measured)), measured))
    fit = fit_series_resistance(records, spec.physics, options=spec.calibration.options, cache=cache)
    log.info("series resistance over %d tests: %s, RMSE %s -> %s mV", len(chosen), fit.values,
             [round(v, 1) for v in fit.rmse_before_mV], [round(v, 1) for v in fit.rmse_after_mV])
    return replace(shared, values={**shared.values, **fit.values},
                   temperature_fit={**asdict(fit), "files": [test.relative for test in chosen]})


def _calibrate_test(spec: PairingSpec, test: MeasuredTest, measured: MeasuredSeries,
                    cache: ModelCache | None) -> Calibration:
    net_discharge = measured_net_discharge(spec, test, measured)
    return calibrate(_cell_for(spec, measured), measured, spec.physics, options=spec.calibration.options,
                     throughput_capacity_Ah=net_discharge if test.full_to_empty else None, cache=cache)


def _cell_for(spec: PairingSpec, measured: MeasuredSeries) -> CellSpec:
    ambient = float(np.mean(measured.columns[AMBIENT_TEMPERATURE]))
    return spec.cell.with_updates(ambient_temperature_K=round(ambient, 2))


def pair_test(spec: PairingSpec, test: MeasuredTest, shared: Calibration | None,
              cache: ModelCache | None = None) -> SampleResult:
    """One test's samples row with its series and cycles columns (None when it failed)."""
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
        result = SampleResult(record)
    result.record["wall_s"] = time.perf_counter() - started
    return result


def _pair(spec: PairingSpec, test: MeasuredTest, measured: MeasuredSeries, calibration: Calibration | None,
          record: dict, cache: ModelCache | None) -> SampleResult:
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
    window = (prepared.window.lower, prepared.window.upper)
    kept = rows_inside_window(voltage, window)
    if kept < 2:
        record["message"] = f"physics: {physics.message}" + ("" if produced < 2 else "; voltage outside its window")
        return SampleResult(record)
    status, message = physics.status, f"physics: {physics.message}"
    if kept < produced:
        status, message = "truncated", f"physics: {left_window_message(window, float(time_s[kept]))}"
    reference = {name: values[:kept] for name, values in _reference_columns(measured).items()}
    physics_columns = {name: values[:kept] for name, values in physics.columns.items()}
    record.update(status=status, message=message, rows_kept=kept,
                  rmse_after_mV=rmse_mV(physics_columns[VOLTAGE] - reference[VOLTAGE]))
    series = series_table(test.index, reference, physics_columns,
                          _counted_soc(reference, record.get("throughput_capacity_Ah"), test.full_to_empty))
    if spec.compare_nominal:
        before = simulate(nominal, trace, spec.physics, cache=cache, voltage_cutoffs=False)
        series[NOMINAL_PHYSICS_VOLTAGE] = _on_measured_grid(before, time_s[:kept])
        solved_all = np.all(np.isfinite(series[NOMINAL_PHYSICS_VOLTAGE]))
        record["rmse_before_mV"] = (rmse_mV(series[NOMINAL_PHYSICS_VOLTAGE] - reference[VOLTAGE])
                                    if solved_all else float("nan"))
    boundaries = [(test.tag, float(time_s[0]), float(time_s[kept - 1]))]
    cycles = cycles_table(test.index, cycle_summary(reference, boundaries), cycle_summary(physics_columns, boundaries))
    return SampleResult(record, series, cycles)


REFERENCE_SOC = TRUTH_COLUMNS[0]  # "State of charge", as a synthetic corpus's plant gives it


def _counted_soc(reference: dict[str, np.ndarray], throughput_Ah: float | None, full_to_empty: bool) -> dict:
    """{"State of charge": ...} of a test that runs from full to empty: a cycler measures no SOC,
    so it is counted from full with the test's throughput capacity (the reference the SOC
    head trains on and SOC errors are scored against); {} for other tests."""
    if not full_to_empty or throughput_Ah is None or not math.isfinite(throughput_Ah) or throughput_Ah <= 0:
        return {}
    charge = reference[DISCHARGE_CAPACITY]
    return {REFERENCE_SOC: 1.0 - (charge - charge[0]) / throughput_Ah}


def _on_measured_grid(solution: Trajectory, time_s: np.ndarray) -> np.ndarray:
    """The voltage [V] of a physics ``solution`` at the measured times ``time_s`` [s], (rows,):
    NaN on the rows it did not solve (a failed or shorter solve, or one on another grid)."""
    voltage = np.full(len(time_s), np.nan)
    solved = min(len(solution.columns[TIME]), len(time_s)) if solution.ok else 0
    if solved and np.array_equal(solution.columns[TIME][:solved], time_s[:solved]):
        voltage[:solved] = solution.columns[VOLTAGE][:solved]
    return voltage


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
