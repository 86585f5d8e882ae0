"""The corpus writer: the on-disk contract, resume that skips finished samples, and refusal of
a directory written for another spec."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sim.corpus.writer import CorpusWriter, cycles_table, series_table
from sim.errors import ConfigError, SimulationError


class _Spec:
    """The least a writer needs of a spec."""

    def __init__(self, name: str = "tiny", seed: int = 0):
        self.name, self.seed = name, seed

    def fingerprint(self) -> str:
        return f"{self.name}-{self.seed}"

    def model_dump(self, *, mode: str) -> dict:
        return {"name": self.name, "seed": self.seed}


def _result(index: int, failed: bool = False) -> tuple[dict, dict | None, dict | None]:
    record = {"sample_id": index, "status": "failed" if failed else "ok", "message": "boom: 3" if failed else "",
              "simulated_hours": 0.5}
    if failed:
        return record, None, None
    time = np.arange(3.0)
    measured = {"Time [s]": time, "Current [A]": np.ones(3), "Voltage [V]": 3.7 + 0 * time}
    summary = {"Tag": np.array(["cycle"]), "Discharge capacity [A.h]": np.array([1.0 + index])}
    return record, series_table(index, measured, {"Voltage [V]": 3.6 + 0 * time}), cycles_table(index, summary, summary)


def _write(out: Path, indices: list[int], spec: _Spec, resume: bool = False, **extra) -> dict:
    writer = CorpusWriter(out, spec, resume=resume)
    for index in writer.open(indices, label="test", progress=False, **extra):
        writer.write(*_result(index, failed=index == 2))
    return writer.finish("serial", 0.0)


def test_a_corpus_holds_every_sample_its_shards_and_the_manifest_extras(tmp_path):
    manifest = _write(tmp_path / "c", [0, 1, 2], _Spec(), kind="measured", data_dir="/data")
    samples = pd.read_parquet(tmp_path / "c" / "samples.parquet")
    assert samples["sample_id"].tolist() == [0, 1, 2]
    assert manifest["counts"] == {"samples": 3, "ok": 2, "truncated": 0, "failed": 1}
    assert manifest["failure_reasons"] == [("boom:3", 1)]  # the reason: first clauses, stripped
    on_disk = json.loads((tmp_path / "c" / "manifest.json").read_text())
    assert on_disk["kind"] == "measured" and on_disk["data_dir"] == "/data" and on_disk["status"] == "complete"
    assert sorted(path.name for path in (tmp_path / "c" / "series").iterdir()) == ["part-000000.parquet",
                                                                                   "part-000001.parquet"]
    series = pd.read_parquet(tmp_path / "c" / "series" / "part-000001.parquet")
    assert list(series.columns) == ["sample_id", "Time [s]", "Current [A]", "Voltage [V]", "Physics voltage [V]"]
    cycles = pd.read_parquet(tmp_path / "c" / "cycles" / "part-000001.parquet")
    assert cycles["Source"].tolist() == ["reference", "physics"]


def test_resume_skips_finished_samples(tmp_path):
    out = tmp_path / "c"
    _write(out, [0, 1], _Spec())
    first = {path: path.stat().st_mtime_ns for path in (out / "samples").glob("part-*.parquet")}
    writer = CorpusWriter(out, _Spec(), resume=True)
    assert writer.resumed is not None and writer.resumed["fingerprint"] == "tiny-0"
    assert writer.open([0, 1, 2, 3], label="test", progress=False) == [2, 3]
    for index in (2, 3):
        writer.write(*_result(index, failed=index == 2))
    manifest = writer.finish("serial", 0.0)
    assert manifest["counts"]["samples"] == 4
    assert all(path.stat().st_mtime_ns == stamp for path, stamp in first.items())


def test_a_different_spec_or_a_full_directory_without_resume_is_refused(tmp_path):
    out = tmp_path / "c"
    _write(out, [0], _Spec())
    with pytest.raises(ConfigError, match="different corpus spec"):
        CorpusWriter(out, _Spec(seed=1), resume=True)
    with pytest.raises(ConfigError, match="not empty"):
        CorpusWriter(out, _Spec(), resume=False)


def test_on_failure_raise_stops_at_a_failed_sample(tmp_path):
    writer = CorpusWriter(tmp_path / "c", _Spec(), resume=False)
    writer.open([0], label="test", progress=False, on_failure="raise")
    with pytest.raises(SimulationError, match="sample 2 failed: boom"):
        writer.write(*_result(2, failed=True))
