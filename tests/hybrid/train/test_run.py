"""Facts about a training run end to end on the smoke corpus: the hybrid learns the residual
(beats physics on its training cells), the run directory records what was run, and bad run
configs are refused with a useful message (the smoke run is tests/hybrid/conftest.py's)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from hybrid.data.columns import PHYSICS_VOLTAGE, VOLTAGE
from hybrid.data.corpus import load_corpus
from hybrid.train.checkpoint import load_trained
from hybrid.train.run import TrainRunConfig, train_from_config, train_run
from sim.config import load_config, validate
from sim.errors import ConfigError

ROOT = Path(__file__).resolve().parents[3]
SMOKE_RUN = ROOT / "configs" / "train" / "smoke.yaml"
DEFAULT_RUN = ROOT / "configs" / "train" / "default.yaml"


def test_hybrid_beats_physics_and_a_constant_offset_on_its_training_cells(smoke_run, smoke_corpus_dir):
    _, summary, report = smoke_run
    train = report["splits"]["train"]
    corpus = load_corpus(smoke_corpus_dir)
    residual = np.concatenate([corpus.cells[i].columns[VOLTAGE] - corpus.cells[i].columns[PHYSICS_VOLTAGE]
                               for i in summary["splits"]["train"]])
    constant_offset_mV = 1e3 * residual.std()  # the best constant correction of the physics voltage
    assert train["gru"]["rmse_mV"] < 0.5 * train["physics"]["rmse_mV"]
    assert train["gru"]["rmse_mV"] < 0.5 * constant_offset_mV
    assert train["gru"]["rmse_mV"] < train["black_box"]["rmse_mV"]
    assert summary["models"]["gru"]["best_val_loss"] < summary["models"]["gru"]["initial_val_loss"]


def test_run_directory_records_config_splits_and_normalisation(smoke_run):
    run_dir, summary, _ = smoke_run
    config = validate(TrainRunConfig, json.loads((run_dir / "run_config.json").read_text()), "run_config.json")
    assert config == load_config(SMOKE_RUN, TrainRunConfig)
    splits = json.loads((run_dir / "splits.json").read_text())["splits"]
    assert {name: sorted(row[0] for row in rows) for name, rows in splits.items()} == summary["splits"]
    normalisation = json.loads((run_dir / "normalisation.json").read_text())
    trained = load_trained(run_dir / "gru" / "best.pt", "gru")
    assert trained.normalisation == normalisation["hybrid"]
    assert not any(name.startswith("Physics") for name in normalisation["black_box"]["features"])


def test_default_recipe_is_valid_and_trains_the_documented_models():
    config = load_config(DEFAULT_RUN, TrainRunConfig)
    assert [name for name, _, _ in config.entries()] == ["black_box", "lstm", "gru", "lstm_context", "two_branch", "rolling"]
    assert config.train.early_stopping_patience < config.train.epochs


def test_an_ensemble_trains_members_alike_but_for_the_seed(smoke_run):
    run_dir, summary, report = smoke_run
    config = load_config(SMOKE_RUN, TrainRunConfig)
    members = config.members("gru")
    assert members == ["gru", "gru-m1"]  # configs/train/smoke.yaml: ensemble 2
    seeds = [load_trained(run_dir / name / "best.pt", name) for name in members]
    assert [config.train_config(entry).seed for name, _, entry in config.entries() if name in members] == [0, 1]
    assert seeds[0].model_config == seeds[1].model_config
    assert not all(torch.equal(a, b) for a, b in zip(seeds[0].model.parameters(), seeds[1].model.parameters()))
    assert set(members) <= set(summary["models"]) and set(members) <= set(report["splits"]["test"])


@pytest.mark.parametrize("change, message", [
    ({"models": [{"name": "gru-m2", "model": {"kind": "residual_rnn"}}]}, "ensemble member"),
    ({"models": [{"name": "gru", "model": {"kind": "residual_rnn"}, "ensemble": 0}]}, "ensemble"),
    ({"models": [{"name": "gru", "model": {"kind": "residual_rnn", "colour": "red"}}]}, "unknown key 'colour'"),
    ({"models": [{"name": "physics", "model": {"kind": "residual_rnn"}}]}, "reserved"),
    ({"models": [{"name": "gru", "model": {"kind": "residual_rnn", "input_size": 3}}]}, "input_size"),
    ({"models": [{"name": "x", "model": {"kind": "colour"}}]}, "allowed for a hybrid"),
    ({"models": [{"name": "x", "model": {"kind": "forecaster"}}]}, "field 'context_s' = None"),
    ({"models": [{"name": "gru", "model": {"kind": "residual_rnn"}, "train": {"epochs": 0}}]}, "epochs"),
    ({"splits": {"val_fraction": 0.0}}, None),
])
def test_bad_run_configs_name_the_field(change, message, tmp_path, smoke_corpus_dir):
    data = {**yaml.safe_load(SMOKE_RUN.read_text()), **change}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    if message is None:  # valid config, but no validation cells to stop early on
        with pytest.raises(ConfigError, match="val_fraction"):
            train_run(path, smoke_corpus_dir, tmp_path / "run")
        return
    with pytest.raises(ConfigError, match=message):
        train_run(path, smoke_corpus_dir, tmp_path / "run")


def test_a_run_directory_is_never_overwritten(smoke_run, smoke_corpus_dir):
    run_dir, _, _ = smoke_run
    with pytest.raises(ConfigError, match="already holds a run"):
        train_from_config(load_config(SMOKE_RUN, TrainRunConfig), smoke_corpus_dir, run_dir)
