"""Error metrics: the one RMSE, error statistics in mV / % points / K, and the scores of record
predictions (voltage RMSE over the record and inside an SOC window, SOC MAE) with their means over
records and seeds."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from hybrid.data import SOC, VOLTAGE, Corpus
from hybrid.evaluate.predict import Predictions, RecordPrediction

SOC_WINDOW = (0.05, 0.95)  # the reference SOC range of the "rmse_soc_5_95_mV" score
SCORE_KEYS = ("rmse_mV", "rmse_soc_5_95_mV", "soc_mae_pct")


def rms(values: np.ndarray) -> float:
    """Root mean square of ``values`` (any unit; at least one value)."""
    return float(np.sqrt(np.mean(np.square(values))))


def rmse_mV(errors_V: np.ndarray) -> float:
    """RMSE [mV] of voltage errors [V]; NaN when there are none."""
    errors = np.asarray(errors_V, dtype=float)
    return rms(errors) * 1e3 if errors.size else math.nan


def _stats(magnitudes: np.ndarray, unit: str) -> dict[str, float]:
    """RMSE, MAE and max of the absolute errors ``magnitudes`` (already in ``unit``), and their count."""
    return {f"rmse_{unit}": rms(magnitudes), f"mae_{unit}": float(np.mean(magnitudes)),
            f"max_{unit}": float(np.max(magnitudes)), "points": int(magnitudes.size)}


def error_stats(errors_V: np.ndarray) -> dict[str, float]:
    """RMSE, MAE and max |error| in mV of voltage errors [V], and the number of points."""
    return _stats(np.abs(np.asarray(errors_V, dtype=float)) * 1e3, "mV")


def percent_stats(errors_pct: np.ndarray) -> dict[str, float]:
    """RMSE, MAE and max |error| in % (points), and the number of points."""
    return _stats(np.abs(np.asarray(errors_pct, dtype=float)), "pct")


def kelvin_stats(errors_K: np.ndarray) -> dict[str, float]:
    """RMSE, MAE and max |error| in K, and the number of points."""
    return _stats(np.abs(np.asarray(errors_K, dtype=float)), "K")


def score_record(prediction: RecordPrediction, reference_V: np.ndarray, reference_soc: np.ndarray) -> dict:
    """RMSE [mV] over the record and inside SOC_WINDOW (of the reference SOC), SOC MAE [%] of one
    prediction against the reference voltage [V] and SOC (rows,); rows where the prediction is not
    finite are left out and counted; None for a figure without rows (or without a SOC output)."""
    rows = min(len(prediction.voltage_V), len(reference_V))
    error = prediction.voltage_V[:rows] - reference_V[:rows]
    finite = np.isfinite(error)
    window = finite & (reference_soc[:rows] >= SOC_WINDOW[0]) & (reference_soc[:rows] <= SOC_WINDOW[1])
    result = {"rmse_mV": _rmse_or_none(error[finite]), "rmse_soc_5_95_mV": _rmse_or_none(error[window]),
              "soc_mae_pct": None, "rows_scored": int(finite.sum()), "rows": int(len(reference_V))}
    if prediction.soc is not None:
        soc_error = prediction.soc[:rows] - reference_soc[:rows]
        result["soc_mae_pct"] = float(np.mean(np.abs(soc_error[np.isfinite(soc_error)])) * 100.0)
    return result


def _rmse_or_none(errors_V: np.ndarray) -> float | None:
    return rmse_mV(errors_V) if len(errors_V) else None


def score_all(predictions: Predictions, corpus: Corpus) -> dict[str, dict[int, dict]]:
    """model -> sample_id -> :func:`score_record` against the corpus's voltage and SOC columns."""
    return {model: {i: score_record(p, corpus.cells[i].columns[VOLTAGE], corpus.cells[i].columns[SOC])
                    for i, p in by_record.items()}
            for model, by_record in predictions.items()}


def mean_over(scores: dict[int, dict], ids: Sequence[int], key: str) -> float | None:
    """Mean of the figure ``key`` over the records ``ids`` that have it; None when none does."""
    values = [scores[i][key] for i in ids if i in scores and scores[i][key] is not None]
    return float(np.mean(values)) if values else None


def over_seeds(values: Sequence[float | None]) -> dict[str, float | None]:
    """Mean and (population) standard deviation over seeds of per-seed figures (None left out)."""
    kept = [v for v in values if v is not None]
    return {"mean": float(np.mean(kept)) if kept else None, "sd": float(np.std(kept)) if kept else None}


def summarise(per_seed: Sequence[dict[int, dict]], ids: Sequence[int]) -> dict[str, dict[str, float | None]]:
    """{key: {mean, sd}} over seeds of the record-averaged figure, for every key of SCORE_KEYS."""
    return {key: over_seeds([mean_over(scores, ids, key) for scores in per_seed]) for key in SCORE_KEYS}



def score_tables(per_seed: dict[str, Sequence[dict[int, dict]]], train_ids: Sequence[int],
                 test_ids: Sequence[int]) -> dict[str, dict[str, Any]]:
    """The scores of every model of ``per_seed`` (model -> per seed: sample_id -> :func:`score_record`)
    as JSON-ready tables, each model -> ...:

    summary: mean ("held_out", "train") and sd ("held_out_sd", "train_sd") over seeds of each
        SCORE_KEYS figure averaged over ``test_ids`` / ``train_ids``, and the number of "seeds";
    per_test: str(sample_id) -> figure -> {mean, sd} over the seeds that scored the record;
    per_test_per_seed: per seed, str(sample_id) -> its scores.
    """
    return {"summary": {model: _split_summary(scores, train_ids, test_ids) for model, scores in per_seed.items()},
            "per_test": {model: {str(i): {key: over_seeds([s[i][key] for s in scores if i in s]) for key in SCORE_KEYS}
                                 for i in [*train_ids, *test_ids]} for model, scores in per_seed.items()},
            "per_test_per_seed": {model: [{str(i): value for i, value in by_record.items()} for by_record in scores]
                                  for model, scores in per_seed.items()}}


def _split_summary(per_seed: Sequence[dict[int, dict]], train_ids: Sequence[int], test_ids: Sequence[int]) -> dict:
    held_out, train = summarise(per_seed, test_ids), summarise(per_seed, train_ids)
    return {"held_out": {key: value["mean"] for key, value in held_out.items()},
            "train": {key: value["mean"] for key, value in train.items()},
            "held_out_sd": {key: value["sd"] for key, value in held_out.items()},
            "train_sd": {key: value["sd"] for key, value in train.items()},
            "seeds": len(per_seed)}
