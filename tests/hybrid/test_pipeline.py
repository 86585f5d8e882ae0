"""Facts about a training run end to end on the smoke corpus: the hybrid learns the residual
(beats physics on its training cells), the metrics have the documented shape, checkpoints
reload to identical predictions, and bad run configs are refused with a useful message."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from hybrid.data.corpus import (
    PHYSICS_VOLTAGE,
    VOLTAGE,
    FeatureOptions,
    SplitOptions,
    assign_splits,
    cell_inputs,
    decode_outputs,
    fit_normalisation,
    load_corpus,
    make_batches,
)
from hybrid.evaluate.report import capacity_to_cutoff, load_trained, predict_record
from hybrid.models.residual_rnn import ResidualRNNConfig, build_model, config_to_dict
from hybrid.evaluate.run import evaluate_run
from hybrid.train.run import TrainRunConfig, train_from_config, train_run
from hybrid.train.loop import TrainConfig, fit, seed_everything
from sim.config import load_config, validate
from sim.corpus.generate import CorpusSpec, generate_corpus
from sim.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
SMOKE_CORPUS = ROOT / "configs" / "corpus" / "smoke.yaml"
SMOKE_RUN = ROOT / "configs" / "train" / "smoke.yaml"
DEFAULT_RUN = ROOT / "configs" / "train" / "default.yaml"
MODELS = {"physics", "black_box", "gru"}
STATS = {"rmse_mV", "mae_mV", "max_mV", "points"}


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory, one_thread) -> Path:
    out = tmp_path_factory.mktemp("smoke") / "corpus"
    generate_corpus(load_config(SMOKE_CORPUS, CorpusSpec), out, progress=False)
    return out


@pytest.fixture(scope="module")
def run(tmp_path_factory, corpus_dir, one_thread) -> tuple[Path, dict, dict]:
    """(run_dir, train summary, evaluation report) of the smoke recipe."""
    run_dir = tmp_path_factory.mktemp("runs") / "smoke"
    summary = train_run(SMOKE_RUN, corpus_dir, run_dir)
    return run_dir, summary, evaluate_run(run_dir, corpus_dir)


def test_hybrid_beats_physics_and_a_constant_offset_on_its_training_cells(run, corpus_dir):
    _, summary, report = run
    train = report["splits"]["train"]
    corpus = load_corpus(corpus_dir)
    residual = np.concatenate([corpus.cells[i].columns[VOLTAGE] - corpus.cells[i].columns[PHYSICS_VOLTAGE]
                               for i in summary["splits"]["train"]])
    constant_offset_mV = 1e3 * residual.std()  # the best constant correction of the physics voltage
    assert train["gru"]["rmse_mV"] < 0.5 * train["physics"]["rmse_mV"]
    assert train["gru"]["rmse_mV"] < 0.5 * constant_offset_mV
    assert train["gru"]["rmse_mV"] < train["black_box"]["rmse_mV"]
    assert summary["models"]["gru"]["best_val_loss"] < summary["models"]["gru"]["initial_val_loss"]


def test_metrics_have_the_documented_shape(run):
    run_dir, summary, report = run
    assert json.loads((run_dir / "metrics.json").read_text()) == json.loads(json.dumps(report))
    assert set(report["splits"]) == {"train", "val", "test"}  # no ageing, one temperature, no design hold-out
    for split, table in report["splits"].items():
        assert set(table) == MODELS, split
        for stats in table.values():
            assert set(stats) == STATS and 0 < stats["mae_mV"] <= stats["rmse_mV"] <= stats["max_mV"]
        assert set(report["timescales"][split]) == MODELS
        assert {"pulse", "rest"} <= set(report["timescales"][split]["gru"])
        assert set(report["soc"][split]) == MODELS
        assert report["validity"][split]["invalid_rows"] == 0
    physics_quarters = report["long_horizon"]["physics"]["quarter_rmse_mV"]
    assert len(physics_quarters) == 4 and all(value > 0 for value in physics_quarters)
    assert report["soh"] == {}  # no capacity checks in the smoke protocols
    assert report["temperature"] == {}  # no temperature head in the smoke run
    for name in ("black_box", "gru"):
        assert report["throughput"][name]["train_steps_per_s"] > 0
        assert report["throughput"][name]["inference_steps_per_s"] > 0
        assert report["models"][name]["causal"] and report["models"][name]["parameters"] > 0
    assert "voltage_overlay.png" in report["plots"]
    for name in report["plots"]:
        assert (run_dir / "plots" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_run_directory_records_config_splits_and_normalisation(run):
    run_dir, summary, _ = run
    config = validate(TrainRunConfig, json.loads((run_dir / "run_config.json").read_text()), "run_config.json")
    assert config == load_config(SMOKE_RUN, TrainRunConfig)
    splits = json.loads((run_dir / "splits.json").read_text())["splits"]
    assert {name: sorted(row[0] for row in rows) for name, rows in splits.items()} == summary["splits"]
    normalisation = json.loads((run_dir / "normalisation.json").read_text())
    trained = load_trained(run_dir / "gru" / "best.pt", "gru")
    assert trained.normalisation == normalisation["hybrid"]
    assert not any(name.startswith("Physics") for name in normalisation["black_box"]["features"])


def test_evaluation_is_deterministic(run, corpus_dir):
    run_dir, _, report = run
    again = evaluate_run(run_dir, corpus_dir)
    assert again["splits"] == report["splits"] and again["soc"] == report["soc"]


def test_checkpoint_reload_gives_identical_predictions(corpus_dir, tmp_path):
    corpus = load_corpus(corpus_dir)
    assignment = assign_splits(corpus, SplitOptions(val_fraction=0.25, test_fraction=0.25))
    normalisation = fit_normalisation(corpus, assignment, FeatureOptions(), "hybrid")
    config = ResidualRNNConfig(len(normalisation["features"]), len(normalisation["targets"]), hidden_size=8, layers=1)
    seed_everything(0)
    model = build_model(config)
    batches = {split: make_batches(corpus, assignment.ranges[split], normalisation, 4) for split in ("train", "val")}
    fit(model, batches["train"], batches["val"], TrainConfig(epochs=2, truncation_steps=100), run_dir=tmp_path,
        model_config=config_to_dict(config), normalisation=normalisation)
    reloaded = load_trained(tmp_path / "last.pt", "gru")
    model.eval()
    for cell in corpus.cells.values():
        with torch.no_grad():
            direct, _ = model(torch.from_numpy(cell_inputs(cell, normalisation)).unsqueeze(0))  # (1, time, 2)
        voltage, soc, _ = decode_outputs(direct[0].double().numpy(), cell, normalisation)
        prediction = predict_record(reloaded, cell)
        np.testing.assert_array_equal(prediction.voltage_V, voltage)
        np.testing.assert_array_equal(prediction.soc, soc)


def test_capacity_to_cutoff_interpolates_and_extrapolates():
    charge = np.array([0.0, 1.0, 2.0, 3.0])
    assert capacity_to_cutoff(charge, np.array([4.0, 3.8, 3.4, 3.0]), 3.6) == pytest.approx(1.5)
    # not reached: extrapolate along the last slope (-0.2 V per A.h) from 3.2 V to 3.1 V ...
    assert capacity_to_cutoff(charge, np.array([4.0, 3.8, 3.4, 3.2]), 3.1) == pytest.approx(3.5)
    # ... by at most 20 % of the charge discharged
    assert capacity_to_cutoff(charge, np.array([4.0, 3.8, 3.4, 3.2]), 2.0) == pytest.approx(3.6)


def test_default_recipe_is_valid_and_trains_the_documented_models():
    config = load_config(DEFAULT_RUN, TrainRunConfig)
    assert [name for name, _, _ in config.entries()] == ["black_box", "lstm", "gru", "two_branch"]
    assert config.train.early_stopping_patience < config.train.epochs


@pytest.mark.parametrize("change, message", [
    ({"models": [{"name": "gru", "model": {"kind": "residual_rnn", "colour": "red"}}]}, "unknown key 'colour'"),
    ({"models": [{"name": "physics", "model": {"kind": "residual_rnn"}}]}, "reserved"),
    ({"models": [{"name": "gru", "model": {"kind": "residual_rnn", "input_size": 3}}]}, "input_size"),
    ({"models": [{"name": "x", "model": {"kind": "forecaster"}}]}, "allowed for a hybrid"),
    ({"models": [{"name": "gru", "model": {"kind": "residual_rnn"}, "train": {"epochs": 0}}]}, "epochs"),
    ({"splits": {"val_fraction": 0.0}}, None),
])
def test_bad_run_configs_name_the_field(change, message, tmp_path, corpus_dir):
    data = {**yaml.safe_load(SMOKE_RUN.read_text()), **change}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    if message is None:  # valid config, but no validation cells to stop early on
        with pytest.raises(ConfigError, match="val_fraction"):
            train_run(path, corpus_dir, tmp_path / "run")
        return
    with pytest.raises(ConfigError, match=message):
        train_run(path, corpus_dir, tmp_path / "run")


def test_a_run_directory_is_never_overwritten(run, corpus_dir):
    run_dir, _, _ = run
    with pytest.raises(ConfigError, match="already holds a run"):
        train_from_config(load_config(SMOKE_RUN, TrainRunConfig), corpus_dir, run_dir)
