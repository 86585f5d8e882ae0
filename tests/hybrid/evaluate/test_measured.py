"""Facts about the per-test evaluation of a measured corpus: one row per record of the run with
its split, every model side by side (nominal and calibrated physics, ECM, black box, hybrids),
and an ECM that only the train records shape. On a tiny corpus paired from fake cycler files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import get_args

import numpy as np
import pandas as pd
import pytest

from hybrid.baselines.ecm import INTERPOLATION_SCALES, OCVCurve
from hybrid.baselines.ocv import ocv_from_slow_tests
from hybrid.baselines.options import ECMOptions, Scale
from hybrid.data import SplitAssignment, load_corpus
from hybrid.data.columns import NOMINAL_PHYSICS_VOLTAGE, PHYSICS_VOLTAGE, VOLTAGE
from hybrid.evaluate.measured import ECM, NOMINAL, ecm_baseline, ecm_ocv, is_measured, measured_baselines, per_test_rows
from hybrid.evaluate.run import evaluate_run
from hybrid.train.run import SPLITS, TrainRunConfig, read_run_file, train_from_config
from sim.cells.spec import CellSpec
from sim.config import validate
from sim.errors import ConfigError, DataError
from sim.measured.pairing import pair_measured
from sim.measured.spec import PairingSpec
from sim.physics.fidelity import Fidelity
from sim.physics.simulate import simulate
from sim.protocols.steps import CurrentTrace
from tests.hybrid.baselines.test_ocv import write_slow_branches
from tests.real_data import A123_DIR, needs_a123

# file -> chamber temperature [degC]; split by temperature: 20 degC tested, 30 validated, the rest trained
CHAMBER_C = {"cell_a.csv": 25.0, "cell_b.csv": 25.0, "cell_c.csv": 35.0, "cell_d.csv": 30.0, "cell_e.csv": 20.0}
SPLIT_BY_TEMPERATURE = {"column": "ambient_temperature_K", "test": [293.15], "val": [303.15]}
ECM_OPTIONS = {"ocv": "relaxations", "scale": "linear", "min_rest_s": 200.0}
RUN = {"name": "measured_smoke", "features": {"design": False, "time_step": False},
       "splits": {"by_column": SPLIT_BY_TEMPERATURE},
       "models": [{"name": "gru", "model": {"kind": "residual_rnn", "cell": "gru", "hidden_size": 8, "layers": 1}}],
       "black_box": {"model": {"kind": "black_box", "cell": "gru", "hidden_size": 8, "layers": 1}},
       "train": {"epochs": 2, "batch_size": 4, "truncation_steps": 60, "learning_rate": 1e-2, "seed": 0},
       "evaluation": {"plots": False, "ecm": ECM_OPTIONS}}


@pytest.fixture(scope="module")
def measured_corpus_dir(tmp_path_factory) -> Path:
    """Five 1 h records of a Chen2020 cell of 0.9x capacity from full (10 s grid; 10 min
    discharges, ~5 min rests, 20 s pulses, a different amplitude each) at their chamber
    temperatures, paired with the nominal cell (no calibration)."""
    folder = tmp_path_factory.mktemp("cycler")
    time_s = np.arange(0.0, 3600.0, 10.0)
    pattern = np.where(time_s % 900.0 < 600.0, 1.0, 0.0) + np.where(time_s % 900.0 >= 880.0, 2.0, 0.0)
    for number, (file, chamber) in enumerate(CHAMBER_C.items()):
        truth = CellSpec(parameter_set="Chen2020", scales={"Electrode width [m]": 0.9},
                         ambient_temperature_K=chamber + 273.15)
        current = (2.5 + 0.25 * number) * pattern
        record = simulate(truth, CurrentTrace(time_s, current), Fidelity(model="spme"), voltage_cutoffs=False)
        pd.DataFrame({"time_s": time_s, "current_A": current, "voltage_V": np.round(record["Voltage [V]"], 5)}
                     ).to_csv(folder / file, index=False)
    pd.DataFrame({"file": list(CHAMBER_C), "chamber_C": list(CHAMBER_C.values())}).to_csv(folder / "manifest.csv",
                                                                                           index=False)
    spec = PairingSpec.model_validate({
        "name": "fake_measured", "data_dir": str(folder),
        "tests": [{"pattern": "cell_*.csv", "ambient_manifest_column": "chamber_C"}],
        "cell": {"parameter_set": "Chen2020"}, "physics": {"model": "spme"}})
    out = tmp_path_factory.mktemp("paired") / "corpus"
    pair_measured(spec, out, progress=False)
    return out


@pytest.fixture(scope="module")
def measured_run(measured_corpus_dir, tmp_path_factory) -> tuple[Path, dict]:
    """(run_dir, evaluation report) of a tiny run with the ECM on the measured corpus."""
    run_dir = tmp_path_factory.mktemp("runs") / "measured"
    train_from_config(validate(TrainRunConfig, RUN, "test run"), measured_corpus_dir, run_dir)
    return run_dir, evaluate_run(run_dir, measured_corpus_dir)


def assignment_of(run_dir: Path) -> SplitAssignment:
    return SplitAssignment.from_dict(read_run_file(run_dir / SPLITS))


def test_the_nominal_physics_column_reads_back_as_a_column_no_model_reads(measured_corpus_dir):
    corpus = load_corpus(measured_corpus_dir)
    assert is_measured(measured_corpus_dir)
    assert NOMINAL_PHYSICS_VOLTAGE not in corpus.physics_columns
    for cell in corpus.cells.values():  # no calibration: the nominal cell is the physics cell
        np.testing.assert_array_equal(cell.columns[NOMINAL_PHYSICS_VOLTAGE], cell.columns[PHYSICS_VOLTAGE])


def test_per_test_rows_cover_exactly_the_runs_records_with_their_splits(measured_run):
    run_dir, report = measured_run
    assignment = assignment_of(run_dir)
    expected = {i: split for split in ("train", "val", "test") for i in assignment.ranges[split]}
    rows = report["per_test"]
    assert {row["sample_id"]: row["split"] for row in rows} == expected and len(rows) == len(CHAMBER_C)
    assert [row["split"] for row in rows] == ["test", "val", "train", "train", "train"]  # held-out first
    assert {row["file"]: row["ambient_temperature_degC"] for row in rows} == CHAMBER_C
    for row in rows:
        assert list(row["scores"]) == [NOMINAL, "physics", ECM, "black_box", "gru"]
        assert row["rows_scored"] == row["rows"] == 360
        for name, scores in row["scores"].items():
            assert scores["rmse_mV"] > 0 and scores["rmse_soc_5_95_mV"] > 0, name
        for key in ("rmse_mV", "rmse_soc_5_95_mV"):  # the same cell here
            assert row["scores"][NOMINAL][key] == row["scores"]["physics"][key]
        assert row["scores"][NOMINAL]["soc_mae_pct"] is None and row["capacity_from"] == "physics"
        assert row["scores"][ECM]["soc_mae_pct"] < 5.0  # counts charge from full like the reference
    assert report["ecm"]["fitted_on"] == assignment.sample_ids("train")
    assert set(report["ecm"]["parameters"]) == {"25", "35"}
    assert json.loads((run_dir / "metrics.json").read_text())["per_test"] == json.loads(json.dumps(rows))


def test_the_nominal_physics_is_scored_from_its_column(measured_run, measured_corpus_dir):
    run_dir, _ = measured_run
    corpus, assignment = load_corpus(measured_corpus_dir), assignment_of(run_dir)
    for cell in corpus.cells.values():
        cell.columns[NOMINAL_PHYSICS_VOLTAGE] = cell.columns[VOLTAGE] + 0.010
    baselines, fit = measured_baselines(corpus, assignment, None)
    rows = per_test_rows(corpus, assignment, baselines, {}, 0.5)
    assert fit is None and set(baselines) == {NOMINAL}
    assert [row["scores"][NOMINAL]["rmse_mV"] for row in rows] == pytest.approx([10.0] * len(rows))


def test_the_ecm_is_fitted_on_the_train_records_only(measured_run, measured_corpus_dir):
    run_dir, _ = measured_run
    assignment, options = assignment_of(run_dir), ECMOptions(**ECM_OPTIONS)
    corpus = load_corpus(measured_corpus_dir)
    predictions, fit = ecm_baseline(corpus, assignment, options)
    for split in ("val", "test"):  # held-out voltages changed: nothing of the ECM changes
        for i in assignment.ranges[split]:
            corpus.cells[i].columns[VOLTAGE] = corpus.cells[i].columns[VOLTAGE] + 0.05
    again, refit = ecm_baseline(corpus, assignment, options)
    assert refit == fit
    for i, prediction in predictions.items():
        np.testing.assert_array_equal(again[i].voltage_V, prediction.voltage_V)
    train_id = assignment.sample_ids("train")[0]  # a train record's voltage does change it
    corpus.cells[train_id].columns[VOLTAGE] = corpus.cells[train_id].columns[VOLTAGE] + 0.05
    assert ecm_baseline(corpus, assignment, options)[1]["parameters"] != fit["parameters"]


def test_the_ecm_reads_its_ocv_from_a_csv_and_names_a_bad_one(measured_run, measured_corpus_dir, tmp_path):
    run_dir, _ = measured_run
    corpus, assignment = load_corpus(measured_corpus_dir), assignment_of(run_dir)
    path = tmp_path / "ocv.csv"
    pd.DataFrame({"soc": [1.0, 0.0, 0.5], "voltage_V": [4.2, 3.0, 3.7]}).to_csv(path, index=False)
    predictions, fit = ecm_baseline(corpus, assignment, ECMOptions(ocv=str(path)))
    assert fit["ocv"] == str(path) and set(predictions) == set(corpus.cells)
    with pytest.raises(DataError, match=r"evaluation\.ecm\.ocv = .*missing\.csv.*no such file"):
        ecm_baseline(corpus, assignment, ECMOptions(ocv=str(tmp_path / "missing.csv")))
    pd.DataFrame({"soc": [0.0, 1.0], "volts": [3.0, 4.2]}).to_csv(path, index=False)
    with pytest.raises(DataError, match=r"evaluation\.ecm\.ocv = .*no column 'voltage_V'"):
        ecm_baseline(corpus, assignment, ECMOptions(ocv=str(path)))
    with pytest.raises(DataError, match=r"evaluation\.ecm\.ocv = 'relaxations'.*min_rest_s"):
        ecm_baseline(corpus, assignment, ECMOptions(min_rest_s=1e5))


def test_the_ecm_reads_its_ocv_from_slow_tests_of_any_folder(measured_run, measured_corpus_dir, tmp_path):
    run_dir, _ = measured_run
    corpus, assignment = load_corpus(measured_corpus_dir), assignment_of(run_dir)
    write_slow_branches(tmp_path, OCVCurve(np.linspace(0.0, 1.0, 3), np.array([3.0, 3.7, 4.2])))
    slow = {"discharge": ["discharge1.csv", "discharge2.csv"], "charge": ["charge[12].csv"], "data_dir": str(tmp_path)}
    predictions, fit = ecm_baseline(corpus, assignment, ECMOptions(ocv=slow))
    assert fit["ocv"] == slow and set(predictions) == set(corpus.cells)
    listed = ecm_ocv(ECMOptions(ocv={**slow, "charge": ["charge1.csv", "charge2.csv"]}), [], [])
    np.testing.assert_array_equal(ecm_ocv(ECMOptions(ocv=slow), [], []).voltage_V, listed.voltage_V)


@needs_a123
def test_the_a123_slow_tests_give_the_ocv_of_ocv_from_slow_tests():
    folder = "a123_lfp_plett_dyn/ocv/A123_OCV_p25C_script"
    options = ECMOptions(ocv={"discharge": [f"{folder}1.csv.gz", f"{folder}2.csv.gz"],
                              "charge": [f"{folder}[34].csv.gz"]})  # data_dir: ${HYBAT_REAL_DATA}
    reference = ocv_from_slow_tests(A123_DIR / "ocv", "A123_OCV_p25C_script{script}.csv.gz")
    curve = ecm_ocv(options, [], [])
    inside = (reference.soc >= 0.05) & (reference.soc <= 0.95)  # the charge integrated, not the counters: 0.7 mV
    np.testing.assert_allclose(curve.voltage_V[inside], reference.voltage_V[inside], atol=1e-3)


@pytest.mark.parametrize("branch, files", [("discharge", ["discharge1.csv", "missing*.csv"]),
                                           ("charge", ["charge3.csv"]), ("data_dir", "${HYBAT_NO_SUCH_VARIABLE}")])
def test_slow_test_files_that_match_nothing_are_refused_naming_the_field(branch, files, tmp_path):
    write_slow_branches(tmp_path)
    slow = {"discharge": ["discharge*.csv"], "charge": ["charge*.csv"], "data_dir": str(tmp_path), branch: files}
    with pytest.raises(ConfigError, match=rf"^evaluation\.ecm\.ocv\.{branch} = ") as raised:
        ecm_ocv(ECMOptions(ocv=slow), [], [])
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize("ecm, field", [({"ocv": "relaxation"}, "evaluation.ecm.ocv"),
                                        ({"ocv": "ocv.txt"}, "evaluation.ecm.ocv"),
                                        ({"scale": "Arrhenius"}, "evaluation.ecm.scale"),
                                        ({"min_rest_s": 0}, "evaluation.ecm.min_rest_s"),
                                        ({"rest_s": 60}, "evaluation.ecm.rest_s"),
                                        ({"ocv": {"discharge": [], "charge": ["c.csv"]}}, "evaluation.ecm.ocv.discharge"),
                                        ({"ocv": {"discharge": ["d.csv"]}}, "evaluation.ecm.ocv.charge"),
                                        ({"ocv": {"discharge": ["d.csv"], "charge": ["c.csv"], "folder": "."}},
                                         "evaluation.ecm.ocv.folder")])
def test_bad_ecm_options_are_refused_naming_the_field(ecm, field):
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")) as raised:
        validate(TrainRunConfig, {"evaluation": {"ecm": ecm}}, "run.yaml")
    assert "\n" not in str(raised.value)


def test_ecm_options_default_off_and_know_the_ecms_scales(tmp_path, monkeypatch):
    assert TrainRunConfig().evaluation.ecm is None
    assert set(get_args(Scale)) == set(INTERPOLATION_SCALES)
    monkeypatch.chdir(tmp_path)  # a relative CSV is stored absolute
    assert ECMOptions(ocv="ocv.csv.gz").ocv == str(tmp_path.resolve() / "ocv.csv.gz")
