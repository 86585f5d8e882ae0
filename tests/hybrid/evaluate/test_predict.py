"""Facts about predicting a record: a reloaded checkpoint predicts exactly what the trained model did."""

from __future__ import annotations

import numpy as np
import torch

from hybrid.data.batch import make_batches
from hybrid.data.corpus import load_corpus
from hybrid.data.features import FeatureOptions, cell_inputs, decode_outputs, fit_normalisation
from hybrid.data.splits import SplitOptions, assign_splits
from hybrid.evaluate.predict import physics_prediction, predict_record
from hybrid.models.build import build_model, config_to_dict
from hybrid.models.residual_rnn import ResidualRNNConfig
from hybrid.train.checkpoint import load_trained, seed_everything
from hybrid.train.config import TrainConfig
from hybrid.train.loop import fit
from hybrid.data.columns import PHYSICS_SOC, PHYSICS_VOLTAGE


def test_checkpoint_reload_gives_identical_predictions(smoke_corpus_dir, tmp_path):
    corpus = load_corpus(smoke_corpus_dir)
    assignment = assign_splits(corpus, SplitOptions(val_fraction=0.25, test_fraction=0.25))
    normalisation = fit_normalisation(corpus, assignment, FeatureOptions(), "hybrid")
    config = ResidualRNNConfig(input_size=len(normalisation["features"]), output_size=len(normalisation["targets"]),
                               hidden_size=8, layers=1)
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


def test_physics_prediction_is_the_physics_columns(smoke_corpus_dir):
    cell = next(iter(load_corpus(smoke_corpus_dir).cells.values()))
    prediction = physics_prediction(cell)
    np.testing.assert_array_equal(prediction.voltage_V, cell.columns[PHYSICS_VOLTAGE])


def test_a_hybrid_without_a_soc_head_reports_the_physics_soc(smoke_corpus_dir):
    corpus = load_corpus(smoke_corpus_dir)
    assignment = assign_splits(corpus, SplitOptions(val_fraction=0.25, test_fraction=0.25))
    cell = next(iter(corpus.cells.values()))
    for family, soc_head in (("hybrid", False), ("hybrid", True), ("black_box", False)):
        normalisation = fit_normalisation(corpus, assignment, FeatureOptions(soc_head=soc_head), family)
        outputs = np.zeros((cell.rows, len(normalisation["targets"])))  # normalised zeros: the mean residual
        voltage, soc, _ = decode_outputs(outputs, cell, normalisation)
        if family == "black_box":
            assert soc is None  # no SOC head, no physics to fall back on
        elif soc_head:
            assert not np.array_equal(soc, cell.columns[PHYSICS_SOC])  # the head's correction is added
        else:
            np.testing.assert_array_equal(soc, cell.columns[PHYSICS_SOC])
        assert voltage.shape == (cell.rows,)
