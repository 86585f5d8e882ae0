"""Corpus export as Battery Data Format tables: BDF labels and units, BDF's charge-positive
current, every sample read back by sim.measured as the corpus's arrays, failed samples left out
and listed, and one-line errors for bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sim.config import load_config
from sim.corpus.generate import CorpusSpec, generate_corpus
from sim.corpus.writer import CorpusWriter, series_table
from sim.errors import ConfigError, DataError
from sim.measured import export_bdf, load_measured
from sim.measured.columns import AMBIENT_TEMPERATURE, CELL_TEMPERATURE, CURRENT, TIME, VOLTAGE, detect_columns

SMOKE = Path(__file__).resolve().parents[3] / "configs" / "corpus" / "smoke.yaml"
BDF_HEAD = ["Test Time / s", "Current / A"]
TIGHT = {"rtol": 1e-12, "atol": 1e-12}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """Two cells of the smoke corpus (an HPPC and a drive cycle)."""
    out = tmp_path_factory.mktemp("bdf") / "corpus"
    spec = load_config(SMOKE, CorpusSpec).model_copy(update={"cells": 2})
    generate_corpus(spec, out, progress=False)
    return out


def corpus_series(corpus: Path) -> dict[int, pd.DataFrame]:
    series = pd.read_parquet(corpus / "series").sort_values(["sample_id", TIME], kind="stable")
    return {int(sample_id): rows.reset_index(drop=True) for sample_id, rows in series.groupby("sample_id")}


@pytest.mark.parametrize("table_format", ["csv", "csv.gz", "parquet"])
def test_every_sample_reads_back_with_sim_measured_as_the_corpus_arrays(corpus, tmp_path, table_format):
    index = export_bdf(corpus, tmp_path / "bdf", table_format=table_format, progress=False)
    expected = corpus_series(corpus)
    # charge and discharge rows, so the sign convention is tested in both directions
    assert all((rows[CURRENT] > 0).any() and (rows[CURRENT] < 0).any() for rows in expected.values())
    assert [entry["sample_id"] for entry in index["exported"]] == sorted(expected)
    for entry in index["exported"]:
        rows = expected[entry["sample_id"]]
        path = tmp_path / "bdf" / entry["data"]
        assert path.name.endswith(f".bdf.{table_format}") and entry["rows"] == len(rows)

        series = load_measured(path, current_sign="charge_positive")
        for name in (TIME, CURRENT, VOLTAGE, CELL_TEMPERATURE, AMBIENT_TEMPERATURE):
            np.testing.assert_allclose(series.columns[name], rows[name], **TIGHT, err_msg=name)
        # the BDF file itself counts charge positive: the corpus current negated
        table = pd.read_parquet(path) if table_format == "parquet" else pd.read_csv(path)
        np.testing.assert_allclose(table["Current / A"], -rows[CURRENT], **TIGHT)
        np.testing.assert_allclose(table["Physics voltage / V"], rows["Physics voltage [V]"], **TIGHT)


def test_the_table_uses_bdf_labels_and_units_and_the_sidecar_maps_every_column_back(corpus, tmp_path):
    index = export_bdf(corpus, tmp_path / "bdf", progress=False)
    rows = corpus_series(corpus)[0]
    table = pd.read_csv(tmp_path / "bdf" / index["exported"][0]["data"])
    sidecar = json.loads((tmp_path / "bdf" / index["exported"][0]["metadata"]).read_text())

    assert list(table.columns[:2]) == BDF_HEAD
    column_map = detect_columns(list(table.columns))
    assert (column_map.voltage, column_map.temperature, column_map.ambient_temperature) == (
        "Voltage / V", "Temperature T1 / degC", "Ambient Temperature / degC")
    assert (column_map.temperature_unit, column_map.ambient_temperature_unit) == ("degC", "degC")
    # degC in the file: 25 degC ambient, not 298.15
    np.testing.assert_allclose(table["Ambient Temperature / degC"], rows[AMBIENT_TEMPERATURE] - 273.15)
    # BDF net capacity (charge minus discharge) is the corpus discharge counter negated
    np.testing.assert_allclose(table["Net Capacity / Ah"], -rows["Discharge capacity [A.h]"], **TIGHT)

    described = {column["name"]: column for column in sidecar["columns"]}
    assert list(described) == list(table.columns)
    assert sorted(column["hybat_name"] for column in sidecar["columns"]) == sorted(set(rows.columns) - {"sample_id"})
    assert described["Physics voltage / V"] == {"name": "Physics voltage / V", "unit": "V", "conversion": "none",
                                                    "hybat_name": "Physics voltage [V]", "bdf_standard": False}
    assert described["State of charge / 1"]["unit"] == "1"
    for column in sidecar["columns"]:
        if column["conversion"] == "none":
            np.testing.assert_array_equal(table[column["name"]], rows[column["hybat_name"]], err_msg=column["name"])


def test_the_sidecar_holds_the_sample_row_the_corpus_fingerprint_and_the_sign_convention(corpus, tmp_path):
    index = export_bdf(corpus, tmp_path / "bdf", progress=False)
    samples = pd.read_parquet(corpus / "samples.parquet").set_index("sample_id")
    manifest = json.loads((corpus / "manifest.json").read_text())
    assert index["manifest"] == manifest and index["skipped"] == []
    for entry in index["exported"]:
        sidecar = json.loads((tmp_path / "bdf" / entry["metadata"]).read_text())
        sample, row = sidecar["sample"], samples.loc[entry["sample_id"]]
        assert sample["seed"] == row["seed"] and sample["status"] == row["status"] == entry["status"]
        assert sample["design_negative_porosity"] == row["design_negative_porosity"]
        assert sample["protocol"] == json.loads(row["protocol"])
        assert sidecar["corpus"]["fingerprint"] == manifest["fingerprint"]
        assert "positive on charge" in sidecar["sign_convention"]


class _Spec:
    """The least a corpus writer needs of a spec."""

    name = "tiny"

    def fingerprint(self) -> str:
        return "tiny-0"

    def model_dump(self, *, mode: str) -> dict:
        return {"name": self.name}


def tiny_corpus(out: Path) -> Path:
    """Sample 0 charges then discharges; sample 1 failed (no series)."""
    time_s = np.arange(4.0)
    measured = {TIME: time_s, CURRENT: np.array([-1.0, -1.0, 2.0, 2.0]), VOLTAGE: np.array([3.7, 3.75, 3.6, 3.55]),
                AMBIENT_TEMPERATURE: np.full(4, 298.15)}
    writer = CorpusWriter(out, _Spec(), resume=False)
    writer.open([0, 1], label="test", progress=False)
    writer.write({"sample_id": 0, "status": "ok", "message": ""},
                 series_table(0, measured, {VOLTAGE: measured[VOLTAGE] - 0.01}), {"sample_id": np.array([0])})
    writer.write({"sample_id": 1, "status": "failed", "message": "infeasible design: porosity"})
    writer.finish("serial", 0.0)
    return out


def test_failed_samples_are_not_exported_and_the_index_says_why(tmp_path):
    index = export_bdf(tiny_corpus(tmp_path / "corpus"), tmp_path / "bdf", progress=False)
    assert [entry["sample_id"] for entry in index["exported"]] == [0]
    assert index["skipped"] == [{"sample_id": 1, "status": "failed", "message": "infeasible design: porosity"}]
    assert "failed samples have no series" in index["note"]
    assert sorted(path.name for path in (tmp_path / "bdf").iterdir()) == [
        "index.json", "sample-000000.bdf.csv", "sample-000000.hybat.json"]
    charge_positive = pd.read_csv(tmp_path / "bdf" / "sample-000000.bdf.csv")["Current / A"]
    assert charge_positive.tolist() == [1.0, 1.0, -2.0, -2.0]


def test_bad_input_is_one_line_naming_the_value(tmp_path):
    corpus = tiny_corpus(tmp_path / "corpus")
    with pytest.raises(DataError, match="nowhere: corpus directory not found"):
        export_bdf(tmp_path / "nowhere", tmp_path / "out")
    with pytest.raises(DataError, match="not a finished corpus"):
        export_bdf(corpus / "series", tmp_path / "out")
    with pytest.raises(ConfigError, match="must be a new or empty directory"):
        export_bdf(corpus, corpus)
    with pytest.raises(ConfigError, match="table_format='xlsx': allowed values are csv, csv.gz, parquet"):
        export_bdf(corpus, tmp_path / "out", table_format="xlsx")
    assert not (tmp_path / "out").exists()
