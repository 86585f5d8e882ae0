"""Corpus generation: determinism across backends, resume, worker death, failures as data,
samples lost to infrastructure as no data."""

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from hybrid.cli import main as hybat
from sim.backends.base import SerialBackend
from sim.backends.ray_backend import KILL_ONCE_ENV
from sim.config import load_config
from sim.corpus.generate import CorpusSpec, generate_corpus
from sim.errors import ConfigError, InfrastructureLost

ROOT = Path(__file__).resolve().parents[3]
SMOKE = ROOT / "configs" / "corpus" / "smoke.yaml"
SERIES_COLUMNS = {"sample_id", "Time [s]", "Current [A]", "Ambient temperature [K]", "Voltage [V]",
                  "Physics voltage [V]"}


def _spec() -> CorpusSpec:
    return load_config(SMOKE, CorpusSpec)


def _read(corpus: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    samples = pd.read_parquet(corpus / "samples.parquet").drop(columns=["wall_s"]).sort_values("sample_id")
    series = pd.read_parquet(corpus / "series").sort_values(["sample_id", "Time [s]"], kind="stable")
    cycles = pd.read_parquet(corpus / "cycles")
    return samples.reset_index(drop=True), series.reset_index(drop=True), cycles.reset_index(drop=True)


def assert_same_corpus(left: Path, right: Path) -> None:
    for a, b in zip(_read(left), _read(right)):
        pd.testing.assert_frame_equal(a, b)


@pytest.fixture(scope="module")
def serial_corpus(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("serial") / "corpus"
    generate_corpus(_spec(), out, progress=False)
    return out


def test_corpus_matches_the_on_disk_contract(serial_corpus):
    samples = pq.read_table(serial_corpus / "samples.parquet").to_pandas()
    assert len(samples) == 4 and set(samples["status"]) <= {"ok", "truncated"}
    assert {"sample_id", "status", "message", "seed", "protocol", "wall_s"} <= set(samples.columns)
    assert any(column.startswith("design_") for column in samples.columns)
    series = pd.read_parquet(serial_corpus / "series")
    assert SERIES_COLUMNS <= set(series.columns)
    for _, one in series.groupby("sample_id"):
        assert np.all(np.diff(one["Time [s]"].to_numpy()) > 0)
    cycles = pd.read_parquet(serial_corpus / "cycles")
    assert set(cycles["Source"]) == {"reference", "physics"} and "Discharge capacity [A.h]" in cycles
    manifest = __import__("json").loads((serial_corpus / "manifest.json").read_text())
    assert manifest["schema_version"] == 1 and manifest["counts"]["samples"] == 4
    assert manifest["spec"]["name"] == "smoke" and "pybamm" in manifest["versions"]
    assert not list(serial_corpus.rglob("*.tmp"))


def test_reference_and_physics_differ_but_see_the_same_current(serial_corpus):
    series = pd.read_parquet(serial_corpus / "series")
    residual = series["Voltage [V]"] - series["Physics voltage [V]"]
    assert np.sqrt(np.mean(residual**2)) > 0.005  # the physics model does not know the plant


@pytest.mark.ray
def test_ray_backend_gives_the_same_corpus_and_survives_a_killed_worker(serial_corpus, tmp_path, monkeypatch):
    monkeypatch.setenv(KILL_ONCE_ENV, str(tmp_path / "killed-once"))
    out = tmp_path / "ray"
    generate_corpus(_spec(), out, backend="ray", workers=2, progress=False)
    assert (tmp_path / "killed-once").exists()  # a worker really died mid-run
    assert_same_corpus(serial_corpus, out)


def test_interrupted_run_resumes_without_recomputing(serial_corpus, tmp_path):
    out = tmp_path / "resumed"
    script = (f"from sim.config import load_config; from sim.corpus.generate import CorpusSpec, generate_corpus; "
              f"generate_corpus(load_config({str(SMOKE)!r}, CorpusSpec), {str(out)!r}, progress=False)")
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    journal = out / "samples"
    deadline = time.time() + 120
    while time.time() < deadline and len(list(journal.glob("part-*.parquet"))) < 2:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    finished = {path: path.stat().st_mtime_ns for path in journal.glob("part-*.parquet")}
    assert 2 <= len(finished) < 4 and not (out / "samples.parquet").exists()
    generate_corpus(_spec(), out, resume=True, progress=False)
    assert all(path.stat().st_mtime_ns == stamp for path, stamp in finished.items())
    assert_same_corpus(serial_corpus, out)


class LosingBackend(SerialBackend):
    """The serial backend on a cluster whose driver loses its raylet after two items: the rest
    are lost to infrastructure, reported as the Ray backend reports it."""

    def map(self, function, items, on_result, *, shared=(), lost):
        super().map(function, items[:2], on_result, shared=shared, lost=lost)
        raise InfrastructureLost(f"{len(items) - 2} of {len(items)} tasks lost to infrastructure "
                                 "(LocalRayletDiedError)", lost=len(items) - 2, causes=("LocalRayletDiedError",))


def test_samples_lost_to_infrastructure_are_not_recorded_and_resume_does_them(serial_corpus, tmp_path, monkeypatch,
                                                                              capsys):
    out = tmp_path / "lost"
    monkeypatch.setattr("sim.corpus.generate.make_backend", lambda *args, **kwargs: LosingBackend())
    code = hybat(["corpus", str(SMOKE), "--out", str(out), "--backend", "ray"])
    assert code == 3
    assert capsys.readouterr().err.endswith(
        "hybat corpus: error: corpus smoke: 2 of 4 samples lost to infrastructure (LocalRayletDiedError); "
        "run again with resume (hybat corpus --resume) to redo them\n")
    journal = pd.read_parquet(out / "samples")
    assert sorted(journal["sample_id"]) == [0, 1] and "failed" not in set(journal["status"])
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "incomplete" and manifest["missing"] == 2
    assert not (out / "samples.parquet").exists()
    monkeypatch.undo()
    generate_corpus(_spec(), out, resume=True, progress=False)
    assert_same_corpus(serial_corpus, out)


def test_resume_refuses_another_spec_and_a_fresh_run_refuses_a_full_directory(serial_corpus, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(serial_corpus, copy)
    with pytest.raises(ConfigError, match="not empty"):
        generate_corpus(_spec(), copy, progress=False)
    other = _spec().model_copy(update={"seed": 99})
    with pytest.raises(ConfigError, match="different corpus spec"):
        generate_corpus(other, copy, resume=True, progress=False)


def test_infeasible_designs_are_recorded_and_the_rest_completes(tmp_path):
    spec = _spec().model_copy(update={"cells": 6, "design": CorpusSpec.model_validate({
        "cells": 1, "protocols": [{"protocol": {"kind": "rest", "duration_s": 1}}],
        "design": {"variables": {"negative_porosity": {"low": 0.2, "high": 0.4},
                                 "negative_active_fraction": {"low": 0.55, "high": 0.8}}}}).design})
    manifest = generate_corpus(spec, tmp_path / "mixed", progress=False)
    samples = pd.read_parquet(tmp_path / "mixed" / "samples.parquet")
    failed = samples[samples["status"] == "failed"]
    assert 0 < len(failed) < len(samples)
    assert all(message.startswith("reference: InfeasibleDesign") for message in failed["message"])
    assert manifest["counts"]["failed"] == len(failed) and manifest["failure_reasons"]
    written = {int(path.stem.split("-")[1]) for path in (tmp_path / "mixed" / "series").glob("part-*.parquet")}
    assert written == set(samples.loc[samples["status"] != "failed", "sample_id"])
