"""A measured corpus scored per test: every model an engineer compares, side by side per record.

The report's ``per_test`` section (:func:`per_test_rows`) has one row per record of the run's
splits, held-out tests first, with the voltage RMSE [mV] over the record and inside 5-95 %
reference SOC and the SOC MAE [%] (:func:`hybrid.evaluate.score_record`) of each model:

- ``physics_nominal``: the uncalibrated cell, the corpus's "Nominal physics voltage [V]" (a
  corpus paired with compare_nominal; left out without that column);
- ``physics``: the calibrated cell, the corpus's "Physics voltage [V]";
- ``ecm``: the ECM baseline when the run config sets ``evaluation.ecm`` (:func:`ecm_baseline`);
- ``black_box`` and every hybrid of the run.

Reference SOC: a cycler measures none. A test paired as running full to empty carries a
"State of charge" column, counted from full with its throughput capacity by the pairing, and
is scored against it. Otherwise the SOC is counted here from full, 1 - "Discharge capacity
[A.h]" / capacity, with the calibrated physics cell's capacity (physics_capacity_Ah; each row's
``capacity_from`` says which); then the physics SOC counts the same charge with the same
capacity, so its SOC MAE says little.

Every model is scored on the same rows as in the report's splits: the record's split range,
rows where the physics is valid (``max_residual_V``), after any model's context rows.
"""

from __future__ import annotations

import glob
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from hybrid.baselines.options import OCV_CSV_COLUMNS, OCV_FROM_RELAXATIONS, ECMOptions, SlowOCVTests
from hybrid.data import CHARGE, CURRENT, SOC, SPLIT_NAMES, TIME, VOLTAGE, Corpus, Record, SplitAssignment
from hybrid.data.columns import NOMINAL_PHYSICS_VOLTAGE
from hybrid.evaluate.metrics import score_record
from hybrid.evaluate.predict import Predictions, RecordPrediction
from hybrid.evaluate.rows import scored_rows
from hybrid.train import PHYSICS
from sim.errors import ConfigError, DataError
from sim.measured.records import record_capacity_Ah
from sim.measured.spec import resolve_data_dir

if TYPE_CHECKING:
    from hybrid.baselines import OCVCurve

NOMINAL = "physics_nominal"
ECM = "ecm"
SLOW_TESTS_FIELD = "evaluation.ecm.ocv"
# the order of the per-test rows: held-out tests first
SPLIT_ORDER = ("test", "unseen_temperature", "unseen_design", "late_life", "val", "train")


def is_measured(corpus_dir: Path) -> bool:
    """Whether ``corpus_dir`` was written by `hybat pair-measured` (its manifest's kind)."""
    manifest = Path(corpus_dir) / "manifest.json"
    return manifest.is_file() and json.loads(manifest.read_text()).get("kind") == "measured"


def run_ids(assignment: SplitAssignment) -> list[int]:
    """The sample ids of every split of the run."""
    return sorted({i for name in assignment.names() for i in assignment.ranges[name]})


def record_split(assignment: SplitAssignment, sample_id: int) -> str:
    """The first split (in SPLIT_NAMES order) that holds ``sample_id``."""
    return next(name for name in SPLIT_NAMES if sample_id in assignment.ranges.get(name, {}))


def ambient_degC(cell: Record) -> float:
    """The record's ambient temperature [degC], to 0.01 K: records of one chamber temperature
    share it exactly (the ECM is fitted per temperature)."""
    return round(cell.ambient_temperature_K - 273.15, 2)


def capacity_Ah(corpus: Corpus, sample_id: int) -> float:
    """The capacity [A.h] that counts the reference SOC and starts the ECM's capacity fit: the
    record's throughput_capacity_Ah, else the calibrated physics cell's capacity."""
    return _capacity(corpus, sample_id)[0]


def _capacity(corpus: Corpus, sample_id: int) -> tuple[float, str]:
    """:func:`capacity_Ah` and where it came from (:func:`sim.measured.records.record_capacity_Ah`)."""
    capacity, source = record_capacity_Ah(corpus.samples.loc[sample_id].to_dict())
    if not source:
        raise DataError(f"sample {sample_id}: throughput_capacity_Ah and physics_capacity_Ah are missing; allowed: "
                        "a corpus written by hybat pair-measured")
    return capacity, source


def reference_soc(cell: Record, capacity: float) -> np.ndarray:
    """(rows,) the corpus's "State of charge", else counted from full with ``capacity`` [A.h]."""
    if SOC in cell.columns:
        return cell.columns[SOC]
    return 1.0 - cell.columns[CHARGE] / capacity


def measured_baselines(corpus: Corpus, assignment: SplitAssignment,
                       ecm: ECMOptions | None) -> tuple[Predictions, dict[str, Any] | None]:
    """The fixed models of the per-test section on the run's records: physics_nominal (when the
    corpus has its column) and the ECM (with ``ecm`` options); and the ECM's fit (None without)."""
    ids = run_ids(assignment)
    baselines: Predictions = {}
    if all(NOMINAL_PHYSICS_VOLTAGE in corpus.cells[i].columns for i in ids):
        baselines[NOMINAL] = {i: RecordPrediction(corpus.cells[i].columns[NOMINAL_PHYSICS_VOLTAGE], None) for i in ids}
    fit = None
    if ecm is not None:
        baselines[ECM], fit = ecm_baseline(corpus, assignment, ecm)
    return baselines, fit


def ecm_baseline(corpus: Corpus, assignment: SplitAssignment,
                 options: ECMOptions) -> tuple[dict[int, RecordPrediction], dict[str, Any]]:
    """The ECM's predictions for every record of the run's splits, and its fit: one joint fit per
    ambient temperature of the train split's whole records (a record split by rows, such as one
    with late life, is left out), each starting full with its capacity_Ah; the OCV from the
    rests of those records, the options' CSV or their slow OCV tests. No other record's data
    reach the fit."""
    from hybrid.baselines import ecm_predictions  # loaded on use: it imports hybrid.evaluate

    train = assignment.ranges.get("train", {})
    train_ids = sorted(i for i, rows in train.items() if rows == (0, corpus.cells[i].rows))
    if not train_ids:
        raise DataError("evaluation.ecm: the train split holds no whole record to fit the ECM on; allowed: "
                        "ecm: null, or splits that train on whole records")
    ids = run_ids(assignment)
    capacities = {i: capacity_Ah(corpus, i) for i in ids}
    temperatures = {i: ambient_degC(corpus.cells[i]) for i in ids}
    ocv = ecm_ocv(options, [corpus.cells[i] for i in train_ids], [capacities[i] for i in train_ids])
    predictions, fitted = ecm_predictions(corpus, temperatures, train_ids, ocv, scale=options.scale,
                                          capacities_Ah=capacities, sample_ids=ids)
    return predictions, {**options.model_dump(), "fitted_on": train_ids,
                         "parameters": {f"{t:g}": parameters.to_dict() for t, parameters in sorted(fitted.items())}}


def ecm_ocv(options: ECMOptions, cells: list[Record], capacities_Ah: list[float]) -> OCVCurve:
    """The OCV the ECM runs on: from the rests of ``cells`` (the train records, each counted from
    full with its capacity [A.h]), read from the options' CSV or from their slow OCV tests."""
    from hybrid.baselines import ocv_from_relaxations

    if isinstance(options.ocv, SlowOCVTests):
        return ocv_from_slow_test_files(options.ocv)
    if options.ocv != OCV_FROM_RELAXATIONS:
        return ocv_from_csv(Path(options.ocv))
    try:
        return ocv_from_relaxations([cell.columns[TIME] for cell in cells], [cell.columns[CURRENT] for cell in cells],
                                    [cell.columns[VOLTAGE] for cell in cells], capacities_Ah,
                                    min_rest_s=options.min_rest_s)
    except DataError as error:
        raise DataError(f"evaluation.ecm.ocv = '{OCV_FROM_RELAXATIONS}' on the train records: {error}") from None


def ocv_from_csv(path: Path) -> OCVCurve:
    """The OCV [V] against SOC (0..1) in the CSV ``path`` (columns soc and voltage_V, any order)."""
    from hybrid.baselines import OCVCurve

    allowed = f"allowed: a CSV with columns {' and '.join(OCV_CSV_COLUMNS)}, soc distinct and voltages finite"
    if not path.is_file():
        raise DataError(f"evaluation.ecm.ocv = '{path}': no such file; {allowed}, or '{OCV_FROM_RELAXATIONS}'")
    table = pd.read_csv(path)
    missing = [name for name in OCV_CSV_COLUMNS if name not in table.columns]
    if missing:
        raise DataError(f"evaluation.ecm.ocv = '{path}': no column '{missing[0]}'; {allowed}")
    table = table.sort_values("soc")
    try:
        return OCVCurve(table["soc"].to_numpy(float), table["voltage_V"].to_numpy(float))
    except DataError as error:
        raise DataError(f"evaluation.ecm.ocv = '{path}': {error}; {allowed}") from None


def ocv_from_slow_test_files(slow: SlowOCVTests) -> OCVCurve:
    """The mean of the slow discharge and charge tests the options name
    (:func:`hybrid.baselines.ocv.ocv_from_cycler_files`)."""
    from hybrid.baselines.ocv import ocv_from_cycler_files

    try:
        data_dir = resolve_data_dir(slow.data_dir)
    except ConfigError as error:  # its message starts "data_dir = ..."
        raise ConfigError(f"{SLOW_TESTS_FIELD}.{error}") from None
    return ocv_from_cycler_files(matched_files(slow.discharge, data_dir, f"{SLOW_TESTS_FIELD}.discharge"),
                                 matched_files(slow.charge, data_dir, f"{SLOW_TESTS_FIELD}.charge"), SLOW_TESTS_FIELD)


def matched_files(patterns: list[str], data_dir: Path, field: str) -> list[Path]:
    """The files of ``patterns`` (paths or globs relative to ``data_dir``) in their order, each
    glob's matches sorted; ConfigError naming ``field`` for a pattern that matches no file."""
    files = []
    for pattern in patterns:
        matches = sorted(data_dir / match for match in glob.glob(pattern, root_dir=data_dir)
                         if (data_dir / match).is_file())
        if not matches:
            raise ConfigError(f"{field} = {pattern!r}: no file matches in {data_dir}; allowed: paths or globs of "
                              "cycler files relative to evaluation.ecm.ocv.data_dir")
        files += matches
    return files


def side_by_side(predictions: Predictions, baselines: Predictions) -> Predictions:
    """The models of the per-test section in the order an engineer reads them: nominal physics,
    calibrated physics, ECM, then the trained models."""
    combined = {**predictions, **baselines}
    first = [name for name in (NOMINAL, PHYSICS, ECM) if name in combined]
    return {name: combined[name] for name in [*first, *(name for name in combined if name not in first)]}


def per_test_rows(corpus: Corpus, assignment: SplitAssignment, predictions: Predictions,
                  first_scored: dict[int, int], max_residual_V: float) -> list[dict[str, Any]]:
    """One row per record of the run's splits, held-out first (SPLIT_ORDER, then temperature):
    sample_id, file, ambient_temperature_degC, split, capacity_Ah and capacity_from (of the
    reference SOC), rows, rows_scored and ``scores``: model -> :func:`score_record` on the scored rows (see the module
    docstring). ``first_scored``: sample_id -> the first row no model reads as context."""
    rows = []
    for sample_id in run_ids(assignment):
        cell, split = corpus.cells[sample_id], record_split(assignment, sample_id)
        scored = scored_rows(corpus, {sample_id: assignment.ranges[split][sample_id]}, max_residual_V)[sample_id]
        scored[:first_scored.get(sample_id, 0)] = False
        capacity, capacity_from = _capacity(corpus, sample_id)
        voltage = np.where(scored, cell.columns[VOLTAGE], np.nan)  # NaN rows are not scored
        soc = np.where(scored, reference_soc(cell, capacity), np.nan)
        rows.append({"sample_id": sample_id, "file": str(corpus.samples.loc[sample_id].get("file", "")),
                     "ambient_temperature_degC": ambient_degC(cell), "split": split, "capacity_Ah": capacity,
                     "capacity_from": capacity_from, "rows": cell.rows, "rows_scored": int(scored.sum()),
                     "scores": {name: score_record(by_record[sample_id], voltage, soc)
                                for name, by_record in predictions.items() if sample_id in by_record}})
    return sorted(rows, key=lambda row: (SPLIT_ORDER.index(row["split"]), row["ambient_temperature_degC"],
                                         row["sample_id"]))
