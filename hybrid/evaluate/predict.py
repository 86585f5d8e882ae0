"""Predict one record: a trained model (or the physics model alone) run causally over a whole
record from its first row, carrying its own state (free-running: no teacher forcing, no resets,
no chunk boundaries)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from tqdm import tqdm

from hybrid.data import (PHYSICS_SOC, PHYSICS_TEMPERATURE, PHYSICS_VOLTAGE, Corpus, Record, cell_inputs,
                         context_features, context_window, decode_outputs)
from hybrid.models import Seq2SeqForecaster
from hybrid.train import PHYSICS, TrainedModel, torch_threads

log = logging.getLogger(__name__)

ContextMode = Literal["characterisation", "none"]
NO_CONTEXT = "_none"  # suffix of a context model's predictions without its context


@dataclass
class RecordPrediction:
    """A model's voltage [V] (rows,), SOC (rows,) or None and cell temperature [K] (rows,) or
    None over one whole record."""

    voltage_V: np.ndarray
    soc: np.ndarray | None
    temperature_K: np.ndarray | None = None


@torch.no_grad()
def predict_record(trained: TrainedModel, cell: Record, context: ContextMode = "characterisation") -> RecordPrediction:
    """Run ``trained`` over the whole record of ``cell`` in one causal pass from its first row.

    A context-conditioned model reads the record's characterisation window (``context``
    "characterisation"; those rows are its context, see :func:`context_rows`) or nothing
    ("none": the population-average residual); other models ignore ``context``.
    """
    inputs = torch.from_numpy(cell_inputs(cell, trained.normalisation)).unsqueeze(0)  # (1, time, features)
    state = None
    rows = context_rows(trained, cell)
    if rows and context == "characterisation":
        features, mask = context_features(cell, trained.normalisation, rows)
        state = trained.model.context_state(torch.from_numpy(features).unsqueeze(0), torch.from_numpy(mask).unsqueeze(0))
    outputs, _ = trained.model(inputs, state)  # (1, time, targets)
    return RecordPrediction(*decode_outputs(outputs[0].double().numpy(), cell, trained.normalisation))


def context_rows(trained: TrainedModel, cell: Record) -> int:
    """How many leading rows of ``cell`` a context-conditioned ``trained`` reads as its context
    (never scored); 0 for other models."""
    window = context_window(getattr(trained.model, "config", None))
    return 0 if window is None else window.rows(cell)


def physics_prediction(cell: Record) -> RecordPrediction:
    """The physics model's own voltage [V], SOC and cell temperature [K] over ``cell``'s record."""
    return RecordPrediction(cell.columns[PHYSICS_VOLTAGE], cell.columns.get(PHYSICS_SOC),
                            cell.columns.get(PHYSICS_TEMPERATURE))


Predictions = dict[str, dict[int, RecordPrediction]]  # model -> sample_id -> prediction


def predict_records(trained: TrainedModel, corpus: Corpus, sample_ids: Iterable[int],
                    context: ContextMode = "characterisation") -> dict[int, RecordPrediction]:
    """sample_id -> :func:`predict_record` of ``trained`` on that record of ``corpus``."""
    return {i: predict_record(trained, corpus.cells[i], context) for i in sample_ids}


def predict_corpus(models: list[TrainedModel], corpus: Corpus,
                   sample_ids: list[int]) -> tuple[Predictions, dict[str, float]]:
    """Predictions of physics and every model on ``sample_ids``, and CPU inference steps/s per model.
    A context-conditioned model is predicted with its characterisation context (its name) and
    without a context (its name + NO_CONTEXT). Forecasters are no open-loop models and are skipped."""
    predictions: Predictions = {PHYSICS: {i: physics_prediction(corpus.cells[i]) for i in sample_ids}}
    steps = sum(corpus.cells[i].rows for i in sample_ids)
    throughput = {}
    for trained in models:
        if isinstance(trained.model, Seq2SeqForecaster):  # reads the measured voltage: hybrid.evaluate.rolling
            continue
        started = time.perf_counter()
        with torch_threads(1):  # one record at a time: tiny kernels, see TrainConfig.threads
            records = tqdm(sample_ids, desc=f"predict {trained.name}", unit="record", disable=None, leave=False)
            predictions[trained.name] = predict_records(trained, corpus, records)
        throughput[trained.name] = steps / (time.perf_counter() - started)
        if context_window(getattr(trained.model, "config", None)) is not None:
            with torch_threads(1):
                predictions[trained.name + NO_CONTEXT] = predict_records(trained, corpus, sample_ids, "none")
        log.info("%s: %d records, %d steps at %.0f steps/s", trained.name, len(sample_ids), steps,
                 throughput[trained.name])
    return predictions, throughput
