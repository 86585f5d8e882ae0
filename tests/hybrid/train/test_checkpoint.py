"""Facts about checkpoints: what fit() stores in them, and how a missing or damaged one is refused."""

from __future__ import annotations

import json

import pytest
import torch

from hybrid.train.checkpoint import load_checkpoint
from hybrid.train.config import TrainConfig
from sim.errors import DataError
from tests.hybrid.train.test_loop import MODEL_CONFIG, NORMALISATION, TinyGRU, lag_data, run_fit


def test_checkpoint_contents_and_errors(tmp_path):
    config = TrainConfig(epochs=2, truncation_steps=20, schedule="onecycle")
    run_fit(TinyGRU(), lag_data(1, seed=60), lag_data(1, seed=600), config, tmp_path, extra={"features": ["u"]})
    checkpoint = torch.load(tmp_path / "last.pt", weights_only=True)
    assert checkpoint["model_config"] == MODEL_CONFIG and checkpoint["normalisation"] == NORMALISATION
    assert checkpoint["train_config"] == config.model_dump(mode="json") and checkpoint["extra"] == {"features": ["u"]}
    assert {"python", "torch", "numpy"} <= set(checkpoint["versions"])
    assert [entry["epoch"] for entry in checkpoint["progress"]["history"]] == [1, 2]
    assert json.loads((tmp_path / "history.json").read_text()) == checkpoint["progress"]["history"]

    with pytest.raises(DataError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")
    (tmp_path / "corrupt.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(DataError, match="not a readable checkpoint"):
        load_checkpoint(tmp_path / "corrupt.pt")
