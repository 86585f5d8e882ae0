"""Sim-to-real transfer over the folds of a measured data set: physics, ECM, black box and hybrids
(from scratch, zero-shot from synthetic pretraining, fine-tuned) on every held-out test.

Usage:
    python experiments/transfer_study.py --dataset a123|samsung30q --out DIR [--data-dir DIR] [--work DIR]
        [--folds loto|fixed|all|loco] [--held-out VALUE ...] [--validation VALUE ...] [--seeds N]
        [--resample-period-s S] [--workers N] [--curve] [--quick]

    --dataset     a123: the A123 dynamic tests, folds by chamber temperature (values in degC);
                  samsung30q: the Samsung 30Q HPPC and rate tests, folds by cell (values: cell ids)
    --data-dir    a folder laid out like ../shared/data/real/ (default: $HYBAT_REAL_DATA, else that)
    --folds       a123: loto (each temperature held out in turn), fixed (held out -15 and 15 degC,
                  validation 5 degC) or all (both; default); samsung30q: loco (each cell in turn)
    --held-out    instead, one fold holding out these temperatures / cells; --validation: its
                  validation ones (default: the rule below)
    --seeds       seeds 0 .. N-1 for every trained model (default 3); tables: mean ± sd over them
    --work        pairings, synthetic corpora and runs (default OUT/work); all of it is resumed
    --workers     generate the synthetic corpora on a local Ray runtime with N CPUs (default: serial)
    --curve       also the data-efficiency curve: per fold, the hybrid from scratch and fine-tuned
                  trained on the first 1 ... N-1 of its N training tests (same validation, same
                  pretrained run: only the measured voltages are cut), next to the full runs
    --quick       smoke run: 60 s grid, 2 epochs, 4 synthetic cells, 1 seed, the first fold

The chain per fold (the library and CLI steps of the README's sim-to-real workflow): the tests are
paired with the calibrated physics model (hybat pair-measured; every test of the data set, found
by the configs' globs, so new temperatures and cells form new folds unchanged); a synthetic corpus
replays the fold's training and validation tests only (hybat corpus with measured.replay); per
seed, the models are pretrained on it (hybat train) and trained on the measured tests three ways,
from scratch, zero-shot (finetune.recipe none) and fine-tuned (choose, on validation), each scored
per test (hybat evaluate); the ECM is fitted on the training tests (evaluation.ecm).

Nothing is chosen on a held-out test: each fold's validation group and calibration test follow
the rule of hybrid.data.folds (validation: a training group of the held-out tests' kind, not the
calibration test's, nearest the held-out one: for temperatures an inner one, for cells the next in
order; calibration: the pairing config's test, or the training test standing in for it when it is
held out). Every figure is a mean ± sd over seeds (physics and ECM are deterministic).

Samsung: the HPPC and rate tests are paired together, calibrated as samsung30q_hppc.yaml says, so
a held-out rate cell is a new cell to the same physics. The curve's order: the calibration test
first, then each time the training test farthest in temperature from those taken.
Writes OUT/results.md and OUT/figures.json; prints the tables and one JSON line.
"""

from __future__ import annotations

import argparse
import glob
import json
import logging
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from hybrid.data import Fold, fold_of, group_label, leave_one_out, training_order
from hybrid.evaluate import evaluate_run, format_mean_sd, json_safe, markdown_table, over_seeds
from hybrid.train import RUN_CONFIG, SUMMARY, TrainRunConfig, read_run_file, torch_threads
from hybrid.train.run import METRICS, train_from_config
from sim.config import apply_overrides, read_yaml, validate
from sim.corpus import CorpusSpec, generate_corpus
from sim.errors import ConfigError, HybatError
from sim.measured import REAL_DATA_VARIABLE, PairingSpec, default_real_data_dir, pair_measured
from sim.measured.spec import resolve_data_dir

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
TEMPERATURE = "ambient_temperature_K"


@dataclass(frozen=True)
class Dataset:
    """A data set's defaults; everything else (temperatures, cells, tests) comes from the data."""

    pairings: tuple[str, ...]  # configs/measured/*.yaml: the first's cell and calibration, every one's tests
    corpus: str  # configs/corpus: the synthetic population
    pretrain: str  # configs/train: on the synthetic corpus
    finetune: str  # configs/train: on the measured tests (zero-shot, fine-tuned, from scratch)
    group_by: str  # ambient_temperature_K (folds by temperature) or a manifest.csv column (by cell)
    resample_period_s: float
    fold_kinds: tuple[str, ...]  # --folds choices, the default first; loto/loco: leave one out
    fixed: tuple[tuple[float, ...], tuple[float, ...]] | None = None  # (held out, validation) in degC


DATASETS = {
    "a123": Dataset(("a123_dynamic.yaml",), "a123_randomised.yaml", "a123_pretrain.yaml", "a123_finetune.yaml",
                    TEMPERATURE, 10.0, ("all", "loto", "fixed"), fixed=((-15.0, 15.0), (5.0,))),
    # 2 s: the HPPC pulses last 10-20 s, which a 10 s grid would smear into one or two samples
    "samsung30q": Dataset(("samsung30q_hppc.yaml", "samsung30q_rate.yaml"), "samsung30q_randomised.yaml",
                          "a123_pretrain.yaml", "samsung30q_finetune.yaml", "cell_id", 2.0, ("loco",)),
}
QUICK = {"resample_period_s": 60.0, "epochs": 2, "synthetic_cells": 4, "seeds": 1}
VARIANTS = {"scratch": None, "zero_shot": "none", "fine_tuned": "choose"}  # run -> finetune.recipe
CURVE = ("scratch", "fine_tuned")  # the data-efficiency curve's runs
# table column -> (run, model in its per_test scores; None: the fine-tune config's first hybrid)
COLUMNS = {"physics_nominal": ("scratch", "physics_nominal"), "physics": ("scratch", "physics"),
           "ecm": ("scratch", "ecm"), "black_box": ("scratch", "black_box"), "hybrid_scratch": ("scratch", None),
           "zero_shot": ("zero_shot", None), "fine_tuned": ("fine_tuned", None)}
DETERMINISTIC = ("physics_nominal", "physics", "ecm")  # scored once, on seed 0's run
LABELS = {"physics_nominal": "physics nominal", "physics": "physics calibrated", "ecm": "ECM",
          "black_box": "black box, scratch", "hybrid_scratch": "hybrid, scratch", "zero_shot": "hybrid zero-shot",
          "fine_tuned": "hybrid fine-tuned"}


# --- the chain -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    """What the chain runs with: the data set's defaults, --quick's and the options given."""

    dataset: Dataset
    resample_period_s: float
    seeds: int = 3
    epochs: int | None = None  # None: the configs'
    synthetic_cells: int | None = None
    workers: int | None = None
    curve: bool = False
    quick: bool = False


def pairing_spec(dataset: Dataset, resample_period_s: float, calibration_file: str | None = None) -> PairingSpec:
    """The first pairing config with every config's tests, on the resampled grid, calibrated on
    ``calibration_file`` (None: the config's)."""
    first, *others = [read_yaml(CONFIGS / "measured" / name) for name in dataset.pairings]
    for name, other in zip(dataset.pairings[1:], others):
        if other.get("data_dir") != first.get("data_dir"):
            raise ConfigError(f"{name}: data_dir {other.get('data_dir')!r}; allowed: {dataset.pairings[0]}'s")
    data = {**first, "tests": [group for config in (first, *others) for group in config["tests"]],
            "resample_period_s": resample_period_s}
    if calibration_file is not None:
        data["calibration"] = {**data["calibration"], "file": calibration_file}
    return validate(PairingSpec, data, dataset.pairings[0])


def paired(settings: Settings, work: Path, calibration_file: str | None = None) -> Path:
    """The data set paired (or finished) under ``work``, one corpus per grid and calibration test."""
    spec = pairing_spec(settings.dataset, settings.resample_period_s, calibration_file)
    out = work / "paired" / f"{settings.resample_period_s:g}s_{Path(spec.calibration.file).name.split('.')[0]}"
    manifest = read_run_file(out / "manifest.json") if (out / "manifest.json").is_file() else {}
    if (manifest.get("status"), manifest.get("fingerprint")) != ("complete", spec.fingerprint()):
        pair_measured(spec, out, resume=True, progress=False)
    return out


def samples_with_groups(corpus: Path, dataset: Dataset) -> pd.DataFrame:
    """The paired corpus's samples table, with the manifest.csv column that groups by cell."""
    samples = pd.read_parquet(corpus / "samples.parquet")
    if dataset.group_by == TEMPERATURE:
        return samples
    data_dir = resolve_data_dir(read_yaml(CONFIGS / "measured" / dataset.pairings[0])["data_dir"])
    manifest = pd.read_csv(data_dir / "manifest.csv")
    if not {"file", dataset.group_by} <= set(manifest.columns):
        raise ConfigError(f"{data_dir / 'manifest.csv'}: needs columns file and {dataset.group_by}")
    return samples.merge(manifest[["file", dataset.group_by]], on="file", how="left")


def synthetic(settings: Settings, fold: Fold, pairing: Path, work: Path) -> Path:
    """The synthetic population around ``pairing`` replaying the fold's training and validation tests."""
    spec = read_yaml(CONFIGS / "corpus" / settings.dataset.corpus)
    spec["measured"] = {**spec["measured"], "corpus": str(pairing),
                        "replay": [glob.escape(f) for f in (*fold.train_files, *fold.val_files)]}
    spec["cells"] = settings.synthetic_cells or spec["cells"]
    held = "+".join(group_label(key) for key in fold.held_out)
    out = work / "synthetic" / pairing.name / f"without_{held}_cells{spec['cells']}"
    generate_corpus(validate(CorpusSpec, spec, settings.dataset.corpus), out, resume=True, progress=False,
                    backend="serial" if settings.workers is None else "ray", workers=settings.workers)
    return out


def run_config(settings: Settings, name: str, overrides: list[str]) -> TrainRunConfig:
    """configs/train/``name`` with ``overrides`` (KEY.PATH=VALUE) and --quick's."""
    if settings.epochs is not None:
        overrides = [*overrides, f"train.epochs={settings.epochs}"]
    if settings.quick:
        overrides = [*overrides, "evaluation.plots=false"]
    return validate(TrainRunConfig, apply_overrides(read_yaml(CONFIGS / "train" / name), overrides), name)


def trained(config: TrainRunConfig, corpus: Path, run_dir: Path, init: Path | None = None) -> Path:
    """``run_dir`` holding the run of ``config`` (trained now unless it finished before with the same config)."""
    finished = (run_dir / SUMMARY).is_file() and (
        read_run_file(run_dir / RUN_CONFIG) == json.loads(json.dumps(config.model_dump(mode="json"))))
    if not finished:  # cut short or made with another config: train_from_config needs a new directory
        shutil.rmtree(run_dir, ignore_errors=True)
        train_from_config(config, corpus, run_dir, init=init)
    return run_dir


def evaluated(run_dir: Path, corpus: Path) -> list[dict[str, Any]]:
    """The run's per_test rows of its held-out tests (hybat evaluate, unless it ran before)."""
    if not (run_dir / METRICS).is_file():
        evaluate_run(run_dir, corpus)
    return [row for row in read_run_file(run_dir / METRICS)["per_test"] if row["split"] == "test"]


def measured_run(settings: Settings, fold: Fold, pairing: Path, run_dir: Path, seed: int, recipe: str | None,
                 pretrain: Path, train_files: tuple[str, ...] | None = None) -> list[dict[str, Any]]:
    """One run on the measured tests (from scratch when ``recipe`` is None, else from ``pretrain``),
    trained on ``train_files`` (None: all the fold's), and its held-out per_test rows."""
    by_column = {"column": "file", "test": [glob.escape(f) for f in fold.test_files],
                 "val": [glob.escape(f) for f in fold.val_files]}
    if train_files is not None:
        by_column["train"] = [glob.escape(f) for f in train_files]
    overrides = [f"splits.by_column={json.dumps(by_column)}", f"train.seed={seed}",
                 f"name={json.dumps(fold.name + '_' + run_dir.name)}"]
    overrides += [] if recipe is None else [f"finetune.recipe={recipe}"]
    first_scratch = recipe is None and seed == 0 and train_files is None
    overrides += [] if first_scratch else ["evaluation.ecm=null"]  # the ECM is fitted once
    run = trained(run_config(settings, settings.dataset.finetune, overrides), pairing, run_dir,
                  None if recipe is None else pretrain)
    return evaluated(run, pairing)


Runs = dict[str, list[list[dict]]]  # run variant -> per seed, the held-out per_test rows


def run_fold(settings: Settings, fold: Fold, work: Path) -> tuple[Runs, dict[int, Runs], tuple[str, ...]]:
    """Every run of ``fold``; with --curve, per count k of training tests (1 ... N-1) the scratch
    and fine-tuned runs on the first k of them; and the training tests in the order they are added."""
    pairing = paired(settings, work, fold.calibration_file)
    corpus = synthetic(settings, fold, pairing, work)
    order = training_order(pd.read_parquet(pairing / "samples.parquet"), fold)
    counts = range(1, len(order)) if settings.curve else range(0)
    runs = work / "runs" / pairing.name / corpus.name / fold.name  # a changed grid or calibration: new runs
    rows: Runs = {variant: [] for variant in VARIANTS}
    curve: dict[int, Runs] = {k: {variant: [] for variant in CURVE} for k in counts}
    for seed in range(settings.seeds):
        pretrain = trained(run_config(settings, settings.dataset.pretrain, [f"train.seed={seed}"]), corpus,
                           work / "pretrain" / pairing.name / corpus.name / f"seed{seed}")
        for variant, recipe in VARIANTS.items():
            rows[variant].append(measured_run(settings, fold, pairing, runs / f"seed{seed}" / variant, seed, recipe,
                                              pretrain))
        for k in counts:
            for variant in CURVE:
                curve[k][variant].append(measured_run(settings, fold, pairing, runs / f"seed{seed}" /
                                                      f"first{k}_{variant}", seed, VARIANTS[variant], pretrain,
                                                      order[:k]))
    return rows, curve, order


def plan(samples: pd.DataFrame, settings: Settings, folds: str, held_out: list[str],
         validation: list[str]) -> list[Fold]:
    """The folds to run: --held-out's one, else those of --folds (--quick: the first)."""
    dataset = settings.dataset
    options = {"group_by": dataset.group_by,
               "calibration_file": pairing_spec(dataset, settings.resample_period_s).calibration.file}
    if held_out:
        return [fold_of(samples, **options, held_out=held_out, validation=validation)]
    planned = leave_one_out(samples, **options) if folds in ("all", "loto", "loco") else []
    if folds in ("all", "fixed"):
        planned.append(fold_of(samples, **options, held_out=dataset.fixed[0], validation=dataset.fixed[1],
                               kind="fixed"))
    return planned[:1] if settings.quick else planned


# --- results ---------------------------------------------------------------------------------


def test_rows(fold: Fold, runs: dict[str, list[list[dict]]], hybrid: str) -> list[dict[str, Any]]:
    """One row per held-out test of ``fold``: per column, RMSE inside 5-95 % SOC [mV] and SOC MAE
    [%], each {mean, sd} over seeds, and the seed count."""
    by_file = {variant: [{row["file"]: row for row in rows} for rows in per_seed] for variant, per_seed in runs.items()}
    rows = []
    for test in runs["scratch"][0]:
        row = {"fold": fold.name, "kind": fold.kind, "file": test["file"],
               "ambient_degC": test["ambient_temperature_degC"]}
        for column, (variant, model) in COLUMNS.items():
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

    columns = {column: {"rmse_soc_5_95_mV": mean(column), "soc_mae_pct": mean(column, "soc_mae_pct"),
                        "worst_rmse_soc_5_95_mV": max(values(column, "rmse_soc_5_95_mV"), default=None)}
               for column in COLUMNS}
    ratio = (lambda a, b: a / b if a is not None and b else None)
    beaten = [row["fine_tuned"]["rmse_soc_5_95_mV"]["mean"] < row["ecm"]["rmse_soc_5_95_mV"]["mean"] for row in rows
              if None not in (row["fine_tuned"]["rmse_soc_5_95_mV"]["mean"], row["ecm"]["rmse_soc_5_95_mV"]["mean"])]
    targets = [("fine-tuned / ECM, mean RMSE 5–95 % SOC", ratio(mean("fine_tuned"), mean("ecm")), 0.6),
               ("fine-tuned below ECM: share of tests", sum(beaten) / len(beaten) if beaten else None, None),
               ("zero-shot / calibrated physics, mean RMSE 5–95 % SOC", ratio(mean("zero_shot"), mean("physics")),
                0.5),
               ("fine-tuned SOC MAE [%]", mean("fine_tuned", "soc_mae_pct"), 0.3)]
    return {"tests": len(rows), "columns": columns, "targets": [
        {"target": name, "value": value, "met": None if value is None else value >= 1.0 if limit is None
         else value <= limit} for name, value, limit in targets]}


def cell(figures: dict[str, Any]) -> str:
    rmse, soc = figures["rmse_soc_5_95_mV"], figures["soc_mae_pct"]
    return (f"{format_mean_sd(rmse['mean'], rmse['sd'], show_sd=figures['seeds'] > 1)} / "
            f"{'–' if soc['mean'] is None else format(soc['mean'], '.2f')}")


def markdown(figures: dict[str, Any]) -> str:
    """The per-test table and, per kind of fold, the summary and the targets."""
    settings = figures["settings"]
    blocks = [(f"{figures['dataset']}: held-out tests, RMSE inside 5–95 % SOC [mV] (mean ± sd over "
               f"{settings['seeds']} seed(s)) / SOC MAE [%]; {settings['resample_period_s']:g} s grid."),
              markdown_table(["fold", "test", "T [°C]", *LABELS.values()],
                             [[row["fold"], Path(row["file"]).name.split(".")[0], f"{row['ambient_degC']:g}",
                               *(cell(row[column]) for column in COLUMNS)] for row in figures["tests"]])]
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


def run(settings: Settings, name: str, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Pair, plan the folds, run each; writes OUT/results.md and OUT/figures.json."""
    started = time.perf_counter()
    samples = samples_with_groups(paired(settings, work), settings.dataset)
    folds = plan(samples, settings, args.folds or settings.dataset.fold_kinds[0], args.held_out, args.validation)
    hybrid = read_yaml(CONFIGS / "train" / settings.dataset.finetune)["models"][0]["name"]
    rows, curve = [], []
    for fold in folds:
        logging.getLogger(__name__).info("fold %s: calibrated on %s", fold.name, fold.calibration_file)
        runs, fold_curve, order = run_fold(settings, fold, work)
        rows += test_rows(fold, runs, hybrid)
        curve += curve_rows(fold, runs, fold_curve, order, hybrid) if settings.curve else []
    kinds = sorted({row["kind"] for row in rows})
    figures = {"experiment": "transfer_study", "dataset": name, "data_dir": os.environ[REAL_DATA_VARIABLE],
               "settings": asdict(settings), "folds": [asdict(fold) for fold in folds], "tests": rows,
               "curve": curve, "curve_target": curve_target(curve),
               "summary": {kind: summarise_rows([row for row in rows if row["kind"] == kind]) for kind in kinds},
               "wall_s": round(time.perf_counter() - started, 1)}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "figures.json").write_text(json.dumps(json_safe(figures), indent=1))
    (args.out / "results.md").write_text(markdown(figures) + "\n")
    return figures


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=sorted(DATASETS), required=True)
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--folds", choices=("all", "loto", "fixed", "loco"), default=None)
    parser.add_argument("--held-out", nargs="+", default=[])
    parser.add_argument("--validation", nargs="+", default=[])
    for flag, kind in (("--seeds", int), ("--resample-period-s", float), ("--workers", int)):
        parser.add_argument(flag, type=kind, default=None)
    parser.add_argument("--curve", action="store_true")
    parser.add_argument("--quick", action="store_true")
    return parser.parse_args(argv)


def settings_from(args: argparse.Namespace) -> Settings:
    """The data set's defaults, --quick's, then the options given; ConfigError naming a bad one."""
    dataset = DATASETS[args.dataset]
    if args.folds is not None and args.folds not in dataset.fold_kinds:
        raise ConfigError(f"--folds {args.folds}: allowed for {args.dataset}: {', '.join(dataset.fold_kinds)}")
    if args.validation and not args.held_out:
        raise ConfigError(f"--validation {' '.join(args.validation)}: allowed only with --held-out")
    for flag, value in (("--seeds", args.seeds), ("--resample-period-s", args.resample_period_s),
                        ("--workers", args.workers)):
        if value is not None and value <= 0:
            raise ConfigError(f"{flag} {value}: allowed: a positive number")
    quick = QUICK if args.quick else {}
    given = {"seeds": args.seeds, "resample_period_s": args.resample_period_s}
    return Settings(dataset, **{"resample_period_s": dataset.resample_period_s, **quick,
                                **{key: value for key, value in given.items() if value is not None}},
                    workers=args.workers, curve=args.curve, quick=args.quick)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the study; returns the figures (also in OUT/figures.json)."""
    args = parse_args(argv)
    settings = settings_from(args)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger(__name__).setLevel(logging.INFO)
    data_dir = (args.data_dir or default_real_data_dir()).resolve()
    if not data_dir.is_dir():
        raise ConfigError(f"--data-dir {data_dir}: not a directory; allowed: a folder laid out like "
                          "../shared/data/real/")
    os.environ[REAL_DATA_VARIABLE] = str(data_dir)  # the configs read ${HYBAT_REAL_DATA}
    with torch_threads(1):  # small RNNs gain nothing from more threads (see TrainConfig.threads)
        figures = run(settings, args.dataset, args, args.work or args.out / "work")
    print((args.out / "results.md").read_text())
    print(json.dumps(json_safe({key: figures[key] for key in ("experiment", "dataset", "summary", "wall_s")})))
    return figures


if __name__ == "__main__":
    try:
        main()
    except HybatError as error:
        print(f"transfer_study.py: error: {error}", file=sys.stderr)
        sys.exit(error.exit_code)
