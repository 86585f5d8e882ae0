"""Smoke tests of the modelling-claims experiments: each script runs end to end on tiny settings,
writes its table, plot and figures, and shows the part of its claim that holds even at that size."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from sim.config import load_config
from sim.corpus.generate import CorpusSpec, generate_corpus
from tests.experiments.script import load_script

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def keep_thread_count():
    """The scripts set one torch thread (fastest for tiny RNNs); give the setting back afterwards."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """The smoke corpus (HPPC with relaxations, drive cycles) with 5 cells: train, val and test cells."""
    spec = load_config(ROOT / "configs" / "corpus" / "smoke.yaml", CorpusSpec).model_copy(update={"cells": 5})
    path = tmp_path_factory.mktemp("claims") / "corpus"
    generate_corpus(spec, path, progress=False)
    return path


def written(out: Path, name: str) -> dict:
    """The figures JSON, after checking that the table, plot and JSON exist and are not empty."""
    for suffix in ("md", "png", "json"):
        assert (out / f"{name}.{suffix}").stat().st_size > 0
    assert "|---" in (out / f"{name}.md").read_text()
    return json.loads((out / f"{name}.json").read_text())


def test_tbptt_bias_same_updates_and_truncation_costs_throughput(corpus, tmp_path):
    figures = load_script("tbptt_bias").main(
        ["--quick", "--corpus", str(corpus), "--out", str(tmp_path), "--truncations", "10,full", "--epochs", "2"])
    saved = written(tmp_path, "tbptt_bias")
    assert set(saved["feature_sets"]) == {"all physics states", "physics voltage + SOC only"}
    for feature_set in figures["feature_sets"].values():
        runs = {run["K"]: run for run in feature_set["runs"]}
        for run in runs.values():
            assert all(0 < run["rmse_mV"][row] < math.inf for row in ("all", "fast", "rest"))
        # every K takes one optimizer step per record, so the runs differ only in the cut ...
        assert runs["10"]["optimizer_steps"] == runs["full"]["optimizer_steps"] > 0
        # ... and short truncation pays for its many short backward passes
        assert runs["10"]["steps_per_s"] < runs["full"]["steps_per_s"]


def test_vanishing_gradients_vanilla_rnn_forgets_fastest(corpus, tmp_path):
    figures = load_script("vanishing_gradients").main(
        ["--quick", "--corpus", str(corpus), "--out", str(tmp_path), "--window", "31"])
    written(tmp_path, "vanishing_gradients")
    assert figures["windows"] > 0
    ratio = {}
    for cell, results in figures["cells"].items():
        for stage in ("initial", "trained"):
            norms = results[stage]["hidden"]
            assert math.isnan(norms[0]) and all(math.isfinite(value) and value > 0 for value in norms[1:])
            assert all(math.isfinite(value) for value in results[stage]["input"])
            ratio[cell, stage] = norms[30] / norms[1]
    for stage in ("initial", "trained"):
        assert ratio["rnn", stage] < 0.1 * min(ratio["gru", stage], ratio["lstm", stage])


def test_aliasing_filter_removes_the_alias_from_the_training_data(tmp_path):
    figures = load_script("aliasing").main(
        ["--quick", "--corpora", str(tmp_path / "corpora"), "--out", str(tmp_path / "out")])
    written(tmp_path / "out", "aliasing")
    assert figures["alias_hz"] == pytest.approx(0.02)
    aliased, filtered = figures["aliased"], figures["filtered"]
    # 0.5 C of ripple on a ~5 Ah cell folds down to about 2.5 A at the alias; the filter passes ~0
    assert aliased["train_current_alias_A"] > 1.0 > 100 * filtered["train_current_alias_A"]
    assert aliased["train_residual_alias_mV"] > 10 * filtered["train_residual_alias_mV"]
    for result in (aliased, filtered):
        assert all(math.isfinite(result[key]) for key in ("clean_test_rmse_mV", "own_test_rmse_mV",
                                                          "clean_test_low_frequency_rms_mV", "learned_alias_mV"))


def test_causality_smoother_refused_online_and_leaky_forecaster_collapses(corpus, tmp_path):
    figures = load_script("causality").main(
        ["--quick", "--corpus", str(corpus), "--out", str(tmp_path), "--epochs", "20"])
    written(tmp_path, "causality")
    smoothing = figures["smoothing"]
    assert smoothing["bidirectional smoother"]["refused_online"] and not smoothing["causal filter"]["refused_online"]
    for result in smoothing.values():  # the smoke corpus has no ageing campaign, hence no late-life rows
        assert all(math.isfinite(result["rmse_mV"][row]) for row in ("all", "fast", "rest"))
    leaky, causal = figures["forecasting"]["no causal mask"], figures["forecasting"]["causal mask"]
    # seeing the true future targets makes training look better than it is ...
    assert leaky["train"] < causal["train"]
    # ... and the model falls apart once the future is really unknown
    assert leaky["test_own_predictions"] > 2 * leaky["test_future_known"]
