"""Facts about train_model's fine-tuning recipes: "full" from a checkpoint starts at its weights,
"head" trains the output layer only, "l2sp" with a huge strength keeps the pretrained weights."""

from __future__ import annotations

from pathlib import Path

import pytest

from hybrid.models.residual_rnn import ResidualRNNConfig
from hybrid.train.checkpoint import load_checkpoint
from hybrid.train.config import TrainConfig
from hybrid.train.recipes import FINETUNE_CANDIDATES, FineTune, train_model
from sim.errors import ConfigError
from tests.hybrid.train.test_loop import NORMALISATION, lag_data

MODEL = ResidualRNNConfig(input_size=1, output_size=1, cell="gru", hidden_size=8, layers=1)
LEARNING_RATE = 1e-3
CONFIG = TrainConfig(epochs=3, truncation_steps=20, learning_rate=LEARNING_RATE, schedule="constant",
                     early_stopping_patience=3)
TRAIN, VAL = lag_data(3, seed=10), lag_data(1, seed=100)


def train(run_dir: Path, **recipe):
    return train_model("m", MODEL, TRAIN, VAL, CONFIG, run_dir, normalisation=NORMALISATION, keep="last.pt", **recipe)


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory) -> Path:
    """The last.pt of a model trained from its seeded start (another seed than the fine-tunings)."""
    run_dir = tmp_path_factory.mktemp("pretrained")
    train_model("pre", MODEL, TRAIN, VAL, CONFIG.model_copy(update={"seed": 5}), run_dir, normalisation=NORMALISATION)
    return run_dir / "last.pt"


def deviation(trained, pretrained: Path) -> dict[str, float]:
    """Largest |w - w_pretrained| per parameter."""
    start = load_checkpoint(pretrained)["model_state"]
    return {name: float((value - start[name]).abs().max()) for name, value in trained.model.state_dict().items()}


def test_full_recipe_starts_from_the_checkpoint_weights(pretrained, tmp_path):
    _, from_checkpoint = train(tmp_path / "init", init=pretrained)
    _, from_scratch = train(tmp_path / "scratch")
    pretrained_val_loss = load_checkpoint(pretrained)["progress"]["history"][-1]["val_loss"]
    assert from_checkpoint.initial_val_loss == pytest.approx(pretrained_val_loss, rel=1e-9)
    assert from_scratch.initial_val_loss != pytest.approx(pretrained_val_loss, rel=1e-3)


def test_head_recipe_changes_only_the_head(pretrained, tmp_path):
    trained, _ = train(tmp_path, init=pretrained, recipe="head")
    moved = deviation(trained, pretrained)
    assert all(value == 0.0 for name, value in moved.items() if not name.startswith("head."))
    assert all(value > 0.0 for name, value in moved.items() if name.startswith("head."))


def test_l2sp_recipe_with_a_huge_strength_keeps_the_pretrained_weights(pretrained, tmp_path):
    anchored = deviation(train(tmp_path / "l2sp", init=pretrained, recipe="l2sp", l2sp_strength=1e8)[0], pretrained)
    free = deviation(train(tmp_path / "full", init=pretrained)[0], pretrained)
    # Adam steps are about the learning rate whatever the gradient: the penalty pulls every weight
    # back after each step, while without it the weights drift over all the steps
    assert max(anchored.values()) < 3 * LEARNING_RATE
    assert max(free.values()) > 3 * max(anchored.values())


def test_recipes_are_checked(pretrained, tmp_path):
    with pytest.raises(ConfigError, match="init"):
        train(tmp_path / "a", recipe="head")
    with pytest.raises(ConfigError, match="l2sp_strength"):
        train(tmp_path / "b", init=pretrained, recipe="l2sp")
    with pytest.raises(ConfigError, match="recipe"):
        train(tmp_path / "c", init=pretrained, recipe="everything")


def test_finetune_recipes_map_onto_train_model_options():
    assert FineTune("full", 1e-3).train_model_options() == {"recipe": "full"}
    assert FineTune("head", 1e-3, freeze_rnn=True).train_model_options() == {"recipe": "head"}
    assert FineTune("anchored", 1e-3, l2sp=0.1).train_model_options() == {"recipe": "l2sp", "l2sp_strength": 0.1}
    assert len({recipe.name for recipe in FINETUNE_CANDIDATES}) == len(FINETUNE_CANDIDATES)
    with pytest.raises(ConfigError, match="one of the two"):
        FineTune("both", 1e-3, freeze_rnn=True, l2sp=0.1)
