"""Predict one record: a trained model (or the physics model alone) run causally over a whole
record from its first row, carrying its own state (free-running: no teacher forcing, no resets,
no chunk boundaries)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from hybrid.data import PHYSICS_SOC, PHYSICS_TEMPERATURE, PHYSICS_VOLTAGE, Record, Corpus, cell_inputs, decode_outputs
from hybrid.train import PHYSICS, TrainedModel, torch_threads

log = logging.getLogger(__name__)


@dataclass
class RecordPrediction:
    """A model's voltage [V] (rows,), SOC (rows,) or None and cell temperature [K] (rows,) or
    None over one whole record."""

    voltage_V: np.ndarray
    soc: np.ndarray | None
    temperature_K: np.ndarray | None = None


@torch.no_grad()
def predict_record(trained: TrainedModel, cell: Record) -> RecordPrediction:
    """Run ``trained`` over the whole record of ``cell`` in one causal pass from its first row."""
    inputs = torch.from_numpy(cell_inputs(cell, trained.normalisation)).unsqueeze(0)  # (1, time, features)
    outputs, _ = trained.model(inputs)  # (1, time, targets)
    return RecordPrediction(*decode_outputs(outputs[0].double().numpy(), cell, trained.normalisation))


def physics_prediction(cell: Record) -> RecordPrediction:
    """The physics model's own voltage [V], SOC and cell temperature [K] over ``cell``'s record."""
    return RecordPrediction(cell.columns[PHYSICS_VOLTAGE], cell.columns.get(PHYSICS_SOC),
                            cell.columns.get(PHYSICS_TEMPERATURE))


Predictions = dict[str, dict[int, RecordPrediction]]  # model -> sample_id -> prediction


def predict_records(trained: TrainedModel, corpus: Corpus, sample_ids: Iterable[int]) -> dict[int, RecordPrediction]:
    """sample_id -> :func:`predict_record` of ``trained`` on that record of ``corpus``."""
    return {i: predict_record(trained, corpus.cells[i]) for i in sample_ids}


def predict_corpus(models: list[TrainedModel], corpus: Corpus,
                   sample_ids: list[int]) -> tuple[Predictions, dict[str, float]]:
    """Predictions of physics and every model on ``sample_ids``, and CPU inference steps/s per model."""
    predictions: Predictions = {PHYSICS: {i: physics_prediction(corpus.cells[i]) for i in sample_ids}}
    steps = sum(corpus.cells[i].rows for i in sample_ids)
    throughput = {}
    for trained in models:
        started = time.perf_counter()
        with torch_threads(1):  # one record at a time: tiny kernels, see TrainConfig.threads
            records = tqdm(sample_ids, desc=f"predict {trained.name}", unit="record", disable=None, leave=False)
            predictions[trained.name] = predict_records(trained, corpus, records)
        throughput[trained.name] = steps / (time.perf_counter() - started)
        log.info("%s: %d records, %d steps at %.0f steps/s", trained.name, len(sample_ids), steps,
                 throughput[trained.name])
    return predictions, throughput
