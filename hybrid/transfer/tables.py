"""The transfer study's tables: per held-out test and per fold kind, mean ± sd over seeds of RMSE
inside 5-95 % SOC [mV] and SOC MAE [%], the issue's targets, and the data-efficiency curve."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hybrid.data import Fold
from hybrid.evaluate import format_mean_sd, markdown_table, over_seeds

VARIANTS = {"scratch": None, "zero_shot": "none", "fine_tuned": "choose"}  # run -> finetune.recipe
# zero-shot with a characterisation context (StudySettings.context_window_s): the context model,
# pretrained on synthetic cells, reads the first part of each held-out test and predicts the rest;
# rows inside the context are scored for no model of that run, so its physics is scored again
CONTEXT_VARIANT, CONTEXT_MODEL = "zero_shot_context", "lstm_context"
CURVE = ("scratch", "fine_tuned")  # the data-efficiency curve's runs
Runs = dict[str, list[list[dict]]]  # run variant -> per seed, the held-out per_test rows
# table column -> (run, model in its per_test scores; None: the fine-tune config's first hybrid)
COLUMNS = {"physics_nominal": ("scratch", "physics_nominal"), "physics": ("scratch", "physics"),
           "ecm": ("scratch", "ecm"), "black_box": ("scratch", "black_box"), "hybrid_scratch": ("scratch", None),
           "zero_shot": ("zero_shot", None), "fine_tuned": ("fine_tuned", None),
           "physics_after_context": (CONTEXT_VARIANT, "physics"), "zero_shot_context": (CONTEXT_VARIANT, CONTEXT_MODEL)}
DETERMINISTIC = ("physics_nominal", "physics", "ecm", "physics_after_context")  # scored once, on seed 0's run
LABELS = {"physics_nominal": "physics nominal", "physics": "physics calibrated", "ecm": "ECM",
          "black_box": "black box, scratch", "hybrid_scratch": "hybrid, scratch", "zero_shot": "hybrid zero-shot",
          "fine_tuned": "hybrid fine-tuned", "physics_after_context": "physics calibrated, after the context",
          "zero_shot_context": "hybrid zero-shot with context"}


def present_columns(runs: Runs) -> list[str]:
    """The COLUMNS a fold's runs give: the context ones only with the context run."""
    return [column for column, (variant, _) in COLUMNS.items() if variant in runs]


def held_out_rows(fold: Fold, runs: Runs, hybrid: str) -> list[dict[str, Any]]:
    """One row per held-out test of ``fold``: per column, RMSE inside 5-95 % SOC [mV] and SOC MAE
    [%], each {mean, sd} over seeds, and the seed count."""
    by_file = {variant: [{row["file"]: row for row in rows} for rows in per_seed] for variant, per_seed in runs.items()}
    rows = []
    for test in runs["scratch"][0]:
        row = {"fold": fold.name, "kind": fold.kind, "file": test["file"],
               "ambient_degC": test["ambient_temperature_degC"]}
        for column in present_columns(runs):
            variant, model = COLUMNS[column]
            per_seed = by_file[variant][:1] if column in DETERMINISTIC else by_file[variant]
            scores = [seed[test["file"]]["scores"].get(model or hybrid) for seed in per_seed]
            scores = [score for score in scores if score is not None]
            row[column] = {"seeds": len(scores), **{key: over_seeds([score[key] for score in scores])
                                                    for key in ("rmse_soc_5_95_mV", "soc_mae_pct")}}
        rows.append(row)
    return rows


def curve_rows(fold: Fold, runs: Runs, curve: dict[int, Runs], order: tuple[str, ...],
               hybrid: str) -> list[dict[str, Any]]:
    """The data-efficiency curve of ``fold``, a row per count of training tests (the last: the
    fold's own runs): the test added, and per run the held-out mean RMSE inside 5-95 % SOC [mV],
    {mean, sd} over seeds."""
    def held_out_mean(per_test: list[dict]) -> float | None:
        found = [row["scores"][hybrid]["rmse_soc_5_95_mV"] for row in per_test if hybrid in row["scores"]]
        found = [value for value in found if value is not None]
        return sum(found) / len(found) if found else None

    points = {**curve, len(order): {variant: runs[variant] for variant in CURVE}}
    return [{"fold": fold.name, "kind": fold.kind, "train_tests": k, "added": order[k - 1],
             **{variant: over_seeds([held_out_mean(seed) for seed in points[k][variant]]) for variant in CURVE}}
            for k in sorted(points)]


def curve_target(curve: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Pretraining never hurts: fine-tuned at or below scratch (seed means) at every point."""
    judged = [row for row in curve if None not in (row["scratch"]["mean"], row["fine_tuned"]["mean"])]
    if not judged:
        return None
    below = [row["fine_tuned"]["mean"] <= row["scratch"]["mean"] for row in judged]
    return {"points": len(judged), "fine_tuned_at_or_below_scratch": sum(below), "met": all(below)}


def summarise_rows(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per column the mean (and worst) over the held-out tests of the seed-mean figures, and the
    issue's targets."""
    def values(column: str, key: str) -> list[float]:
        return [row[column][key]["mean"] for row in rows if row[column][key]["mean"] is not None]

    def mean(column: str, key: str = "rmse_soc_5_95_mV") -> float | None:
        found = values(column, key)
        return sum(found) / len(found) if found else None

    present = [column for column in COLUMNS if all(column in row for row in rows)]
    columns = {column: {"rmse_soc_5_95_mV": mean(column), "soc_mae_pct": mean(column, "soc_mae_pct"),
                        "worst_rmse_soc_5_95_mV": max(values(column, "rmse_soc_5_95_mV"), default=None)}
               for column in present}
    ratio = (lambda a, b: a / b if a is not None and b else None)
    beaten = [row["fine_tuned"]["rmse_soc_5_95_mV"]["mean"] < row["ecm"]["rmse_soc_5_95_mV"]["mean"] for row in rows
              if None not in (row["fine_tuned"]["rmse_soc_5_95_mV"]["mean"], row["ecm"]["rmse_soc_5_95_mV"]["mean"])]
    targets = [("fine-tuned / ECM, mean RMSE 5–95 % SOC", ratio(mean("fine_tuned"), mean("ecm")), 0.6),
               ("fine-tuned below ECM: share of tests", sum(beaten) / len(beaten) if beaten else None, None),
               ("zero-shot / calibrated physics, mean RMSE 5–95 % SOC", ratio(mean("zero_shot"), mean("physics")),
                0.5),
               ("fine-tuned SOC MAE [%]", mean("fine_tuned", "soc_mae_pct"), 0.3)]
    if "zero_shot_context" in present:  # on the same rows: those after each test's context
        targets.insert(3, ("zero-shot with context / calibrated physics, after the context",
                           ratio(mean("zero_shot_context"), mean("physics_after_context")), 0.5))
    return {"tests": len(rows), "columns": columns, "targets": [
        {"target": name, "value": value, "met": None if value is None else value >= 1.0 if limit is None
         else value <= limit} for name, value, limit in targets]}


def cell(figures: dict[str, Any]) -> str:
    rmse, soc = figures["rmse_soc_5_95_mV"], figures["soc_mae_pct"]
    return (f"{format_mean_sd(rmse['mean'], rmse['sd'], show_sd=figures['seeds'] > 1)} / "
            f"{'–' if soc['mean'] is None else format(soc['mean'], '.2f')}")


def on_machine(machine: dict[str, Any] | None) -> str:
    """The results' sentence naming the machine: its hybrid figures depend on torch's CPU kernels
    (:func:`hybrid.transfer.study.machine`); empty for figures that do not record it."""
    if not machine:
        return ""
    return (f" Machine: {machine['cpu']}, {machine['cores']} cores, torch {machine['torch']} "
            f"(ATen {machine['torch_cpu_capability']}, oneDNN ISA {machine.get('onednn_max_cpu_isa', 'default')}).")


def markdown(figures: dict[str, Any]) -> str:
    """The per-test table and, per kind of fold, the summary and the targets."""
    settings = figures["settings"]
    columns = [column for column in COLUMNS if all(column in row for row in figures["tests"])]
    context = (f" Context: the first {settings['context_window_s']:g} s of each test (at most a quarter of it)."
               if settings.get("context_window_s") else "")
    blocks = [(f"{figures['dataset']}: held-out tests, RMSE inside 5–95 % SOC [mV] (mean ± sd over "
               f"{settings['seeds']} seed(s)) / SOC MAE [%]; {settings['resample_period_s']:g} s grid.{context}"
               f"{on_machine(figures.get('machine'))}"),
              markdown_table(["fold", "test", "T [°C]", *(LABELS[column] for column in columns)],
                             [[row["fold"], Path(row["file"]).name.split(".")[0], f"{row['ambient_degC']:g}",
                               *(cell(row[column]) for column in columns)] for row in figures["tests"]])]
    for kind, summary in figures["summary"].items():
        blocks += [f"Summary over the {summary['tests']} held-out test(s) of the {kind} folds:",
                   markdown_table(["model", "mean RMSE 5–95 % SOC [mV]", "worst test [mV]", "mean SOC MAE [%]"],
                                  [[LABELS[column], *(float("nan") if v is None else v for v in (
                                      block["rmse_soc_5_95_mV"], block["worst_rmse_soc_5_95_mV"])),
                                    "–" if block["soc_mae_pct"] is None else f"{block['soc_mae_pct']:.2f}"]
                                   for column, block in summary["columns"].items()]),
                   markdown_table(["target", "value", "met"],
                                  [[target["target"], "–" if target["value"] is None else f"{target['value']:.2f}",
                                    {True: "yes", False: "no", None: "n/a"}[target["met"]]]
                                   for target in summary["targets"]])]
    if figures["curve"]:
        target = figures["curve_target"]
        blocks += [(f"Data-efficiency curve: held-out mean RMSE inside 5–95 % SOC [mV] of the hybrid trained on the "
                    f"first k training tests (added in the order of hybrid.data.folds); fine-tuned at or below "
                    f"scratch at {target['fine_tuned_at_or_below_scratch']} of {target['points']} points."),
                   markdown_table(["fold", "k", "test added", "hybrid, scratch", "hybrid fine-tuned"],
                                  [[row["fold"], row["train_tests"], Path(row["added"]).name.split(".")[0],
                                    *(format_mean_sd(row[v]["mean"], row[v]["sd"], show_sd=settings["seeds"] > 1)
                                      for v in CURVE)] for row in figures["curve"]])]
    return "\n\n".join(blocks)

