"""The sim-to-real transfer study over the folds of a measured data set: physics, ECM, black box
and hybrids (from scratch, zero-shot from synthetic pretraining, fine-tuned) on every held-out
test, and the data-efficiency curve (``experiments/transfer_study.py`` runs it from the command line).

The chain per fold (the library and CLI steps of the README's sim-to-real workflow): the tests are
paired with the calibrated physics model (hybat pair-measured; every test of the data set, found
by the configs' globs, so new temperatures and cells form new folds unchanged); a synthetic corpus
replays the fold's training and validation tests only (hybat corpus with measured.replay); per
seed, the models are pretrained on it (hybat train) and trained on the measured tests three ways,
from scratch, zero-shot (finetune.recipe none) and fine-tuned (choose, on validation), each scored
per test (hybat evaluate); the ECM is fitted on the training tests (evaluation.ecm). With
``StudySettings.context_window_s``, also zero-shot with a characterisation context: the same LSTM
conditioned on the first part of each record (:mod:`hybrid.models.context`), pretrained on the
synthetic corpus only and scored on each held-out test after its context, beside the calibrated
physics on those rows.

Nothing is chosen on a held-out test: each fold's validation group and calibration test follow
the rule of hybrid.data.folds (validation: a training group of the held-out tests' kind, not the
calibration test's, nearest the held-out one: for temperatures an inner one, for cells the next in
order; calibration: the pairing config's test, or the training test standing in for it when it is
held out; a pairing config that fits the series resistance over temperatures,
``calibration.temperature_files``, fits it per fold on the fold's training tests). Every figure
is a mean ± sd over seeds (physics and ECM are deterministic).

Samsung: the HPPC and rate tests are paired together, calibrated as samsung30q_hppc.yaml says, so
a held-out rate cell is a new cell to the same physics.

The curve (``StudySettings.curve``): per fold, the hybrid from scratch and fine-tuned trained on the
first 1 ... N-1 of its N training tests (same validation and pretrained run: only the measured
voltages are cut), next to the full runs; the calibration test first, then each time the
training test farthest in temperature from those taken (hybrid.data.folds.training_order).
Every step resumes what a previous call left in ``work`` (a run: when made with the same config),
by the same code only (:func:`code_fingerprint`).
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import hashlib
import json
import logging
import os
import platform
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from hybrid.data import Fold, fold_of, group_label, leave_one_out, training_order
from hybrid.evaluate import evaluate_run, json_safe
from hybrid.train import RUN_CONFIG, SUMMARY, TrainRunConfig, read_run_file
from hybrid.train.run import METRICS, train_from_config
from hybrid.transfer.tables import (
    CONTEXT_MODEL,
    CONTEXT_VARIANT,
    CURVE,
    VARIANTS,
    Runs,
    curve_rows,
    curve_target,
    held_out_rows,
    markdown,
    summarise_rows,
)
from sim.config import apply_overrides, package_versions, read_yaml, validate
from sim.corpus import CorpusSpec, generate_corpus
from sim.errors import ConfigError
from sim.measured import REAL_DATA_VARIABLE, PairingSpec, pair_measured
from sim.measured.spec import resolve_data_dir

CONFIGS = Path(__file__).resolve().parents[1] / "configs"  # hybrid/configs: the repository's configs/
CODE = tuple(Path(__file__).resolve().parents[2] / package for package in ("hybrid", "sim"))
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
QUICK = {"resample_period_s": 60.0, "epochs": 2, "synthetic_cells": 4, "seeds": 1}  # a smoke run, with the first fold


@dataclass(frozen=True)
class StudySettings:
    """What the chain runs with: the data set's defaults, --quick's and the options given."""

    dataset: Dataset
    resample_period_s: float
    seeds: int = 3
    epochs: int | None = None  # None: the configs'
    synthetic_cells: int | None = None
    workers: int | None = None
    curve: bool = False
    quick: bool = False
    corpus_overrides: tuple[str, ...] = ()  # KEY.PATH=VALUE on the synthetic corpus spec
    train_overrides: tuple[str, ...] = ()  # on the pretraining and fine-tuning configs
    context_window_s: float | None = None  # the zero-shot context run's window (None: no such run)


def overrides_tag(overrides: tuple[str, ...]) -> str:
    """The directory suffix of ``overrides``: empty without any, else "_set" and a short hash, so runs
    and corpora made with other overrides keep their own directories."""
    return "_set" + hashlib.sha1(json.dumps(list(overrides)).encode()).hexdigest()[:8] if overrides else ""


def check_overrides(settings: StudySettings) -> None:
    """ConfigError naming a --set or --corpus-set override that does not fit its config, before any work."""
    for name in (settings.dataset.pretrain, settings.dataset.finetune):
        run_config(settings, name, [])
    validate(CorpusSpec, corpus_data(settings), settings.dataset.corpus)


def corpus_data(settings: StudySettings) -> dict[str, Any]:
    """The data set's synthetic corpus config with the --corpus-set overrides."""
    return apply_overrides(read_yaml(CONFIGS / "corpus" / settings.dataset.corpus), list(settings.corpus_overrides))


def pairing_spec(dataset: Dataset, resample_period_s: float, calibration_file: str | None = None,
                 train_files: tuple[str, ...] | None = None) -> PairingSpec:
    """The first pairing config with every config's tests, on the resampled grid, calibrated on
    ``calibration_file`` (None: the config's); a config that fits the series resistance over
    several temperatures (``calibration.temperature_files``) fits it on ``train_files`` (a
    fold's training tests; None: the config's files)."""
    first, *others = [read_yaml(CONFIGS / "measured" / name) for name in dataset.pairings]
    for name, other in zip(dataset.pairings[1:], others):
        if other.get("data_dir") != first.get("data_dir"):
            raise ConfigError(f"{name}: data_dir {other.get('data_dir')!r}; allowed: {dataset.pairings[0]}'s")
    data = {**first, "tests": [group for config in (first, *others) for group in config["tests"]],
            "resample_period_s": resample_period_s}
    if calibration_file is not None:
        data["calibration"] = {**data["calibration"], "file": calibration_file}
    if train_files is not None and data["calibration"].get("temperature_files"):
        data["calibration"] = {**data["calibration"], "temperature_files": [glob.escape(f) for f in train_files]}
    return validate(PairingSpec, data, dataset.pairings[0])


def paired(settings: StudySettings, work: Path, calibration_file: str | None = None,
           train_files: tuple[str, ...] | None = None) -> Path:
    """The data set paired (or finished) under ``work``, one corpus per grid, calibration test and
    set of tests the series resistance is fitted on."""
    spec = pairing_spec(settings.dataset, settings.resample_period_s, calibration_file, train_files)
    out = work / "paired" / f"{settings.resample_period_s:g}s_{Path(spec.calibration.file).name.split('.')[0]}"
    if spec.calibration.temperature_files:
        out = out.with_name(out.name + "_T" + hashlib.sha1(
            json.dumps(spec.calibration.temperature_files).encode()).hexdigest()[:8])
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


def synthetic(settings: StudySettings, fold: Fold, pairing: Path, work: Path) -> Path:
    """The synthetic population around ``pairing`` replaying the fold's training and validation tests."""
    spec = corpus_data(settings)
    spec["measured"] = {**spec["measured"], "corpus": str(pairing),
                        "replay": [glob.escape(f) for f in (*fold.train_files, *fold.val_files)]}
    spec["cells"] = settings.synthetic_cells or spec["cells"]
    held = "+".join(group_label(key) for key in fold.held_out)
    out = (work / "synthetic" / pairing.name /
           f"without_{held}_cells{spec['cells']}{overrides_tag(settings.corpus_overrides)}")
    generate_corpus(validate(CorpusSpec, spec, settings.dataset.corpus), out, resume=True, progress=False,
                    backend="serial" if settings.workers is None else "ray", workers=settings.workers)
    return out


def run_config(settings: StudySettings, name: str, overrides: list[str]) -> TrainRunConfig:
    """configs/train/``name`` with the settings' train overrides, ``overrides`` (KEY.PATH=VALUE) and --quick's."""
    overrides = [*settings.train_overrides, *overrides]
    if settings.epochs is not None:
        overrides = [*overrides, f"train.epochs={settings.epochs}"]
    if settings.quick:
        overrides = [*overrides, "evaluation.plots=false"]
    return validate(TrainRunConfig, apply_overrides(read_yaml(CONFIGS / "train" / name), overrides), name)


def context_overrides(settings: StudySettings) -> list[str]:
    """The context run's model in place of the configs' hybrids: the first hybrid's LSTM
    conditioned on the first ``context_window_s`` of each record (at most a quarter of it)."""
    hybrid = read_yaml(CONFIGS / "train" / settings.dataset.pretrain)["models"][0]["model"]
    model = {key: value for key, value in hybrid.items() if key in ("cell", "hidden_size", "layers", "dropout")}
    model.update(kind="context_residual", context_window_s=settings.context_window_s, context_max_fraction=0.25)
    return [f"models={json.dumps([{'name': CONTEXT_MODEL, 'model': model}])}"]


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


def measured_run(settings: StudySettings, fold: Fold, pairing: Path, run_dir: Path, seed: int, recipe: str | None,
                 pretrain: Path, train_files: tuple[str, ...] | None = None,
                 extra: Sequence[str] = ()) -> list[dict[str, Any]]:
    """One run on the measured tests (from scratch when ``recipe`` is None, else from ``pretrain``),
    trained on ``train_files`` (None: all the fold's), with the ``extra`` overrides, and its
    held-out per_test rows."""
    by_column = {"column": "file", "test": [glob.escape(f) for f in fold.test_files],
                 "val": [glob.escape(f) for f in fold.val_files]}
    if train_files is not None:
        by_column["train"] = [glob.escape(f) for f in train_files]
    overrides = [f"splits.by_column={json.dumps(by_column)}", f"train.seed={seed}",
                 f"name={json.dumps(fold.name + '_' + run_dir.name)}"]
    overrides += [] if recipe is None else [f"finetune.recipe={recipe}"]
    first_scratch = recipe is None and seed == 0 and train_files is None
    overrides += [] if first_scratch else ["evaluation.ecm=null"]  # the ECM is fitted once
    overrides += list(extra)
    run = trained(run_config(settings, settings.dataset.finetune, overrides), pairing, run_dir,
                  None if recipe is None else pretrain)
    return evaluated(run, pairing)


def run_fold(settings: StudySettings, fold: Fold, work: Path) -> tuple[Runs, dict[int, Runs], tuple[str, ...]]:
    """Every run of ``fold``; with --curve, per count k of training tests (1 ... N-1) the scratch
    and fine-tuned runs on the first k of them; and the training tests in the order they are added."""
    pairing = paired(settings, work, fold.calibration_file, fold.train_files)
    corpus = synthetic(settings, fold, pairing, work)
    order = training_order(pd.read_parquet(pairing / "samples.parquet"), fold)
    counts = range(1, len(order)) if settings.curve else range(0)
    tag = overrides_tag(settings.train_overrides)  # a changed grid, calibration or corpus: new runs too
    runs = work / "runs" / pairing.name / (corpus.name + tag) / fold.name
    rows: Runs = {variant: [] for variant in VARIANTS}
    curve: dict[int, Runs] = {k: {variant: [] for variant in CURVE} for k in counts}
    for seed in range(settings.seeds):
        pretrain = trained(run_config(settings, settings.dataset.pretrain, [f"train.seed={seed}"]), corpus,
                           work / "pretrain" / pairing.name / (corpus.name + tag) / f"seed{seed}")
        for variant, recipe in VARIANTS.items():
            rows[variant].append(measured_run(settings, fold, pairing, runs / f"seed{seed}" / variant, seed, recipe,
                                              pretrain))
        for k in counts:
            for variant in CURVE:
                curve[k][variant].append(measured_run(settings, fold, pairing, runs / f"seed{seed}" /
                                                      f"first{k}_{variant}", seed, VARIANTS[variant], pretrain,
                                                      order[:k]))
        if settings.context_window_s is not None:
            window = f"{settings.context_window_s:g}s"
            rows.setdefault(CONTEXT_VARIANT, []).append(zero_shot_with_context(
                settings, fold, pairing, corpus, work / "pretrain" / pairing.name / (corpus.name + tag) /
                f"context{window}_seed{seed}", runs / f"seed{seed}" / f"{CONTEXT_VARIANT}{window}", seed))
    return rows, curve, order


def zero_shot_with_context(settings: StudySettings, fold: Fold, pairing: Path, corpus: Path, pretrain_dir: Path,
                           run_dir: Path, seed: int) -> list[dict[str, Any]]:
    """One seed's context run: the context model (:func:`context_overrides`) pretrained on the
    synthetic ``corpus``, then scored with no gradient step on the measured tests (each one read
    from its first ``context_window_s``); its held-out per_test rows."""
    context = context_overrides(settings)
    pretrain = trained(run_config(settings, settings.dataset.pretrain, [f"train.seed={seed}", *context]), corpus,
                       pretrain_dir)
    return measured_run(settings, fold, pairing, run_dir, seed, "none", pretrain, extra=context)


def plan(samples: pd.DataFrame, settings: StudySettings, folds: str, held_out: list[str],
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


def code_fingerprint(packages: Sequence[Path] = CODE) -> str:
    """12 hex digits of a hash over the packages' Python sources. A work folder's runs are found
    again by their configs, which do not change when the code that trains them does: the study
    keeps each code's pairings, corpora and runs apart under ``work``/code_FINGERPRINT."""
    digest = hashlib.sha1()
    for package in packages:
        for path in sorted(package.rglob("*.py")):
            digest.update(str(path.relative_to(package.parent)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def machine() -> dict[str, Any]:
    """What the figures were computed on. Training amplifies the last bits of floating point: the
    same code and seeds give other hybrid figures where the CPU kernels round differently. torch's
    LSTM runs on oneDNN, which picks its instruction set from the CPU (``ONEDNN_MAX_CPU_ISA``
    caps it; A123 fixed split, 3 seeds: fine-tuned 22.8 mV with AVX512, 32.6 capped at AVX2), so
    a figure is reproduced to the digit only on a machine of the same kind."""
    cpu = next((line.split(":", 1)[1].strip() for line in _cpuinfo() if line.startswith("model name")),
               platform.processor() or "unknown")
    return {"cpu": cpu, "cores": os.cpu_count(), "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "onednn_max_cpu_isa": os.environ.get("ONEDNN_MAX_CPU_ISA", "default"),
            "python": platform.python_version(), **package_versions(("torch", "numpy", "pybamm", "casadi"))}


def _cpuinfo() -> list[str]:
    try:
        return Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return []


@contextlib.contextmanager
def work_lock(work: Path):
    """Hold ``work`` for this study: two studies in one work folder would remove each other's runs
    (a run found unfinished is started over)."""
    work.mkdir(parents=True, exist_ok=True)
    with open(work / ".lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigError(f"--work {work}: in use by another transfer study; allowed: another folder, or "
                              "after that study ends") from None
        yield


def run_study(settings: StudySettings, name: str, out: Path, work: Path, folds: str | None = None,
              held_out: Sequence[str] = (), validation: Sequence[str] = ()) -> dict[str, Any]:
    """Pair, plan the folds (``folds``: a --folds kind, None: the data set's default; or the one
    fold of ``held_out`` and ``validation``), run each; writes ``out``/results.md and figures.json
    and returns the figures. The configs read the data folder from $HYBAT_REAL_DATA."""
    with work_lock(work):
        return _run_study(settings, name, out, work, folds, held_out, validation)


def _run_study(settings: StudySettings, name: str, out: Path, work: Path, folds: str | None,
               held_out: Sequence[str], validation: Sequence[str]) -> dict[str, Any]:
    started = time.perf_counter()
    code = code_fingerprint()
    work = work / f"code_{code}"
    samples = samples_with_groups(paired(settings, work), settings.dataset)
    folds = plan(samples, settings, folds or settings.dataset.fold_kinds[0], list(held_out),
                 list(validation))
    hybrid = read_yaml(CONFIGS / "train" / settings.dataset.finetune)["models"][0]["name"]
    rows, curve = [], []
    for fold in folds:
        logging.getLogger(__name__).info("fold %s: calibrated on %s", fold.name, fold.calibration_file)
        runs, fold_curve, order = run_fold(settings, fold, work)
        rows += held_out_rows(fold, runs, hybrid)
        curve += curve_rows(fold, runs, fold_curve, order, hybrid) if settings.curve else []
    kinds = sorted({row["kind"] for row in rows})
    figures = {"experiment": "transfer_study", "dataset": name, "data_dir": os.environ[REAL_DATA_VARIABLE],
               "code": code, "machine": machine(),
               "settings": asdict(settings), "folds": [asdict(fold) for fold in folds], "tests": rows,
               "curve": curve, "curve_target": curve_target(curve),
               "summary": {kind: summarise_rows([row for row in rows if row["kind"] == kind]) for kind in kinds},
               "wall_s": round(time.perf_counter() - started, 1)}
    out.mkdir(parents=True, exist_ok=True)
    (out / "figures.json").write_text(json.dumps(json_safe(figures), indent=1))
    (out / "results.md").write_text(markdown(figures) + "\n")
    return figures

