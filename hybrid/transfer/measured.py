"""Training on measured records with the choices of the validation records: the black box, the
hybrid from scratch, the pretrained hybrid as is and fine-tuned; their scores per seed; and the
data-efficiency curve (held-out error against the number of measured training records used) and
its plot."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from hybrid.data import Corpus, SplitAssignment, fit_normalisation
from hybrid.evaluate import Predictions, curve_plot, predict_records, score_all, summarise
from hybrid.train import BLACK_BOX, TrainedModel, TrainingSet, load_trained
from hybrid.transfer.synthetic import PRETRAINED
from hybrid.transfer.runs import (FINETUNED, LAST, SCRATCH, TRAINED, ZERO_SHOT, TransferOptions, record_split,
                                  train_records)
from hybrid.transfer.selection import Selection

Scores = dict[str, list[dict[int, dict]]]  # model -> per seed: sample_id -> hybrid.evaluate.score_record


def finetune(corpus: Corpus, assignment: SplitAssignment, pretrained: Path, selection: Selection,
             options: TransferOptions, seed: int, run_dir: Path) -> TrainedModel:
    """The pretrained hybrid (checkpoint ``pretrained``) fine-tuned on ``assignment``'s training
    records with the chosen recipe and epochs, in the pretrained normalisation (so epoch 0 is the
    pretrained model); without a chosen recipe, the pretrained model as is."""
    epochs = selection.epochs[FINETUNED]
    if selection.recipe is None or epochs == 0:
        return load_trained(pretrained, FINETUNED)
    data = TrainingSet(corpus, assignment, load_trained(pretrained, PRETRAINED).normalisation)
    return train_records(FINETUNED, data, options.hybrid_model,
                         options.train_config(epochs, selection.recipe.learning_rate, seed), run_dir,
                         init=pretrained, recipe=selection.recipe, keep=LAST)


def train_scratch(name: str, data: TrainingSet, model: dict[str, Any], selection: Selection,
                  options: TransferOptions, seed: int, run_dir: Path) -> TrainedModel:
    """``model`` trained from its seeded start on ``data``'s training records for the epochs
    chosen for ``name`` (BLACK_BOX or SCRATCH), keeping the final weights."""
    return train_records(name, data, model, options.train_config(selection.epochs[name], options.learning_rate, seed),
                         run_dir, keep=LAST)


def train_measured(corpus: Corpus, assignment: SplitAssignment, pretrained: Path, selection: Selection,
                   options: TransferOptions, seed: int, run_dir: Path) -> dict[str, TrainedModel]:
    """Model name -> model: the black box and the scratch hybrid (:func:`train_scratch`) on
    ``assignment``'s training records, the pretrained hybrid as is (ZERO_SHOT) and fine-tuned
    (:func:`finetune`); runs in run_dir/<model>."""
    hybrid = TrainingSet(corpus, assignment, fit_normalisation(corpus, assignment, options.features, "hybrid"))
    black_box = TrainingSet(corpus, assignment, fit_normalisation(corpus, assignment, options.features, BLACK_BOX))
    zero_shot = load_trained(pretrained, ZERO_SHOT)
    return {BLACK_BOX: train_scratch(BLACK_BOX, black_box, options.black_box_model, selection, options, seed,
                                     run_dir / BLACK_BOX),
            SCRATCH: train_scratch(SCRATCH, hybrid, options.hybrid_model, selection, options, seed, run_dir / SCRATCH),
            ZERO_SHOT: zero_shot,
            FINETUNED: finetune(corpus, assignment, pretrained, selection, options, seed, run_dir / FINETUNED)}


def measured_runs(corpus: Corpus, assignment: SplitAssignment, pretrained: dict[int, Path], selection: Selection,
                  options: TransferOptions, runs: Path) -> tuple[Scores, Predictions]:
    """:func:`train_measured` for every seed (runs/seed<S>/all), each model scored on every record
    of ``corpus``; returns (model -> per-seed scores, the first seed's predictions)."""
    per_seed: Scores = {model: [] for model in (*TRAINED, ZERO_SHOT)}
    first: Predictions = {}
    for seed in options.seeds:
        trained = train_measured(corpus, assignment, pretrained[seed], selection, options, seed,
                                 runs / f"seed{seed}" / "all")
        predictions = {name: predict_records(model, corpus, corpus.cells) for name, model in trained.items()}
        first = first or predictions
        for name, by_record in score_all(predictions, corpus).items():
            per_seed[name].append(by_record)
    return per_seed, first


def data_efficiency(corpus: Corpus, order: Sequence[int], test_ids: Sequence[int], pretrained: dict[int, Path],
                    selection: Selection, options: TransferOptions, runs: Path, all_records: Scores) -> list[dict]:
    """The scratch and fine-tuned hybrids trained on the first n records of ``order``, n = 1 ..
    all, with the chosen epochs and recipe (runs/seed<S>/first_<n>); ``all_records`` holds the
    per-seed scores of the run on every record (n = all, from :func:`measured_runs`). Returns one
    point per n: {"tests": n, "records": the ids used, model: {score: {mean, sd}} over seeds of the
    mean over ``test_ids``}."""
    names = (SCRATCH, FINETUNED)
    points = []
    for count in range(1, len(order) + 1):
        subset = list(order[:count])
        seed_scores: Scores = {name: [] for name in names}
        for k, seed in enumerate(options.seeds):
            if count == len(order):  # the run on every record
                for name in names:
                    seed_scores[name].append(all_records[name][k])
                continue
            assignment = record_split(corpus, subset, test_ids)
            run_dir = runs / f"seed{seed}" / f"first_{count}"
            hybrid = TrainingSet(corpus, assignment, fit_normalisation(corpus, assignment, options.features, "hybrid"))
            models = {SCRATCH: train_scratch(SCRATCH, hybrid, options.hybrid_model, selection, options, seed,
                                             run_dir / SCRATCH),
                      FINETUNED: finetune(corpus, assignment, pretrained[seed], selection, options, seed,
                                          run_dir / FINETUNED)}
            predictions = {name: predict_records(model, corpus, corpus.cells) for name, model in models.items()}
            for name, by_record in score_all(predictions, corpus).items():
                seed_scores[name].append(by_record)
        points.append({"tests": count, "records": subset,
                       **{name: summarise(seed_scores[name], test_ids) for name in names}})
    return points


def plot_data_efficiency(points: list[dict], references: dict[str, float], path: Path) -> Path:
    """The held-out RMSE inside 5-95 % SOC [mV] (mean, sd error bars) of the scratch and fine-tuned
    hybrids against the records used, from :func:`data_efficiency`'s ``points``; ``references``
    (label -> value [mV]) as horizontal lines. Writes the PNG ``path`` and returns it."""
    series = {label: ([p[name]["rmse_soc_5_95_mV"]["mean"] for p in points],
                      [p[name]["rmse_soc_5_95_mV"]["sd"] for p in points])
              for name, label in ((SCRATCH, "from scratch"), (FINETUNED, "pretrained + fine-tuned"))}
    return curve_plot([p["tests"] for p in points], series, references,
                      ("measured training tests used", "held-out RMSE, 5–95 % SOC [mV]"), path)
