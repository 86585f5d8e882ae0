"""Paired corpora from measured files: the on-disk contract, failures as rows, resume; on
synthetic files (no data needed) and on the shared A123 data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml
from pydantic import ValidationError

from sim.config import load_config
from sim.errors import ConfigError
from sim.measured.columns import NOMINAL_PHYSICS_VOLTAGE
from sim.measured.pairing import pair_measured, pair_measured_cli
from sim.measured.spec import PairingSpec
from tests.real_data import needs_real_data
from tests.sim.measured_fixture import synthetic_spec

CONFIGS = Path(__file__).resolve().parents[3] / "configs" / "measured"
CONTRACT_SERIES = ["sample_id", "Time [s]", "Current [A]", "Ambient temperature [K]", "Voltage [V]",
                   "Discharge capacity [A.h]", "Physics voltage [V]", "Physics state of charge"]
CHEAP_CALIBRATION = {"fit_period_s": 300.0, "max_iterations": 4}


def test_paired_corpus_reads_back_with_plain_pandas_and_pyarrow(synthetic_corpus):
    out, manifest = synthetic_corpus
    samples = pd.read_parquet(out / "samples.parquet")
    series = pq.read_table(out / "series").to_pandas()
    cycles = pd.read_parquet(out / "cycles")

    assert manifest["counts"] == {"samples": 2, "ok": 1, "truncated": 0, "failed": 1}
    assert manifest["kind"] == "measured" and manifest["spec"]["name"] == "synthetic"
    assert {"pybamm", "numpy", "pyarrow"} <= set(manifest["versions"])
    assert list(samples["file"]) == ["cell_bad.csv", "cell_good.csv"]
    assert set(CONTRACT_SERIES) <= set(series.columns)
    assert "State of charge" not in series.columns  # not full to empty: no reference SOC
    assert set(series["sample_id"]) == {1}
    assert set(cycles["Source"]) == {"reference", "physics"}
    assert series["Ambient temperature [K]"].eq(298.15).all()
    # same current, same time grid: the charge each side sees is identical
    by_source = cycles.set_index("Source")["Discharge capacity [A.h]"]
    assert by_source["physics"] == pytest.approx(by_source["reference"], rel=1e-9)


def test_a_bad_file_becomes_a_failed_row_with_a_message(synthetic_corpus):
    out, _ = synthetic_corpus
    bad = pd.read_parquet(out / "samples.parquet").set_index("file").loc["cell_bad.csv"]
    assert bad["status"] == "failed"
    assert "voltage_V" in bad["message"] and "not a number" in bad["message"]


def test_calibration_recovers_the_synthetic_cell_and_cuts_the_error(synthetic_corpus):
    out, manifest = synthetic_corpus
    good = pd.read_parquet(out / "samples.parquet").set_index("file").loc["cell_good.csv"]
    assert good["calibration_capacity_scale"] == pytest.approx(0.9, rel=0.02)
    assert good["calibration_initial_soc"] == pytest.approx(0.85, abs=0.02)
    assert good["rmse_after_mV"] < 0.1 * good["rmse_before_mV"]
    assert manifest["calibration"]["values"]["capacity_scale"] == good["calibration_capacity_scale"]


def test_the_nominal_cell_is_kept_per_row_beside_the_calibrated_one(synthetic_corpus):
    out, _ = synthetic_corpus
    good = pd.read_parquet(out / "samples.parquet").set_index("file").loc["cell_good.csv"]
    series = pd.read_parquet(out / "series")
    error_mV = {name: 1e3 * (series[name] - series["Voltage [V]"]) for name in (NOMINAL_PHYSICS_VOLTAGE,
                                                                             "Physics voltage [V]")}
    assert np.sqrt(np.mean(error_mV[NOMINAL_PHYSICS_VOLTAGE] ** 2)) == pytest.approx(good["rmse_before_mV"])
    assert np.sqrt(np.mean(error_mV["Physics voltage [V]"] ** 2)) == pytest.approx(good["rmse_after_mV"])


def test_without_compare_nominal_there_is_no_nominal_column(synthetic_data_dir, tmp_path):
    spec = synthetic_spec(synthetic_data_dir).model_copy(update={"compare_nominal": False})
    spec = spec.model_copy(update={"calibration": spec.calibration.model_copy(update={"mode": "none"})})
    pair_measured(spec, tmp_path / "out", progress=False)
    assert NOMINAL_PHYSICS_VOLTAGE not in pq.read_schema(tmp_path / "out" / "series" / "part-000001.parquet").names
    assert "rmse_before_mV" not in pd.read_parquet(tmp_path / "out" / "samples.parquet")


def test_resume_finishes_without_redoing_and_a_full_directory_needs_resume(synthetic_corpus, synthetic_data_dir):
    out, manifest = synthetic_corpus
    spec = synthetic_spec(synthetic_data_dir)
    with pytest.raises(ConfigError, match="not empty"):
        pair_measured(spec, out, progress=False)
    resumed = pair_measured(spec, out, resume=True, progress=False)
    assert resumed["counts"] == manifest["counts"]
    assert resumed["wall_s"] < 5.0


def test_cli_entry_reads_yaml_and_rejects_unknown_keys(synthetic_data_dir, tmp_path):
    config = synthetic_spec(synthetic_data_dir).model_dump(mode="json")
    config["calibration"] = {"mode": "none"}
    path = tmp_path / "pairing.yaml"
    path.write_text(yaml.safe_dump(config))

    manifest = pair_measured_cli(path, tmp_path / "out")

    assert manifest["counts"]["ok"] == 1 and manifest["calibration"] is None
    samples = pd.read_parquet(tmp_path / "out" / "samples.parquet").set_index("file")
    assert samples.loc["cell_good.csv", "rmse_after_mV"] == pytest.approx(samples.loc["cell_good.csv", "rmse_before_mV"])
    path.write_text(yaml.safe_dump({**config, "calibraton": {}}))
    with pytest.raises(ConfigError, match="unknown key 'calibraton'"):
        pair_measured_cli(path, tmp_path / "other")


@needs_real_data
def test_a123_paired_corpus_has_the_contract_and_the_measured_capacity(tmp_path):
    base = load_config(CONFIGS / "a123_dynamic.yaml", PairingSpec)
    spec = PairingSpec.model_validate({
        **base.model_dump(), "resample_period_s": 60.0,
        "tests": [{**base.tests[0].model_dump(), "pattern": "dyn/A123_DYN_p[24]5C_script1.csv.gz"}],
        "calibration": {**base.calibration.model_dump(),
                        "options": {**base.calibration.options.model_dump(), **CHEAP_CALIBRATION}},
    })

    manifest = pair_measured(spec, tmp_path / "a123", progress=False)

    samples = pd.read_parquet(tmp_path / "a123" / "samples.parquet").set_index("file")
    series = pd.read_parquet(tmp_path / "a123" / "series")
    assert manifest["counts"]["ok"] == 2
    assert samples["ambient_temperature_K"].tolist() == pytest.approx([298.15, 318.15])
    # cycler counters, scripts 1 + 2: full to empty
    assert samples["throughput_capacity_Ah"].tolist() == pytest.approx([2.03, 2.02], abs=0.02)
    assert (samples["rmse_after_mV"] < samples["rmse_before_mV"]).all()
    assert set(CONTRACT_SERIES) <= set(series.columns)
    assert series.groupby("sample_id")["Time [s]"].apply(lambda t: np.all(np.diff(t) == 60.0)).all()
    # a full-to-empty test's reference SOC: counted from full with its throughput capacity
    for sample_id, rows in series.groupby("sample_id"):
        capacity = samples.set_index("sample_id").loc[sample_id, "throughput_capacity_Ah"]
        charge = rows["Discharge capacity [A.h]"].to_numpy()
        np.testing.assert_allclose(rows["State of charge"], 1.0 - (charge - charge[0]) / capacity)


def test_temperature_files_add_a_fitted_series_resistance_to_the_shared_calibration(synthetic_data_dir, tmp_path):
    data = synthetic_spec(synthetic_data_dir).model_dump(mode="json")
    data["physics"]["contact_resistance"] = True
    data["calibration"]["temperature_files"] = ["cell_g*.csv"]
    manifest = pair_measured(PairingSpec.model_validate(data), tmp_path / "paired", progress=False)
    calibration = manifest["calibration"]
    assert {"contact_resistance_ohm", "contact_resistance_activation_J_mol"} <= set(calibration["values"])
    assert calibration["temperature_fit"]["files"] == ["cell_good.csv"]
    fitted = calibration["temperature_fit"]
    assert fitted["rmse_after_mV"][0] <= fitted["rmse_before_mV"][0] + 1e-6
    with pytest.raises(ValidationError, match="temperature_files need mode 'shared'"):
        PairingSpec.model_validate({**data, "calibration": {**data["calibration"], "mode": "per_test"}})
