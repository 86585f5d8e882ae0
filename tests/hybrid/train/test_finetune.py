"""Facts about starting a run from a pretrained one (``hybat train --init RUN``): it keeps the
pretrained normalisation, "head" changes nothing but the output layer, "choose" keeps the recipe
with the lowest validation loss and its weights, "none" keeps the pretrained weights (zero-shot),
and a mismatched run is refused by name."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from hybrid.train.checkpoint import load_checkpoint
from hybrid.train.run import TrainRunConfig, train_from_config
from sim.config import load_config
from sim.errors import ConfigError

ROOT = Path(__file__).resolve().parents[3]
SMOKE_RUN = ROOT / "configs" / "train" / "smoke.yaml"


def _config(recipe: str, epochs: int = 2, **model_changes) -> TrainRunConfig:
    config = load_config(SMOKE_RUN, TrainRunConfig)
    gru = config.models[0].model_copy(update={"ensemble": 1, "model": {**config.models[0].model, **model_changes}})
    return config.model_copy(update={"models": [gru], "train": config.train.model_copy(update={"epochs": epochs}),
                                     "finetune": config.finetune.model_copy(update={"recipe": recipe})})


def test_head_only_changes_the_output_layer_and_keeps_the_pretrained_normalisation(smoke_run, smoke_corpus_dir,
                                                                                    tmp_path):
    pretrained, _, _ = smoke_run
    summary = train_from_config(_config("head"), smoke_corpus_dir, tmp_path / "tuned", init=pretrained)
    assert summary["init"] == str(pretrained) and summary["models"]["gru"]["finetune"]["recipe"] == "head"
    assert json.loads((tmp_path / "tuned" / "normalisation.json").read_text()) == \
        json.loads((pretrained / "normalisation.json").read_text())
    before = load_checkpoint(pretrained / "gru" / "best.pt")["model_state"]
    after = load_checkpoint(tmp_path / "tuned" / "gru" / "last.pt")["model_state"]  # best.pt may be the start
    changed = {name for name in before if not torch.equal(before[name], after[name])}
    assert changed and all(name.startswith("head.") for name in changed)


def test_choose_keeps_the_recipe_with_the_lowest_validation_loss(smoke_run, smoke_corpus_dir, tmp_path):
    pretrained, _, _ = smoke_run
    summary = train_from_config(_config("choose"), smoke_corpus_dir, tmp_path / "tuned", init=pretrained)
    facts = summary["models"]["gru"]["finetune"]
    assert len(facts["val_loss"]) == 5 and facts["recipe"] == min(facts["val_loss"], key=facts["val_loss"].get)
    kept = tmp_path / "tuned" / "gru"
    assert len(list((kept / "finetune").iterdir())) == 5
    assert (kept / "best.pt").read_bytes() == (kept / facts["run_dir"] / "best.pt").read_bytes()


@pytest.mark.parametrize("change, message", [
    ({"hidden_size": 8}, "hidden_size = 8 but the pretrained model"),
])
def test_a_run_that_does_not_match_the_pretrained_one_is_refused(change, message, smoke_run, smoke_corpus_dir,
                                                                 tmp_path):
    pretrained, _, _ = smoke_run
    with pytest.raises(ConfigError, match=message):
        train_from_config(_config("full", **change), smoke_corpus_dir, tmp_path / "tuned", init=pretrained)


def test_other_features_or_a_missing_model_are_refused(smoke_run, smoke_corpus_dir, tmp_path):
    pretrained, _, _ = smoke_run
    config = _config("full")
    other = config.model_copy(update={"features": config.features.model_copy(update={"time_step": False})})
    with pytest.raises(ConfigError, match="features.time_step = False but the pretrained run"):
        train_from_config(other, smoke_corpus_dir, tmp_path / "a", init=pretrained)
    renamed = config.model_copy(update={"models": [config.models[0].model_copy(update={"name": "lstm"})]})
    with pytest.raises(ConfigError, match="no model 'lstm' to start from"):
        train_from_config(renamed, smoke_corpus_dir, tmp_path / "b", init=pretrained)


def test_none_keeps_the_pretrained_weights_on_the_new_splits(smoke_run, smoke_corpus_dir, tmp_path):
    pretrained, _, _ = smoke_run
    summary = train_from_config(_config("none"), smoke_corpus_dir, tmp_path / "zero_shot", init=pretrained)
    facts = summary["models"]["gru"]
    assert facts["finetune"]["recipe"] == "none" and facts["epochs_run"] == 0
    assert facts["best_val_loss"] == pytest.approx(facts["finetune"]["val_loss"]["none"])
    before = load_checkpoint(pretrained / "gru" / "best.pt")["model_state"]
    after = load_checkpoint(tmp_path / "zero_shot" / "gru" / "best.pt")["model_state"]
    assert all(torch.equal(before[name], after[name]) for name in before)
