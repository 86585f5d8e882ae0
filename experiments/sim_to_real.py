"""Sim-to-real transfer on measured cycler data: physics, hybrids, black box and an ECM side by side.

Usage:
    python experiments/sim_to_real.py [--data-dir DIR] --out DIR [--quick]
        [--train-temps C ...] [--test-temps C ...] [--resample-period-s S]
        [--epochs N] [--pretrain-epochs N] [--hidden N] [--synthetic-cells N]
        [--learning-rate LR] [--finetune-learning-rate LR] [--no-curve] [--work DIR] [--seed N]

    --data-dir    the measured data (default: $HYBAT_REAL_DATA, else ../shared/data/real); the
                  A123 LFP dynamic tests are read from its a123_lfp_plett_dyn/ (never copied)
    --out         where results.md, figures.json and the PNGs go
    --quick       tiny settings for a smoke run (3 tests, 60 s grid, 2 epochs, 2 synthetic cells)
    --train-temps chamber temperatures [degC] of the measured training tests (default -25 5 25 45)
    --test-temps  held-out temperatures (default -15 15)
    --work        where the paired corpora, the synthetic corpus and the runs go (default:
                  OUT/work); pairings and the synthetic corpus left there are resumed
    --no-curve    skip the data-efficiency curve

The data hold one A123 cell (script 1 of each temperature: full to ~10 % SOC with a
UDDS-derived profile), so the split is by test: held-out tests are other temperatures of the
same cell. Steps:

1. pair the selected tests with sim.pairing.pair_measured (configs/measured/a123_dynamic.yaml,
   resampled): once with the nominal Prada2013 cell, once calibrated on the training test
   nearest 25 degC (the calibration sees no held-out test);
2. fit the ECM (hybrid.ecm: OCV from the 25 degC C/30 tests in ocv/, R0 + 2 RC + one-state
   hysteresis + capacity per training temperature, linearly interpolated for held-out ones);
3. generate the synthetic corpus configs/corpus/sim_to_real.yaml with the calibrated cell
   as its physics model, and pretrain the residual hybrid on it;
4. train on the measured training tests: a hybrid from scratch, the pretrained hybrid
   fine-tuned, a black-box RNN; no test is spare for validation, so validation (best.pt) is
   the training tests' loss;
5. score every model on every test: voltage RMSE [mV] over the whole record and inside
   5-95 % SOC, and the SOC mean absolute error [%] (reference SOC: coulomb counting of the
   cycler's charge counter from full, with the test's throughput capacity over scripts 1+2);
6. the data-efficiency curve: held-out error of the pretrained vs from-scratch hybrid
   against the number of measured training tests used.

Prints the Markdown table and one JSON line of figures.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from hybrid.data import (CHARGE, CURRENT, PHYSICS_SOC, PHYSICS_VOLTAGE, SOC, TIME, VOLTAGE, Corpus,  # noqa: E402
                         FeatureOptions, SplitAssignment, SplitOptions, assign_splits, fit_normalisation, load_corpus,
                         make_batches)
from hybrid.ecm import ECMParameters, ECMRecord, OCVCurve, fit_ecm, interpolate_parameters, simulate_ecm  # noqa: E402
from hybrid.evaluate import TrainedModel, load_trained, predict_record  # noqa: E402
from hybrid.models import build_model, config_from_dict, config_to_dict  # noqa: E402
from hybrid.pipeline import CHECKPOINT  # noqa: E402
from hybrid.train import TrainConfig, fit, load_checkpoint, seed_everything  # noqa: E402
from sim.calibrate import Calibration  # noqa: E402
from sim.config import load_config  # noqa: E402
from sim.corpus import CorpusSpec, generate_corpus  # noqa: E402
from sim.errors import ConfigError  # noqa: E402
from sim.pairing import REAL_DATA_VARIABLE, PairingSpec, default_real_data_dir, pair_measured  # noqa: E402

log = logging.getLogger("sim_to_real")

ROOT = Path(__file__).resolve().parents[1]
PAIRING_CONFIG = ROOT / "configs" / "measured" / "a123_dynamic.yaml"
CORPUS_CONFIG = ROOT / "configs" / "corpus" / "sim_to_real.yaml"
DATASET = "a123_lfp_plett_dyn"
DYNAMIC_SCRIPT = "script1"
SOC_WINDOW = (0.05, 0.95)
# The physics outputs both corpora carry and that vary (LLI and SEI are constant without ageing).
PHYSICS_FEATURES = ["Physics voltage [V]", "Physics cell temperature [K]", "Physics state of charge",
                    "Physics X-averaged negative particle surface stoichiometry",
                    "Physics X-averaged positive particle surface stoichiometry",
                    "Physics X-averaged negative electrode surface potential difference [V]"]
FEATURES = FeatureOptions(physics_columns=PHYSICS_FEATURES, design=False, time_step=True, soc_head=True)
MODELS = ("physics_nominal", "physics_calibrated", "ecm", "black_box", "hybrid_measured_only",
          "hybrid_pretrained_zero_shot", "hybrid_pretrained_finetuned")
LABELS = {"physics_nominal": "(1) physics only, nominal Prada2013",
          "physics_calibrated": "(2) physics only, calibrated",
          "hybrid_measured_only": "(3) hybrid, measured data only",
          "hybrid_pretrained_zero_shot": "(4a) hybrid, synthetic pretraining only",
          "hybrid_pretrained_finetuned": "(4) hybrid, pretrained + fine-tuned",
          "black_box": "(5) black-box RNN",
          "ecm": "(6) ECM: OCV + R0 + 2 RC + hysteresis"}


@dataclass(frozen=True)
class Settings:
    """The experiment's knobs (see the usage block); temperatures in degC, periods in s."""

    train_temps_C: tuple[float, ...]
    test_temps_C: tuple[float, ...]
    resample_period_s: float
    epochs: int
    pretrain_epochs: int
    hidden_size: int
    synthetic_cells: int
    learning_rate: float
    finetune_learning_rate: float
    truncation_steps: int
    curve: bool
    seed: int


QUICK = dict(train_temps_C=(5.0, 25.0), test_temps_C=(15.0,), resample_period_s=60.0, epochs=2, pretrain_epochs=2,
             hidden_size=8, synthetic_cells=2, truncation_steps=50)


# --- measured tests and pairing ---------------------------------------------------------


def dynamic_tests(data_dir: Path) -> dict[float, str]:
    """Chamber temperature [degC] -> file (relative to the dataset folder) of every script-1 test."""
    manifest = pd.read_csv(data_dir / DATASET / "manifest.csv")
    rows = manifest[manifest["file"].str.startswith("dyn/") & manifest["file"].str.contains(DYNAMIC_SCRIPT)]
    return {float(row.test_temperature_C): row.file for row in rows.itertuples()}


def pairing_spec(files: list[str], calibration_file: str | None, resample_period_s: float) -> PairingSpec:
    """configs/measured/a123_dynamic.yaml for ``files`` (one test group each), calibrated on
    ``calibration_file`` (None: the nominal cell), on the resampled grid."""
    data = load_config(PAIRING_CONFIG, PairingSpec).model_dump()
    template = data["tests"][0]
    data["tests"] = [{**template, "pattern": file} for file in files]
    data["resample_period_s"] = resample_period_s
    data["compare_nominal"] = False  # the nominal cell gets its own pairing (its series are scored)
    if calibration_file is None:
        data["calibration"] = {"mode": "none"}
    else:
        data["calibration"]["file"] = calibration_file
    return PairingSpec.model_validate(data)


def pair(spec: PairingSpec, out: Path) -> Corpus:
    """Pair (or finish pairing) into ``out`` and load it with the reference SOC added."""
    pair_measured(spec, out, resume=out.exists(), progress=False)
    corpus = load_corpus(out)
    for sample_id, cell in corpus.cells.items():
        throughput = float(corpus.samples.loc[sample_id, "throughput_capacity_Ah"])
        cell.columns[SOC] = 1.0 - cell.columns[CHARGE] / throughput  # the cell starts full
    return corpus


# --- ECM --------------------------------------------------------------------------------


def ocv_curve(data_dir: Path) -> OCVCurve:
    """The 25 degC OCV: mean of the C/30 discharge (script 1, to empty with script 2) and the C/30
    charge (script 3, to full with script 4), each on an SOC axis of its own total charge."""
    folder = data_dir / DATASET / "ocv"

    def net(script: int, sign: float) -> pd.DataFrame:
        frame = pd.read_csv(folder / f"A123_OCV_p25C_script{script}.csv.gz")
        frame["net_Ah"] = sign * (frame["dis_Ah_source"] - frame["chg_Ah_source"])
        return frame

    branches = []
    for slow, finish, sign in ((1, 2, 1.0), (3, 4, -1.0)):
        leg, rest = net(slow, sign), net(finish, sign)
        total = float(leg["net_Ah"].iloc[-1] + rest["net_Ah"].iloc[-1])
        moving = leg["current_A"].abs() > 0.5 * leg["current_A"].abs().max()
        soc = leg["net_Ah"][moving] / total
        branches.append((1.0 - soc if sign > 0 else soc, leg["voltage_V"][moving]))
    return OCVCurve.from_branches(*branches[0], *branches[1])


def ecm_predictions(corpus: Corpus, temperatures: dict[int, float], train_ids: list[int],
                    ocv: OCVCurve) -> tuple[dict[int, dict], dict[float, ECMParameters]]:
    """ECM fitted per training temperature, interpolated elsewhere; (predictions, fitted)."""
    fitted = {}
    for sample_id in train_ids:
        cell = corpus.cells[sample_id]
        record = ECMRecord(cell.columns[TIME], cell.columns[CURRENT], cell.columns[VOLTAGE],
                           float(corpus.samples.loc[sample_id, "throughput_capacity_Ah"]))
        fitted[temperatures[sample_id]] = fit_ecm([record], ocv).parameters
    predictions = {}
    for sample_id, cell in corpus.cells.items():
        output = simulate_ecm(cell.columns[TIME], cell.columns[CURRENT], ocv,
                              interpolate_parameters(fitted, temperatures[sample_id]))
        predictions[sample_id] = {"voltage": output.voltage_V, "soc": output.soc}
    return predictions, fitted


# --- training ---------------------------------------------------------------------------


def by_test_assignment(train_ids: list[int], test_ids: list[int], rows: dict[int, int]) -> SplitAssignment:
    """Training tests also serve as validation (no spare test); held-out tests are "test"."""
    ranges = {"train": {i: (0, rows[i]) for i in train_ids}, "val": {i: (0, rows[i]) for i in train_ids}}
    if test_ids:
        ranges["test"] = {i: (0, rows[i]) for i in test_ids}
    return SplitAssignment(ranges, {})


def train_model(name: str, corpus: Corpus, assignment: SplitAssignment, normalisation: dict, model: dict,
                config: TrainConfig, run_dir: Path, init_from: Path | None = None) -> TrainedModel:
    """Train ``model`` (a config dict without sizes) on the train split, validating on val;
    ``init_from`` starts from that checkpoint's weights (fine-tuning). Returns best.pt loaded.
    A run left in ``run_dir`` by the same command is reused when finished, resumed otherwise."""
    finished = run_dir / "finished.json"
    if finished.exists():
        return load_trained(run_dir / CHECKPOINT, name)
    model_config = config_from_dict({**model, "input_size": len(normalisation["features"]),
                                     "output_size": len(normalisation["targets"])})
    seed_everything(config.seed)
    network = build_model(model_config)
    if init_from is not None:
        network.load_state_dict(load_checkpoint(init_from)["model_state"])
    batches = {split: make_batches(corpus, assignment.ranges[split], normalisation, config.batch_size)
               for split in ("train", "val")}
    started = time.perf_counter()
    result = fit(network, batches["train"], batches["val"], config, run_dir=run_dir,
                 model_config=config_to_dict(model_config), normalisation=normalisation,
                 extra={"model_name": name, "init_from": str(init_from or "")}, resume=(run_dir / "last.pt").exists())
    seconds = time.perf_counter() - started
    finished.write_text(json.dumps({"best_epoch": result.best_epoch, "best_val_loss": result.best_val_loss,
                                    "epochs_run": result.epochs_run, "seconds": seconds}))
    log.info("%s trained in %.1f s (best epoch %d)", name, seconds, result.best_epoch)
    return load_trained(run_dir / CHECKPOINT, name)


def finetune_normalisation(pretrained: dict, measured: dict) -> dict:
    """The pretrained model's feature scaling (what its weights expect) with the measured
    targets' scaling (the residual on real data is larger than the plant's)."""
    if pretrained["targets"] != measured["targets"]:
        raise ConfigError(f"targets differ: pretrained {pretrained['targets']}, measured {measured['targets']}")
    return {**pretrained, "target_mean": measured["target_mean"], "target_std": measured["target_std"]}


def train_config(settings: Settings, epochs: int, learning_rate: float) -> TrainConfig:
    return TrainConfig(epochs=epochs, batch_size=8, truncation_steps=settings.truncation_steps,
                       learning_rate=learning_rate, schedule="cosine", grad_clip=1.0,
                       early_stopping_patience=max(epochs, 1), seed=settings.seed)


def pretrain(settings: Settings, calibration: Calibration, work: Path) -> tuple[Path, dict]:
    """Generate the synthetic corpus with the calibrated cell as physics and pretrain on it;
    returns (checkpoint, facts)."""
    spec = load_config(CORPUS_CONFIG, CorpusSpec)
    spec = CorpusSpec.model_validate({**spec.model_dump(), "cells": settings.synthetic_cells,
                                      "cell": calibration.apply(spec.cell).model_dump()})
    out = work / "synthetic_corpus"
    started = time.perf_counter()
    manifest = generate_corpus(spec, out, resume=out.exists(), progress=False)
    corpus_seconds = time.perf_counter() - started
    corpus = load_corpus(out)
    for cell in corpus.cells.values():  # the measured corpus's grid starts at 0 s too
        cell.columns[TIME] = cell.columns[TIME] - cell.columns[TIME][0]
    if len(corpus.cells) >= 4:
        assignment = assign_splits(corpus, SplitOptions(seed=settings.seed, val_fraction=0.2, test_fraction=0.0))
    else:  # too few cells to spare one: validate on the training cells
        ids = corpus.sample_ids
        assignment = by_test_assignment(ids, [], {i: corpus.cells[i].rows for i in ids})
    normalisation = fit_normalisation(corpus, assignment, FEATURES, "hybrid")
    run_dir = work / "runs" / "pretrained"
    trained = train_model("pretrained", corpus, assignment, normalisation, hybrid_model(settings),
                          train_config(settings, settings.pretrain_epochs, settings.learning_rate), run_dir)
    return run_dir / CHECKPOINT, {"cells": manifest["counts"], "corpus_wall_s": round(corpus_seconds, 1),
                                  "rows": int(sum(c.rows for c in corpus.cells.values())),
                                  "train_cells": assignment.sample_ids("train"),
                                  "val_cells": assignment.sample_ids("val"), "best_epoch": trained.best_epoch}


def hybrid_model(settings: Settings) -> dict:
    return {"kind": "residual_rnn", "cell": "lstm", "hidden_size": settings.hidden_size, "layers": 1}


# --- scoring ----------------------------------------------------------------------------


def score(voltage_V: np.ndarray, soc: np.ndarray | None, reference_V: np.ndarray, reference_soc: np.ndarray) -> dict:
    """RMSE [mV] over the record and inside SOC_WINDOW (of the reference SOC), SOC MAE [%];
    rows where the prediction is not finite are left out and counted."""
    rows = min(len(voltage_V), len(reference_V))
    error = voltage_V[:rows] - reference_V[:rows]
    finite = np.isfinite(error)
    window = finite & (reference_soc[:rows] >= SOC_WINDOW[0]) & (reference_soc[:rows] <= SOC_WINDOW[1])
    result = {"rmse_mV": _rms(error[finite]), "rmse_soc_5_95_mV": _rms(error[window]),
              "soc_mae_pct": None, "rows_scored": int(finite.sum()), "rows": int(len(reference_V))}
    if soc is not None:
        soc_error = soc[:rows] - reference_soc[:rows]
        result["soc_mae_pct"] = float(np.mean(np.abs(soc_error[np.isfinite(soc_error)])) * 100.0)
    return result


def _rms(error_V: np.ndarray) -> float | None:
    return float(np.sqrt(np.mean(error_V ** 2)) * 1e3) if len(error_V) else None


def model_predictions(trained: TrainedModel, corpus: Corpus) -> dict[int, dict]:
    out = {}
    for sample_id, cell in corpus.cells.items():
        prediction = predict_record(trained, cell)
        out[sample_id] = {"voltage": prediction.voltage_V, "soc": prediction.soc}
    return out


def physics_predictions(corpus: Corpus) -> dict[int, dict]:
    return {i: {"voltage": cell.columns[PHYSICS_VOLTAGE], "soc": cell.columns.get(PHYSICS_SOC)}
            for i, cell in corpus.cells.items()}


def score_all(predictions: dict[str, dict[int, dict]], corpus: Corpus) -> dict[str, dict[int, dict]]:
    return {model: {i: score(p["voltage"], p["soc"], corpus.cells[i].columns[VOLTAGE], corpus.cells[i].columns[SOC])
                    for i, p in by_test.items()}
            for model, by_test in predictions.items()}


def mean_over(scores: dict[int, dict], ids: list[int], key: str) -> float | None:
    values = [scores[i][key] for i in ids if i in scores and scores[i][key] is not None]
    return float(np.mean(values)) if values else None


# --- the experiment ---------------------------------------------------------------------


def run(settings: Settings, data_dir: Path, out: Path, work: Path) -> dict[str, Any]:
    started = time.perf_counter()
    files = dynamic_tests(data_dir)
    wanted = [*settings.train_temps_C, *settings.test_temps_C]
    missing = [t for t in wanted if t not in files]
    if missing or set(settings.train_temps_C) & set(settings.test_temps_C):
        raise ConfigError(f"temperatures: train {settings.train_temps_C}, test {settings.test_temps_C}; allowed: "
                          f"disjoint sets from {sorted(files)} degC")
    calibration_temp = min(settings.train_temps_C, key=lambda t: abs(t - 25.0))
    selected = [files[t] for t in wanted]
    timings: dict[str, float] = {}

    tick = time.perf_counter()
    calibrated = pair(pairing_spec(selected, files[calibration_temp], settings.resample_period_s),
                      work / "paired_calibrated")
    nominal = pair(pairing_spec(selected, None, settings.resample_period_s), work / "paired_nominal")
    timings["pairing_s"] = time.perf_counter() - tick
    temperatures = {i: wanted[i] for i in calibrated.sample_ids}  # sample ids follow the test groups
    train_ids = [i for i in calibrated.sample_ids if temperatures[i] in settings.train_temps_C]
    test_ids = [i for i in calibrated.sample_ids if temperatures[i] in settings.test_temps_C]
    if len(train_ids) != len(settings.train_temps_C) or not test_ids:
        raise ConfigError(f"pairing left train tests {train_ids} and held-out tests {test_ids}; see "
                          f"{work / 'paired_calibrated' / 'samples.parquet'} for the failed ones")
    rows = {i: c.rows for i, c in calibrated.cells.items()}
    assignment = by_test_assignment(train_ids, test_ids, rows)

    nominal_predictions = physics_predictions(nominal)
    predictions: dict[str, dict[int, dict]] = {
        "physics_nominal": {i: nominal_predictions[i] for i in calibrated.sample_ids if i in nominal_predictions},
        "physics_calibrated": physics_predictions(calibrated)}
    tick = time.perf_counter()
    predictions["ecm"], ecm_fitted = ecm_predictions(calibrated, temperatures, train_ids, ocv_curve(data_dir))
    timings["ecm_s"] = time.perf_counter() - tick

    tick = time.perf_counter()
    calibration = Calibration(**json.loads((work / "paired_calibrated" / "manifest.json").read_text())["calibration"])
    pretrained_checkpoint, pretraining = pretrain(settings, calibration, work)
    timings["pretraining_s"] = time.perf_counter() - tick

    tick = time.perf_counter()
    trained = train_measured(settings, calibrated, assignment, pretrained_checkpoint, work / "runs" / "all")
    predictions.update({name: model_predictions(model, calibrated) for name, model in trained.items()})
    timings["measured_training_s"] = time.perf_counter() - tick

    scores = score_all(predictions, calibrated)
    curve = None
    if settings.curve:
        tick = time.perf_counter()
        curve = data_efficiency(settings, calibrated, train_ids, test_ids, temperatures, calibration_temp, rows,
                                pretrained_checkpoint, work, scores)
        timings["curve_s"] = time.perf_counter() - tick

    figures = {
        "experiment": "sim_to_real", "settings": settings.__dict__, "data_dir": str(data_dir),
        "tests": {str(i): {"file": files[temperatures[i]], "temperature_C": temperatures[i],
                           "role": "train" if i in train_ids else "held_out", "rows": rows[i],
                           "throughput_capacity_Ah": float(calibrated.samples.loc[i, "throughput_capacity_Ah"])}
                  for i in calibrated.sample_ids},
        "calibrated_on_C": calibration_temp, "calibration": calibration.values,
        "summary": {model: {"held_out": {key: mean_over(scores[model], test_ids, key) for key in
                                         ("rmse_mV", "rmse_soc_5_95_mV", "soc_mae_pct")},
                            "train": {key: mean_over(scores[model], train_ids, key) for key in
                                      ("rmse_mV", "rmse_soc_5_95_mV", "soc_mae_pct")}}
                    for model in MODELS},
        "per_test": {model: {str(i): value for i, value in scores[model].items()} for model in MODELS},
        "ecm_parameters": {str(t): p.to_dict() for t, p in sorted(ecm_fitted.items())},
        "pretraining": pretraining, "data_efficiency": curve,
        "timings_s": {k: round(v, 1) for k, v in timings.items()},
    }
    out.mkdir(parents=True, exist_ok=True)
    figures["plots"] = [str(path) for path in write_plots(calibrated, predictions, test_ids, temperatures, curve, out)]
    figures["wall_s"] = round(time.perf_counter() - started, 1)
    (out / "figures.json").write_text(json.dumps(figures, indent=1, default=_json_default))
    (out / "results.md").write_text(markdown(figures, train_ids, test_ids, temperatures) + "\n")
    return figures


def train_measured(settings: Settings, corpus: Corpus, assignment: SplitAssignment, pretrained: Path,
                   run_dir: Path) -> dict[str, TrainedModel]:
    """Black box, hybrid from scratch, pretrained hybrid as is and fine-tuned, on ``assignment``'s train tests."""
    hybrid_norm = fit_normalisation(corpus, assignment, FEATURES, "hybrid")
    black_box_norm = fit_normalisation(corpus, assignment, FEATURES, "black_box")
    from_scratch = train_config(settings, settings.epochs, settings.learning_rate)
    finetune = train_config(settings, settings.epochs, settings.finetune_learning_rate)
    pretrained_model = load_trained(pretrained, "hybrid_pretrained_zero_shot")
    black_box = {**hybrid_model(settings), "kind": "black_box"}
    return {
        "black_box": train_model("black_box", corpus, assignment, black_box_norm, black_box, from_scratch,
                                 run_dir / "black_box"),
        "hybrid_measured_only": train_model("hybrid_measured_only", corpus, assignment, hybrid_norm,
                                            hybrid_model(settings), from_scratch, run_dir / "hybrid_measured_only"),
        "hybrid_pretrained_zero_shot": pretrained_model,
        "hybrid_pretrained_finetuned": train_model(
            "hybrid_pretrained_finetuned", corpus, assignment,
            finetune_normalisation(pretrained_model.normalisation, hybrid_norm), hybrid_model(settings), finetune,
            run_dir / "hybrid_pretrained_finetuned", init_from=pretrained),
    }


def data_efficiency(settings: Settings, corpus: Corpus, train_ids: list[int], test_ids: list[int],
                    temperatures: dict[int, float], calibration_temp: float, rows: dict[int, int],
                    pretrained: Path, work: Path, scores: dict[str, dict[int, dict]]) -> dict[str, Any]:
    """Held-out error of the scratch and fine-tuned hybrids trained on the first n training
    tests (the calibration test first, then the given order), n = 1 .. all."""
    order = sorted(train_ids, key=lambda i: (temperatures[i] != calibration_temp,
                                             settings.train_temps_C.index(temperatures[i])))
    points = []
    pretrained_norm = load_trained(pretrained, "pretrained").normalisation
    for count in range(1, len(order) + 1):
        subset = order[:count]
        if count == len(order):  # the main run
            point_scores = {name: scores[name] for name in ("hybrid_measured_only", "hybrid_pretrained_finetuned")}
        else:
            assignment = by_test_assignment(subset, test_ids, rows)
            hybrid_norm = fit_normalisation(corpus, assignment, FEATURES, "hybrid")
            run_dir = work / "runs" / f"first_{count}"
            models = {
                "hybrid_measured_only": train_model(
                    "hybrid_measured_only", corpus, assignment, hybrid_norm, hybrid_model(settings),
                    train_config(settings, settings.epochs, settings.learning_rate), run_dir / "hybrid_measured_only"),
                "hybrid_pretrained_finetuned": train_model(
                    "hybrid_pretrained_finetuned", corpus, assignment,
                    finetune_normalisation(pretrained_norm, hybrid_norm), hybrid_model(settings),
                    train_config(settings, settings.epochs, settings.finetune_learning_rate),
                    run_dir / "hybrid_pretrained_finetuned", init_from=pretrained)}
            point_scores = score_all({name: model_predictions(model, corpus) for name, model in models.items()}, corpus)
        points.append({"tests": count, "temperatures_C": [temperatures[i] for i in subset],
                       **{name: {key: mean_over(point_scores[name], test_ids, key)
                                 for key in ("rmse_mV", "rmse_soc_5_95_mV")} for name in point_scores}})
    zero_shot = {key: mean_over(scores["hybrid_pretrained_zero_shot"], test_ids, key)
                 for key in ("rmse_mV", "rmse_soc_5_95_mV")}
    return {"points": points, "zero_shot": zero_shot,
            "physics_calibrated": {key: mean_over(scores["physics_calibrated"], test_ids, key)
                                   for key in ("rmse_mV", "rmse_soc_5_95_mV")}}


# --- outputs ----------------------------------------------------------------------------


def markdown(figures: dict, train_ids: list[int], test_ids: list[int], temperatures: dict[int, float]) -> str:
    held = ", ".join(f"{temperatures[i]:g}" for i in test_ids)
    seen = ", ".join(f"{temperatures[i]:g}" for i in train_ids)
    lines = [f"Held-out A123 dynamic tests at {held} °C (trained / fitted on {seen} °C; "
             f"{figures['settings']['resample_period_s']:g} s grid). Voltage RMSE [mV], SOC MAE [%].", "",
             "| model | held-out RMSE | held-out RMSE 5–95 % SOC | held-out SOC MAE | train RMSE 5–95 % SOC |",
             "|---|---|---|---|---|"]
    for model in MODELS:
        summary = figures["summary"][model]
        lines.append(f"| {LABELS[model]} | {_fmt(summary['held_out']['rmse_mV'])} "
                     f"| {_fmt(summary['held_out']['rmse_soc_5_95_mV'])} "
                     f"| {_fmt(summary['held_out']['soc_mae_pct'], 2)} "
                     f"| {_fmt(summary['train']['rmse_soc_5_95_mV'])} |")
    ids = [*train_ids, *test_ids]
    lines += ["", "Per test, RMSE over the record / inside 5–95 % SOC [mV] (* = held out):", "",
              "| model | " + " | ".join(f"{temperatures[i]:g} °C{'*' if i in test_ids else ''}" for i in ids) + " |",
              "|---" * (len(ids) + 1) + "|"]
    for model in MODELS:
        cells = [figures["per_test"][model].get(str(i)) for i in ids]
        lines.append(f"| {model} | " + " | ".join(
            "–" if c is None else f"{_fmt(c['rmse_mV'])} / {_fmt(c['rmse_soc_5_95_mV'])}" for c in cells) + " |")
    curve = figures.get("data_efficiency")
    if curve:
        lines += ["", "Data efficiency: mean held-out RMSE 5–95 % SOC [mV] against measured training tests used:",
                  "", "| tests (°C) | from scratch | pretrained + fine-tuned |", "|---|---|---|",
                  f"| 0 (synthetic only) | – | {_fmt(curve['zero_shot']['rmse_soc_5_95_mV'])} |"]
        for point in curve["points"]:
            lines.append(f"| {point['tests']} ({', '.join(f'{t:g}' for t in point['temperatures_C'])}) "
                         f"| {_fmt(point['hybrid_measured_only']['rmse_soc_5_95_mV'])} "
                         f"| {_fmt(point['hybrid_pretrained_finetuned']['rmse_soc_5_95_mV'])} |")
    return "\n".join(lines)


def _fmt(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def write_plots(corpus: Corpus, predictions: dict[str, dict[int, dict]], test_ids: list[int],
                temperatures: dict[int, float], curve: dict | None, out: Path) -> list[Path]:
    paths = []
    figure, axes = plt.subplots(len(test_ids), 1, figsize=(10, 3.2 * len(test_ids)), squeeze=False)
    for axis, sample_id in zip(axes[:, 0], test_ids):
        cell = corpus.cells[sample_id]
        hours = cell.columns[TIME] / 3600.0
        for model in MODELS:
            voltage = predictions[model][sample_id]["voltage"]
            rows = min(len(voltage), len(hours))
            axis.plot(hours[:rows], (voltage[:rows] - cell.columns[VOLTAGE][:rows]) * 1e3, lw=0.6, label=model)
        axis.set_ylim(-150, 150)
        axis.set_title(f"held-out test {temperatures[sample_id]:g} °C: prediction − measurement")
        axis.set_ylabel("error [mV]")
    axes[-1, 0].set_xlabel("time [h]")
    axes[0, 0].legend(fontsize=7, ncol=4)
    figure.tight_layout()
    paths.append(out / "held_out_errors.png")
    figure.savefig(paths[-1], dpi=120)
    plt.close(figure)
    if curve:
        figure, axis = plt.subplots(figsize=(6, 4))
        counts = [p["tests"] for p in curve["points"]]
        for name, label in (("hybrid_measured_only", "from scratch"),
                            ("hybrid_pretrained_finetuned", "pretrained + fine-tuned")):
            axis.plot(counts, [p[name]["rmse_soc_5_95_mV"] for p in curve["points"]], "o-", label=label)
        axis.axhline(curve["physics_calibrated"]["rmse_soc_5_95_mV"], color="grey", ls="--", label="calibrated physics")
        axis.axhline(curve["zero_shot"]["rmse_soc_5_95_mV"], color="tab:green", ls=":",
                     label="synthetic pretraining only")
        axis.set_xticks(counts)
        axis.set_xlabel("measured training tests used")
        axis.set_ylabel("held-out RMSE, 5–95 % SOC [mV]")
        axis.legend(fontsize=8)
        figure.tight_layout()
        paths.append(out / "data_efficiency.png")
        figure.savefig(paths[-1], dpi=120)
        plt.close(figure)
    return paths


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, tuple):
        return list(value)
    return str(value)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=default_real_data_dir())
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--train-temps", type=float, nargs="+", default=None)
    parser.add_argument("--test-temps", type=float, nargs="+", default=None)
    parser.add_argument("--resample-period-s", type=float, default=None)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--pretrain-epochs", type=int, default=None)
    parser.add_argument("--hidden", type=int, default=None)
    parser.add_argument("--synthetic-cells", type=int, default=None)
    parser.add_argument("--learning-rate", type=float, default=3e-3)
    parser.add_argument("--finetune-learning-rate", type=float, default=1e-3)
    parser.add_argument("--no-curve", action="store_true")
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def settings_from(args: argparse.Namespace) -> Settings:
    defaults = dict(train_temps_C=(-25.0, 5.0, 25.0, 45.0), test_temps_C=(-15.0, 15.0), resample_period_s=10.0,
                    epochs=40, pretrain_epochs=30, hidden_size=32, synthetic_cells=24, truncation_steps=100)
    if args.quick:
        defaults.update(QUICK)
    given = dict(train_temps_C=args.train_temps and tuple(args.train_temps),
                 test_temps_C=args.test_temps and tuple(args.test_temps), resample_period_s=args.resample_period_s,
                 epochs=args.epochs, pretrain_epochs=args.pretrain_epochs, hidden_size=args.hidden,
                 synthetic_cells=args.synthetic_cells)
    defaults.update({key: value for key, value in given.items() if value is not None})
    return Settings(**defaults, learning_rate=args.learning_rate, finetune_learning_rate=args.finetune_learning_rate,
                    curve=not args.no_curve, seed=args.seed)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the experiment; returns the figures (also written to OUT/figures.json)."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    log.setLevel(logging.INFO)
    data_dir = args.data_dir.resolve()
    os.environ[REAL_DATA_VARIABLE] = str(data_dir)  # the pairing config reads ${HYBAT_REAL_DATA}
    settings = settings_from(args)
    figures = run(settings, data_dir, args.out, args.work or args.out / "work")
    print((args.out / "results.md").read_text())
    print(json.dumps({key: figures[key] for key in ("experiment", "summary", "data_efficiency", "timings_s", "wall_s")},
                     default=_json_default))
    return figures


if __name__ == "__main__":
    main()
