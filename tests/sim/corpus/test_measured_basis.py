"""Facts about a synthetic corpus built around measured tests: it replays each usable measured
record's current at that record's C-rates and chamber temperature, takes the pairing's calibrated cell and physics
model, keeps the resolved spec in its manifest (so it resumes), and refuses a bad basis by name."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from sim.corpus import CorpusSpec, generate_corpus
from sim.corpus.measured_basis import with_measured_basis
from sim.errors import ConfigError


def _spec(paired, **basis) -> CorpusSpec:
    return CorpusSpec.model_validate({
        "name": "around_measured", "seed": 3, "cells": 2, "ambient_temperatures_K": [310.15],
        "measured": {"corpus": str(paired), **basis},
        "reference": {"fidelity": {"model": "spme"}, "variability": {"Negative particle diffusivity [m2.s-1]": 0.3}},
        "timeout_s": 120})


def test_the_resolved_spec_replays_the_measured_currents_on_the_calibrated_cell(synthetic_corpus, tmp_path):
    paired, manifest = synthetic_corpus
    resolved = with_measured_basis(_spec(paired), tmp_path / "profiles")
    (choice,) = resolved.protocols  # one usable record (the other failed to load)
    samples = pd.read_parquet(paired / "samples.parquet").set_index("file")
    series = pd.read_parquet(paired / "series" / f"part-{samples.loc['cell_good.csv', 'sample_id']:06d}.parquet")
    capacity = samples.loc["cell_good.csv", "physics_capacity_Ah"]
    assert choice.protocol.peak_c_rate == pytest.approx(series["Current [A]"].abs().max() / capacity, rel=1e-3)
    assert choice.ambient_temperatures_K == [samples.loc["cell_good.csv", "ambient_temperature_K"]]  # 25 degC
    assert not choice.protocol.voltage_cutoffs  # the measured cell followed its current past any limit
    calibration = manifest["calibration"]["values"]
    assert resolved.cell.parameter_set == "Chen2020"
    assert resolved.cell.scales["Electrode width [m]"] == pytest.approx(calibration["capacity_scale"])
    assert resolved.physics.model == "spme" and resolved.measured.resolved
    assert with_measured_basis(resolved, tmp_path / "elsewhere") == resolved  # resolving twice changes nothing


def test_the_calibrated_cell_carries_the_pairing_s_ocv_correction(synthetic_corpus, tmp_path):
    paired, manifest = synthetic_corpus
    copy = tmp_path / "paired"
    shutil.copytree(paired, copy)
    correction = {"stoichiometry": [0.3, 0.9], "voltage_V": [0.01, -0.02]}
    manifest = {**manifest, "calibration": {**manifest["calibration"], "ocv_correction": correction}}
    (copy / "manifest.json").write_text(json.dumps(manifest))
    resolved = with_measured_basis(_spec(copy), tmp_path / "profiles")
    assert resolved.cell.ocv_correction.model_dump() == correction


def test_the_corpus_plays_the_measured_current_and_resumes(synthetic_corpus, tmp_path):
    paired, _ = synthetic_corpus
    out = tmp_path / "corpus"
    manifest = generate_corpus(_spec(paired), out, progress=False)
    assert manifest["counts"]["failed"] == 0
    stored = CorpusSpec.model_validate(json.loads((out / "manifest.json").read_text())["spec"])
    assert stored.measured.resolved and stored.cell.scales  # the calibrated cell the corpus was made with
    assert np.allclose(pd.read_parquet(out / "samples.parquet")["ambient_temperature_K"], 298.15)  # the test's own
    measured = pd.read_csv(out / "profiles" / "test_1.csv")
    played = pd.read_parquet(out / "series" / "part-000000.parquet")
    assert np.corrcoef(np.interp(measured["time_s"], played["Time [s]"], played["Current [A]"]),
                       measured["current_A"])[0, 1] > 0.99
    again = generate_corpus(_spec(paired), out, resume=True, progress=False)
    assert again["fingerprint"] == manifest["fingerprint"]


def test_a_bad_measured_basis_is_named(synthetic_corpus, tmp_path):
    paired, _ = synthetic_corpus
    with pytest.raises(ConfigError, match="measured.corpus = .*no manifest.json"):
        with_measured_basis(_spec(tmp_path), tmp_path / "profiles")
    with pytest.raises(ConfigError, match=r"measured.replay = \['hppc/\*'\]: matches no usable record"):
        with_measured_basis(_spec(paired, replay=["hppc/*"]), tmp_path / "profiles")
    with pytest.raises(ValueError, match="protocols is empty and no measured test is replayed"):
        _spec(paired, replay=[])
