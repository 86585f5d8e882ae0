"""Model selection on validation records, never on held-out ones: each trained model's epoch
budget and the fine-tuning recipe (or none) with the lowest validation error, mean over seeds."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

from hybrid.data import Corpus, fit_normalisation
from hybrid.evaluate import format_value, markdown_table, mean_over, over_seeds, predict_records, score_all
from hybrid.train import BLACK_BOX, FineTune, TrainedModel, TrainingSet, load_trained
from hybrid.transfer.runs import FINETUNED, LAST, SCRATCH, TRAINED, TransferOptions, record_split, train_records
from sim.errors import ConfigError

log = logging.getLogger(__name__)

SELECTION_SCORE = "rmse_soc_5_95_mV"  # the tables' figure: voltage RMSE inside 5-95 % SOC
NO_FINETUNING = "no fine-tuning"  # the candidate that keeps the pretrained weights (0 epochs)
FROM_SCRATCH = "from scratch"  # the recipe label of the black box and the scratch hybrid


@dataclass
class Selection:
    """What the validation records chose: the fine-tuning recipe (None: keep the pretrained
    weights), each trained model's epoch budget (model name -> epochs; 0 for the fine-tuned
    hybrid without fine-tuning), and every candidate's {model, recipe, epochs, mean, sd} of the
    validation error [mV] over seeds."""

    recipe: FineTune | None
    epochs: dict[str, int]
    candidates: list[dict[str, Any]]

    def summary(self) -> dict[str, Any]:
        """The choice as plain JSON: recipe (its fields, or just the name "no fine-tuning"), epochs, candidates."""
        return {"recipe": asdict(self.recipe) if self.recipe else {"name": NO_FINETUNING},
                "epochs": self.epochs, "candidates": self.candidates}


def candidates_table(candidates: list[dict[str, Any]]) -> str:
    """Markdown of :attr:`Selection.candidates`: each candidate's validation error [mV], mean ± sd
    over seeds, sorted by model, recipe and epochs."""
    return markdown_table(["model", "recipe", "epochs", "validation RMSE 5–95 % SOC [mV]"],
                          [[c["model"], c["recipe"], c["epochs"],
                            f"{format_value(c['mean'])} ± {format_value(c['sd'])}"]
                           for c in sorted(candidates, key=lambda c: (c["model"], c["recipe"], c["epochs"]))])


def epoch_budgets(epochs: int) -> list[int]:
    """The epoch budgets tried on validation: a quarter, half and all of ``epochs`` (at least 1)."""
    return sorted({max(1, epochs // 4), max(1, epochs // 2), epochs})


def validation_error(model: TrainedModel, corpus: Corpus, val_ids: Sequence[int]) -> float | None:
    """Mean over the records ``val_ids`` of ``model``'s SELECTION_SCORE [mV] (None: no SOC rows in the window)."""
    return mean_over(score_all({"m": predict_records(model, corpus, val_ids)}, corpus)["m"], val_ids, SELECTION_SCORE)


def select_by_validation(corpus: Corpus, fit_ids: Sequence[int], val_ids: Sequence[int], pretrained: dict[int, Path],
                         options: TransferOptions, runs: Path) -> Selection:
    """For every seed of ``options`` (``pretrained``: seed -> its pretrained checkpoint), train on
    the records ``fit_ids`` and score the final weights on ``val_ids`` only (:func:`validation_error`):
    the black box and the scratch hybrid for every budget of :func:`epoch_budgets`, the pretrained
    hybrid as is and fine-tuned by every recipe of ``options.candidates`` for every budget. Each
    model gets the candidate with the lowest mean over seeds. Runs go to runs/validation/."""
    if set(fit_ids) & set(val_ids) or not fit_ids or not val_ids:
        raise ConfigError(f"fit records {list(fit_ids)} and validation records {list(val_ids)}: allowed: "
                          "two disjoint, non-empty sets")
    assignment = record_split(corpus, fit_ids, [], val_ids=val_ids)
    norms = {family: fit_normalisation(corpus, assignment, options.features, family)
             for family in ("hybrid", BLACK_BOX)}
    models = {BLACK_BOX: options.black_box_model, SCRATCH: options.hybrid_model}
    errors: dict[tuple[str, str, int], list[float | None]] = {}

    def validate(key: tuple[str, str, int], model: TrainedModel) -> None:
        errors.setdefault(key, []).append(validation_error(model, corpus, val_ids))

    for seed in options.seeds:
        pretrained_model = load_trained(pretrained[seed], "pretrained")
        validate((FINETUNED, NO_FINETUNING, 0), pretrained_model)
        for epochs in epoch_budgets(options.epochs):
            folder = runs / "validation" / f"seed{seed}" / f"{epochs}_epochs"
            for name, model in models.items():
                data = TrainingSet(corpus, assignment, norms["hybrid" if name == SCRATCH else BLACK_BOX])
                validate((name, FROM_SCRATCH, epochs), train_records(
                    name, data, model, options.train_config(epochs, options.learning_rate, seed), folder / name,
                    keep=LAST))
            for recipe in options.candidates:
                data = TrainingSet(corpus, assignment, pretrained_model.normalisation)
                validate((FINETUNED, recipe.name, epochs), train_records(
                    recipe.name, data, options.hybrid_model, options.train_config(epochs, recipe.learning_rate, seed),
                    folder / recipe.name.replace(" ", "_").replace(",", ""), init=pretrained[seed], recipe=recipe,
                    keep=LAST))
    return choose(errors, options.candidates)


def choose(errors: dict[tuple[str, str, int], list[float | None]], recipes: Sequence[FineTune]) -> Selection:
    """The :class:`Selection` of validation ``errors`` ((model, recipe name, epochs) -> error per
    seed): for each model of TRAINED the candidate with the lowest mean over seeds (the first on
    a tie); ``recipes`` name the fine-tuning recipes."""
    candidates = [{"model": model, "recipe": recipe, "epochs": epochs, **over_seeds(values)}
                  for (model, recipe, epochs), values in errors.items()]
    chosen = {model: min((c for c in candidates if c["model"] == model), key=lambda c: c["mean"]) for model in TRAINED}
    log.info("validation chose %s", {model: (c["recipe"], c["epochs"]) for model, c in chosen.items()})
    by_name = {recipe.name: recipe for recipe in recipes}
    return Selection(by_name.get(chosen[FINETUNED]["recipe"]), {model: c["epochs"] for model, c in chosen.items()},
                     candidates)
