"""Sim-to-real transfer on measured cycler data: physics, hybrids, black box and an ECM side by side.

Usage:
    python experiments/sim_to_real.py [--data-dir DIR] --out DIR [--quick]
        [--train-temps C ...] [--test-temps C ...] [--resample-period-s S]
        [--epochs N] [--pretrain-epochs N] [--hidden N] [--synthetic-cells N]
        [--learning-rate LR] [--validation-temp C] [--seeds N] [--no-curve] [--work DIR] [--seed N]

    --data-dir    the measured data (default: $HYBAT_REAL_DATA, else ../shared/data/real); the
                  A123 LFP dynamic tests are read from its a123_lfp_plett_dyn/ (never copied)
    --out         where results.md, figures.json and the PNGs go
    --quick       tiny settings for a smoke run (3 tests, 60 s grid, 2 epochs, 2 synthetic cells)
    --train-temps chamber temperatures [degC] of the measured training tests (default -25 5 25 45)
    --test-temps  held-out temperatures (default -15 15)
    --work        where the paired corpora, the synthetic corpus and the runs go (default:
                  OUT/work); pairings and the synthetic corpus left there are resumed
    --validation-temp  the training test used for model selection (default 5 degC: the only
                  interior training temperature besides the calibration test, so, like the
                  held-out tests, an interpolation between fitted temperatures; step 4)
    --epochs      the largest epoch budget on measured data (default 40; a quarter and a half
                  are tried too, step 4); --pretrain-epochs: on the synthetic corpus (default 20)
    --seeds       trained models are trained with seeds SEED .. SEED+N-1 (default 3); tables give
                  the mean and the standard deviation over seeds
    --no-curve    skip the data-efficiency curve

The data hold one A123 cell (script 1 of each temperature: full to ~10 % SOC with a
UDDS-derived profile), so the split is by test: held-out tests are other temperatures of the
same cell. Steps:

1. pair the selected tests with sim.measured.pairing.pair_measured (configs/measured/a123_dynamic.yaml,
   resampled): once with the nominal Prada2013 cell, once calibrated on the training test
   nearest 25 degC (the calibration sees no held-out test);
2. fit the ECM (hybrid.baselines.ecm: OCV from the 25 degC C/30 tests in ocv/, R0 + 2 RC + one-state
   hysteresis + capacity per training temperature, linearly interpolated for held-out ones);
3. generate the synthetic corpus configs/corpus/sim_to_real.yaml with the calibrated cell
   as its physics model, plus one protocol per measured training test that replays that
   test's current (inputs only; the plant's voltage is simulated), and pretrain the residual
   hybrid on it (once per seed);
4. model selection on a validation test, never on a held-out one: for every seed, fit on the
   training tests except the one at --validation-temp and score the final weights on that one
   (RMSE inside 5-95 % SOC, the tables' figure). Each trained model gets the epoch budget
   (a quarter, half or all of --epochs) with the lowest mean over seeds; the fine-tuned hybrid
   also the recipe among FINETUNE_CANDIDATES (learning rate, head only, L2-SP toward the
   pretrained weights) or "no fine-tuning". Then train on all measured training tests with
   those choices and keep the final weights: a hybrid from scratch, the pretrained hybrid
   fine-tuned, a black-box RNN. Fine-tuning keeps the pretrained model's whole normalisation,
   so it starts exactly at the synthetic-only model;
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
import torch  # noqa: E402

from hybrid.data import (CHARGE, CURRENT, PHYSICS_SOC, PHYSICS_VOLTAGE, SOC, TIME, VOLTAGE, Corpus,  # noqa: E402
                         FeatureOptions, SplitAssignment, SplitOptions, assign_splits, fit_normalisation, load_corpus,
                         make_batches)
from hybrid.baselines import ECMParameters, ECMRecord, OCVCurve, fit_ecm, interpolate_parameters, simulate_ecm  # noqa: E402
from hybrid.evaluate import TrainedModel, load_trained, predict_record  # noqa: E402
from hybrid.models import build_model, config_from_dict, config_to_dict  # noqa: E402
from hybrid.train import CHECKPOINT  # noqa: E402
from hybrid.train import TrainConfig, fit, load_checkpoint, seed_everything, torch_threads  # noqa: E402
from sim.measured import Calibration  # noqa: E402
from sim.config import load_config  # noqa: E402
from sim.corpus import CorpusSpec, generate_corpus  # noqa: E402
from sim.errors import ConfigError  # noqa: E402
from sim.measured import REAL_DATA_VARIABLE, PairingSpec, default_real_data_dir, pair_measured  # noqa: E402

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
    truncation_steps: int
    validation_temp_C: float
    seeds: int
    curve: bool
    seed: int

    @property
    def seed_list(self) -> list[int]:
        return [self.seed + k for k in range(self.seeds)]


QUICK = dict(train_temps_C=(5.0, 25.0), test_temps_C=(15.0,), resample_period_s=60.0, epochs=2, pretrain_epochs=2,
             hidden_size=8, synthetic_cells=2, truncation_steps=50, seeds=1)
TRAINED = ("black_box", "hybrid_measured_only", "hybrid_pretrained_finetuned")
LAST = "last.pt"  # measured-data runs keep their final weights: the epoch budget is chosen on validation


@dataclass(frozen=True)
class FineTune:
    """A fine-tuning recipe: AdamW learning rate; freeze_rnn trains the linear head only; l2sp
    adds l2sp * (w - w_pretrained) to every gradient (the L2-SP penalty l2sp/2 |w - w0|^2)."""

    name: str
    learning_rate: float
    freeze_rnn: bool = False
    l2sp: float = 0.0


FINETUNE_CANDIDATES = (FineTune("lr 1e-3", 1e-3), FineTune("lr 3e-4", 3e-4), FineTune("lr 1e-4", 1e-4),
                       FineTune("head only, lr 1e-3", 1e-3, freeze_rnn=True),
                       FineTune("L2-SP 0.1, lr 1e-3", 1e-3, l2sp=0.1))


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


def by_test_assignment(train_ids: list[int], test_ids: list[int], rows: dict[int, int],
                       val_ids: list[int] | None = None) -> SplitAssignment:
    """Whole tests per split; without ``val_ids`` the training tests also serve as validation
    (the epoch count is then fixed beforehand, see select_by_validation); held-out tests are "test"."""
    ranges = {"train": {i: (0, rows[i]) for i in train_ids},
              "val": {i: (0, rows[i]) for i in (val_ids or train_ids)}}
    if test_ids:
        ranges["test"] = {i: (0, rows[i]) for i in test_ids}
    return SplitAssignment(ranges, {})


def train_model(name: str, corpus: Corpus, assignment: SplitAssignment, normalisation: dict, model: dict,
                config: TrainConfig, run_dir: Path, init_from: Path | None = None,
                recipe: FineTune | None = None, checkpoint: str = CHECKPOINT) -> TrainedModel:
    """Train ``model`` (a config dict without sizes) on the train split, validating on val;
    ``init_from`` starts from that checkpoint's weights (fine-tuning with ``recipe``). Returns
    ``checkpoint`` loaded (best.pt: lowest val loss; LAST: the weights after the last epoch).
    A run left in ``run_dir`` by the same command is reused when finished, resumed otherwise."""
    finished = run_dir / "finished.json"
    if finished.exists():
        return load_trained(run_dir / checkpoint, name)
    model_config = config_from_dict({**model, "input_size": len(normalisation["features"]),
                                     "output_size": len(normalisation["targets"])})
    seed_everything(config.seed)
    network = build_model(model_config)
    if init_from is not None:
        network.load_state_dict(load_checkpoint(init_from)["model_state"])
        if recipe is not None and recipe.freeze_rnn:
            network.rnn.requires_grad_(False)
        if recipe is not None and recipe.l2sp > 0:
            anchor_to_current_weights(network, recipe.l2sp)
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
    return load_trained(run_dir / checkpoint, name)


def anchor_to_current_weights(network: torch.nn.Module, strength: float) -> None:
    """L2-SP: add ``strength`` * (w - w0) to each trainable weight's gradient, w0 = its value now."""
    for parameter in network.parameters():
        if parameter.requires_grad:
            start = parameter.detach().clone()
            parameter.register_hook(lambda grad, p=parameter, w0=start: grad + strength * (p.detach() - w0))


def train_config(settings: Settings, epochs: int, learning_rate: float, seed: int) -> TrainConfig:
    return TrainConfig(epochs=epochs, batch_size=8, truncation_steps=settings.truncation_steps,
                       learning_rate=learning_rate, schedule="cosine", grad_clip=1.0,
                       early_stopping_patience=max(epochs, 1), seed=seed)


def profile_protocols(corpus: Corpus, train_ids: list[int], folder: Path) -> list[dict]:
    """One corpus protocol per measured training test that replays its current (written to
    ``folder`` as CSV), scaled to the same C-rate of the simulated cell: the measured tests are
    ~10-14 h, net ~C/12 with strong regenerative charge and 40 % rest, which the generic drive
    cycles (net C/5-1C, little charge) do not resemble."""
    folder.mkdir(parents=True, exist_ok=True)
    protocols = []
    for sample_id in train_ids:
        cell = corpus.cells[sample_id]
        path = folder / f"test_{sample_id}.csv"
        if not path.exists():
            pd.DataFrame({"time_s": cell.columns[TIME], "current_A": cell.columns[CURRENT]}).to_csv(path, index=False)
        peak_c_rate = float(np.max(np.abs(cell.columns[CURRENT])) / corpus.samples.loc[sample_id, "physics_capacity_Ah"])
        protocols.append({"weight": 1.0, "protocol": {"kind": "dynamic", "current_csv": str(path),
                                                      "peak_c_rate": round(peak_c_rate, 3)}})
    return protocols


def synthetic_corpus(settings: Settings, calibration: Calibration, measured: Corpus, train_ids: list[int],
                     work: Path) -> tuple[Corpus, dict]:
    """Generate (or resume) configs/corpus/sim_to_real.yaml with the calibrated cell as physics and
    the training tests' current profiles added to its protocols; returns (corpus, facts)."""
    spec = load_config(CORPUS_CONFIG, CorpusSpec).model_dump()
    spec = CorpusSpec.model_validate({
        **spec, "cells": settings.synthetic_cells, "cell": calibration.apply(CorpusSpec(**spec).cell).model_dump(),
        "protocols": [*spec["protocols"], *profile_protocols(measured, train_ids, work / "profiles")]})
    out = work / "synthetic_corpus"
    started = time.perf_counter()
    manifest = generate_corpus(spec, out, resume=out.exists(), progress=False)
    corpus = load_corpus(out)
    for cell in corpus.cells.values():  # the measured corpus's grid starts at 0 s too
        cell.columns[TIME] = cell.columns[TIME] - cell.columns[TIME][0]
    protocols = corpus.samples["protocol"].astype(str)
    return corpus, {"cells": manifest["counts"], "corpus_wall_s": round(time.perf_counter() - started, 1),
                    "rows": int(sum(c.rows for c in corpus.cells.values())),
                    "measured_profile_cells": int(protocols.str.contains("profiles").sum())}


def pretrain(settings: Settings, corpus: Corpus, seed: int, work: Path) -> tuple[Path, dict]:
    """Pretrain the residual hybrid on the synthetic corpus; returns (checkpoint, facts)."""
    if len(corpus.cells) >= 4:
        assignment = assign_splits(corpus, SplitOptions(seed=settings.seed, val_fraction=0.2, test_fraction=0.0))
    else:  # too few cells to spare one: validate on the training cells
        ids = corpus.sample_ids
        assignment = by_test_assignment(ids, [], {i: corpus.cells[i].rows for i in ids})
    normalisation = fit_normalisation(corpus, assignment, FEATURES, "hybrid")
    run_dir = work / "runs" / f"seed{seed}" / "pretrained"
    trained = train_model("pretrained", corpus, assignment, normalisation, hybrid_model(settings),
                          train_config(settings, settings.pretrain_epochs, settings.learning_rate, seed), run_dir)
    return run_dir / CHECKPOINT, {"train_cells": assignment.sample_ids("train"),
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


def model_predictions(trained: TrainedModel, corpus: Corpus, ids: list[int] | None = None) -> dict[int, dict]:
    """{test: {voltage, soc}} of ``trained`` on the tests ``ids`` (default: all)."""
    out = {}
    for sample_id, cell in corpus.cells.items():
        if ids is not None and sample_id not in ids:
            continue
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


KEYS = ("rmse_mV", "rmse_soc_5_95_mV", "soc_mae_pct")


def over_seeds(values: list[float | None]) -> dict[str, float | None]:
    """Mean and (population) standard deviation over seeds of per-seed figures."""
    kept = [v for v in values if v is not None]
    return {"mean": float(np.mean(kept)) if kept else None, "sd": float(np.std(kept)) if kept else None}


def summarise(per_seed: list[dict[int, dict]], ids: list[int]) -> dict[str, dict[str, float | None]]:
    """{key: {mean, sd}} of the test-averaged figure over seeds."""
    return {key: over_seeds([mean_over(scores, ids, key) for scores in per_seed]) for key in KEYS}


# --- the experiment ---------------------------------------------------------------------


def run(settings: Settings, data_dir: Path, out: Path, work: Path) -> dict[str, Any]:
    started = time.perf_counter()
    files = dynamic_tests(data_dir)
    wanted = [*settings.train_temps_C, *settings.test_temps_C]
    missing = [t for t in wanted if t not in files]
    if missing or set(settings.train_temps_C) & set(settings.test_temps_C):
        raise ConfigError(f"temperatures: train {settings.train_temps_C}, test {settings.test_temps_C}; allowed: "
                          f"disjoint sets from {sorted(files)} degC")
    if settings.validation_temp_C not in settings.train_temps_C or len(settings.train_temps_C) < 2:
        raise ConfigError(f"validation temperature {settings.validation_temp_C} degC: allowed: one of the training "
                          f"temperatures {settings.train_temps_C} (at least two)")
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
    fixed: dict[str, dict[int, dict]] = {
        "physics_nominal": {i: nominal_predictions[i] for i in calibrated.sample_ids if i in nominal_predictions},
        "physics_calibrated": physics_predictions(calibrated)}
    tick = time.perf_counter()
    fixed["ecm"], ecm_fitted = ecm_predictions(calibrated, temperatures, train_ids, ocv_curve(data_dir))
    timings["ecm_s"] = time.perf_counter() - tick
    fixed_scores = score_all(fixed, calibrated)

    tick = time.perf_counter()
    calibration = Calibration(**json.loads((work / "paired_calibrated" / "manifest.json").read_text())["calibration"])
    synthetic, corpus_facts = synthetic_corpus(settings, calibration, calibrated, train_ids, work)
    timings["synthetic_corpus_s"] = time.perf_counter() - tick
    tick = time.perf_counter()
    pretrained, pretraining = {}, {"corpus": corpus_facts}
    for seed in settings.seed_list:
        pretrained[seed], pretraining[f"seed{seed}"] = pretrain(settings, synthetic, seed, work)
    timings["pretraining_s"] = time.perf_counter() - tick

    tick = time.perf_counter()
    selection = select_by_validation(settings, calibrated, train_ids, temperatures, rows, pretrained,
                                     work / "runs" / "validation")
    timings["validation_s"] = time.perf_counter() - tick

    tick = time.perf_counter()
    per_seed: dict[str, list[dict[int, dict]]] = {model: [] for model in (*TRAINED, "hybrid_pretrained_zero_shot")}
    first_predictions: dict[str, dict[int, dict]] = {}
    for seed in settings.seed_list:
        trained = train_measured(settings, calibrated, assignment, pretrained[seed], selection, seed,
                                 work / "runs" / f"seed{seed}" / "all")
        predictions = {name: model_predictions(model, calibrated) for name, model in trained.items()}
        first_predictions = first_predictions or predictions
        for name, by_test in score_all(predictions, calibrated).items():
            per_seed[name].append(by_test)
    timings["measured_training_s"] = time.perf_counter() - tick
    for name, by_test in fixed_scores.items():
        per_seed[name] = [by_test]

    curve = None
    if settings.curve:
        tick = time.perf_counter()
        curve = data_efficiency(settings, calibrated, train_ids, test_ids, temperatures, calibration_temp, rows,
                                pretrained, selection, work, per_seed)
        timings["curve_s"] = time.perf_counter() - tick

    ids = [*train_ids, *test_ids]
    figures = {
        "experiment": "sim_to_real", "settings": {**settings.__dict__, "seed_list": settings.seed_list},
        "data_dir": str(data_dir),
        "tests": {str(i): {"file": files[temperatures[i]], "temperature_C": temperatures[i],
                           "role": "train" if i in train_ids else "held_out", "rows": rows[i],
                           "throughput_capacity_Ah": float(calibrated.samples.loc[i, "throughput_capacity_Ah"])}
                  for i in calibrated.sample_ids},
        "calibrated_on_C": calibration_temp, "calibration": calibration.values,
        "selection": selection_summary(selection),
        # mean over seeds of the test-averaged figure (deterministic models: one "seed")
        "summary": {model: {"held_out": {k: v["mean"] for k, v in summarise(per_seed[model], test_ids).items()},
                            "train": {k: v["mean"] for k, v in summarise(per_seed[model], train_ids).items()},
                            "held_out_sd": {k: v["sd"] for k, v in summarise(per_seed[model], test_ids).items()},
                            "train_sd": {k: v["sd"] for k, v in summarise(per_seed[model], train_ids).items()},
                            "seeds": len(per_seed[model])}
                    for model in MODELS},
        "per_test": {model: {str(i): {key: over_seeds([scores[i][key] for scores in per_seed[model] if i in scores])
                                      for key in KEYS} for i in ids}
                     for model in MODELS},
        "per_test_per_seed": {model: [{str(i): value for i, value in scores.items()} for scores in per_seed[model]]
                              for model in MODELS},
        "ecm_parameters": {str(t): p.to_dict() for t, p in sorted(ecm_fitted.items())},
        "pretraining": pretraining, "data_efficiency": curve,
        "timings_s": {k: round(v, 1) for k, v in timings.items()},
    }
    out.mkdir(parents=True, exist_ok=True)
    predictions = {**fixed, **first_predictions}
    figures["plots"] = [str(path) for path in write_plots(calibrated, predictions, test_ids, temperatures, curve, out)]
    figures["wall_s"] = round(time.perf_counter() - started, 1)
    (out / "figures.json").write_text(json.dumps(figures, indent=1, default=_json_default))
    (out / "results.md").write_text(markdown(figures, train_ids, test_ids, temperatures) + "\n")
    return figures


@dataclass
class Selection:
    """What the validation test chose: the fine-tuning recipe (None: keep the pretrained
    weights) and each trained model's epoch budget (0 for the fine-tuned hybrid: no fine-tuning)."""

    recipe: FineTune | None
    epochs: dict[str, int]
    validation_temp_C: float
    candidates: list[dict]


def epoch_budgets(settings: Settings) -> list[int]:
    """The epoch budgets tried on the validation test: a quarter, half and all of --epochs."""
    return sorted({max(1, settings.epochs // 4), max(1, settings.epochs // 2), settings.epochs})


def select_by_validation(settings: Settings, corpus: Corpus, train_ids: list[int], temperatures: dict[int, float],
                         rows: dict[int, int], pretrained: dict[int, Path], run_dir: Path) -> Selection:
    """Fit on the training tests but the one at settings.validation_temp_C, for every seed, and
    score the final weights (last.pt) on that one by RMSE inside 5-95 % SOC, the figure the
    tables report. Each model gets the epoch budget with the lowest mean over seeds; the
    fine-tuned hybrid also the recipe, "no fine-tuning" (the pretrained weights) included."""
    val_ids = [i for i in train_ids if temperatures[i] == settings.validation_temp_C]
    fit_ids = [i for i in train_ids if i not in val_ids]
    assignment = by_test_assignment(fit_ids, [], rows, val_ids=val_ids)
    norms = {family: fit_normalisation(corpus, assignment, FEATURES, family) for family in ("hybrid", "black_box")}
    models = {"black_box": {**hybrid_model(settings), "kind": "black_box"}, "hybrid_measured_only": hybrid_model(settings)}
    errors: dict[tuple[str, str, int], list[float]] = {}

    def validate(key: tuple[str, str, int], model: TrainedModel) -> None:
        errors.setdefault(key, []).append(
            mean_over(score_all({"m": model_predictions(model, corpus, val_ids)}, corpus)["m"], val_ids,
                      "rmse_soc_5_95_mV"))

    for seed in settings.seed_list:
        pretrained_model = load_trained(pretrained[seed], "pretrained")
        validate(("hybrid_pretrained_finetuned", "no fine-tuning", 0), pretrained_model)
        pretrained_norm = pretrained_model.normalisation
        for epochs in epoch_budgets(settings):
            folder = run_dir / f"seed{seed}" / f"{epochs}_epochs"
            for name, model in models.items():
                family = "black_box" if name == "black_box" else "hybrid"
                validate((name, "from scratch", epochs), train_model(
                    name, corpus, assignment, norms[family], model,
                    train_config(settings, epochs, settings.learning_rate, seed), folder / name, checkpoint=LAST))
            for recipe in FINETUNE_CANDIDATES:
                validate(("hybrid_pretrained_finetuned", recipe.name, epochs), train_model(
                    recipe.name, corpus, assignment, pretrained_norm, hybrid_model(settings),
                    train_config(settings, epochs, recipe.learning_rate, seed),
                    folder / recipe.name.replace(" ", "_").replace(",", ""), init_from=pretrained[seed],
                    recipe=recipe, checkpoint=LAST))
    candidates = [{"model": model, "recipe": recipe, "epochs": epochs, **over_seeds(values)}
                  for (model, recipe, epochs), values in errors.items()]
    chosen = {model: min((c for c in candidates if c["model"] == model), key=lambda c: c["mean"])
              for model in TRAINED}
    recipes = {recipe.name: recipe for recipe in FINETUNE_CANDIDATES}
    finetuned = chosen["hybrid_pretrained_finetuned"]
    log.info("validation at %g degC chose %s", settings.validation_temp_C,
             {model: (c["recipe"], c["epochs"]) for model, c in chosen.items()})
    return Selection(recipes.get(finetuned["recipe"]), {model: c["epochs"] for model, c in chosen.items()},
                     settings.validation_temp_C, candidates)


def selection_summary(selection: Selection) -> dict:
    return {"validation_temp_C": selection.validation_temp_C,
            "recipe": selection.recipe.__dict__ if selection.recipe else {"name": "no fine-tuning"},
            "epochs": selection.epochs, "candidates": selection.candidates}


def train_measured(settings: Settings, corpus: Corpus, assignment: SplitAssignment, pretrained: Path,
                   selection: Selection, seed: int, run_dir: Path) -> dict[str, TrainedModel]:
    """Black box, hybrid from scratch, pretrained hybrid as is and fine-tuned, on ``assignment``'s
    train tests, for the epochs and the recipe the validation test chose."""
    hybrid_norm = fit_normalisation(corpus, assignment, FEATURES, "hybrid")
    black_box_norm = fit_normalisation(corpus, assignment, FEATURES, "black_box")
    pretrained_model = load_trained(pretrained, "hybrid_pretrained_zero_shot")
    return {
        "black_box": train_model("black_box", corpus, assignment, black_box_norm,
                                 {**hybrid_model(settings), "kind": "black_box"},
                                 train_config(settings, selection.epochs["black_box"], settings.learning_rate, seed),
                                 run_dir / "black_box", checkpoint=LAST),
        "hybrid_measured_only": train_model(
            "hybrid_measured_only", corpus, assignment, hybrid_norm, hybrid_model(settings),
            train_config(settings, selection.epochs["hybrid_measured_only"], settings.learning_rate, seed),
            run_dir / "hybrid_measured_only", checkpoint=LAST),
        "hybrid_pretrained_zero_shot": pretrained_model,
        "hybrid_pretrained_finetuned": finetune(settings, corpus, assignment, pretrained, selection, seed,
                                                run_dir / "hybrid_pretrained_finetuned"),
    }


def finetune(settings: Settings, corpus: Corpus, assignment: SplitAssignment, pretrained: Path,
             selection: Selection, seed: int, run_dir: Path) -> TrainedModel:
    """The pretrained hybrid fine-tuned with the chosen recipe, in the pretrained normalisation
    (so epoch 0 is the synthetic-only model); 0 chosen epochs: the pretrained model as is."""
    epochs = selection.epochs["hybrid_pretrained_finetuned"]
    if selection.recipe is None or epochs == 0:
        return load_trained(pretrained, "hybrid_pretrained_finetuned")
    return train_model("hybrid_pretrained_finetuned", corpus, assignment,
                       load_trained(pretrained, "pretrained").normalisation, hybrid_model(settings),
                       train_config(settings, epochs, selection.recipe.learning_rate, seed), run_dir,
                       init_from=pretrained, recipe=selection.recipe, checkpoint=LAST)


def data_efficiency(settings: Settings, corpus: Corpus, train_ids: list[int], test_ids: list[int],
                    temperatures: dict[int, float], calibration_temp: float, rows: dict[int, int],
                    pretrained: dict[int, Path], selection: Selection, work: Path,
                    per_seed: dict[str, list[dict[int, dict]]]) -> dict[str, Any]:
    """Held-out error (mean and sd over seeds) of the scratch and fine-tuned hybrids trained on
    the first n training tests (the calibration test first, then the given order), n = 1 .. all,
    with the epochs and recipe of the validation test."""
    order = sorted(train_ids, key=lambda i: (temperatures[i] != calibration_temp,
                                             settings.train_temps_C.index(temperatures[i])))
    names = ("hybrid_measured_only", "hybrid_pretrained_finetuned")
    points = []
    for count in range(1, len(order) + 1):
        subset = order[:count]
        seed_scores: dict[str, list[dict[int, dict]]] = {name: [] for name in names}
        for k, seed in enumerate(settings.seed_list):
            if count == len(order):  # the main run
                for name in names:
                    seed_scores[name].append(per_seed[name][k])
                continue
            assignment = by_test_assignment(subset, test_ids, rows)
            run_dir = work / "runs" / f"seed{seed}" / f"first_{count}"
            models = {
                "hybrid_measured_only": train_model(
                    "hybrid_measured_only", corpus, assignment, fit_normalisation(corpus, assignment, FEATURES, "hybrid"),
                    hybrid_model(settings),
                    train_config(settings, selection.epochs["hybrid_measured_only"], settings.learning_rate, seed),
                    run_dir / "hybrid_measured_only", checkpoint=LAST),
                "hybrid_pretrained_finetuned": finetune(settings, corpus, assignment, pretrained[seed], selection,
                                                        seed, run_dir / "hybrid_pretrained_finetuned")}
            for name, by_test in score_all({n: model_predictions(m, corpus) for n, m in models.items()},
                                           corpus).items():
                seed_scores[name].append(by_test)
        points.append({"tests": count, "temperatures_C": [temperatures[i] for i in subset],
                       **{name: summarise(seed_scores[name], test_ids) for name in names}})
    return {"points": points, "zero_shot": summarise(per_seed["hybrid_pretrained_zero_shot"], test_ids),
            "physics_calibrated": summarise(per_seed["physics_calibrated"], test_ids)}


# --- outputs ----------------------------------------------------------------------------


def markdown(figures: dict, train_ids: list[int], test_ids: list[int], temperatures: dict[int, float]) -> str:
    held = ", ".join(f"{temperatures[i]:g}" for i in test_ids)
    seen = ", ".join(f"{temperatures[i]:g}" for i in train_ids)
    seeds = figures["settings"]["seeds"]
    selection = figures["selection"]
    lines = [f"Held-out A123 dynamic tests at {held} °C (trained / fitted on {seen} °C; "
             f"{figures['settings']['resample_period_s']:g} s grid). Voltage RMSE [mV], SOC MAE [%]; trained models: "
             f"mean ± sd over {seeds} seed(s) of the test-averaged figure.", "",
             "| model | held-out RMSE | held-out RMSE 5–95 % SOC | held-out SOC MAE | train RMSE 5–95 % SOC |",
             "|---|---|---|---|---|"]
    for model in MODELS:
        summary = figures["summary"][model]
        lines.append(f"| {LABELS[model]} | {_pm(summary, 'held_out', 'rmse_mV')} "
                     f"| {_pm(summary, 'held_out', 'rmse_soc_5_95_mV')} "
                     f"| {_pm(summary, 'held_out', 'soc_mae_pct', 2)} "
                     f"| {_pm(summary, 'train', 'rmse_soc_5_95_mV')} |")
    ids = [*train_ids, *test_ids]
    lines += ["", "Per test, RMSE over the record / inside 5–95 % SOC [mV] (* = held out; mean over seeds):", "",
              "| model | " + " | ".join(f"{temperatures[i]:g} °C{'*' if i in test_ids else ''}" for i in ids) + " |",
              "|---" * (len(ids) + 1) + "|"]
    for model in MODELS:
        cells = [figures["per_test"][model].get(str(i)) for i in ids]
        lines.append(f"| {model} | " + " | ".join(
            f"{_fmt(c['rmse_mV']['mean'])} / {_fmt(c['rmse_soc_5_95_mV']['mean'])}"
            + (f" ±{c['rmse_soc_5_95_mV']['sd']:.1f}" if figures["summary"][model]["seeds"] > 1 else "")
            for c in cells) + " |")
    lines += ["", f"Model selection on the {selection['validation_temp_C']:g} °C training test (fitted on the other "
              "training tests, final weights, mean ± sd over seeds; the held-out tests play no part). Chosen: "
              f"fine-tuning \"{selection['recipe']['name']}\"; epochs {selection['epochs']}.", "",
              "| model | recipe | epochs | validation RMSE 5–95 % SOC [mV] |", "|---|---|---|---|"]
    for c in sorted(selection["candidates"], key=lambda c: (c["model"], c["recipe"], c["epochs"])):
        lines.append(f"| {c['model']} | {c['recipe']} | {c['epochs']} | {_fmt(c['mean'])} ± {_fmt(c['sd'])} |")
    curve = figures.get("data_efficiency")
    if curve:
        lines += ["", "Data efficiency: mean held-out RMSE 5–95 % SOC [mV] (± sd over seeds) against measured "
                  "training tests used:", "", "| tests (°C) | from scratch | pretrained + fine-tuned |", "|---|---|---|",
                  f"| 0 (synthetic only) | – | {_pm(curve, 'zero_shot', 'rmse_soc_5_95_mV', split=True)} |"]
        for point in curve["points"]:
            lines.append(f"| {point['tests']} ({', '.join(f'{t:g}' for t in point['temperatures_C'])}) "
                         f"| {_pm(point, 'hybrid_measured_only', 'rmse_soc_5_95_mV', split=True)} "
                         f"| {_pm(point, 'hybrid_pretrained_finetuned', 'rmse_soc_5_95_mV', split=True)} |")
    return "\n".join(lines)


def _pm(block: dict, part: str, key: str, digits: int = 1, split: bool = False) -> str:
    """"mean ± sd" from a summary ({part: {key: mean}, part_sd: {key: sd}}) or, with ``split``,
    from {part: {key: {mean, sd}}}; the sd is left out for a single seed."""
    if split:
        mean, sd = block[part][key]["mean"], block[part][key]["sd"]
        several = True
    else:
        mean, sd, several = block[part][key], block[f"{part}_sd"][key], block["seeds"] > 1
    if mean is None:
        return "–"
    return f"{mean:.{digits}f} ± {sd:.{digits}f}" if several and sd is not None else f"{mean:.{digits}f}"


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
            axis.errorbar(counts, [p[name]["rmse_soc_5_95_mV"]["mean"] for p in curve["points"]],
                          yerr=[p[name]["rmse_soc_5_95_mV"]["sd"] or 0.0 for p in curve["points"]],
                          fmt="o-", capsize=3, label=label)
        axis.axhline(curve["physics_calibrated"]["rmse_soc_5_95_mV"]["mean"], color="grey", ls="--",
                     label="calibrated physics")
        axis.axhline(curve["zero_shot"]["rmse_soc_5_95_mV"]["mean"], color="tab:green", ls=":",
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
    parser.add_argument("--validation-temp", type=float, default=5.0)
    parser.add_argument("--seeds", type=int, default=None)
    parser.add_argument("--no-curve", action="store_true")
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def settings_from(args: argparse.Namespace) -> Settings:
    defaults = dict(train_temps_C=(-25.0, 5.0, 25.0, 45.0), test_temps_C=(-15.0, 15.0), resample_period_s=10.0,
                    epochs=40, pretrain_epochs=20, hidden_size=32, synthetic_cells=24, truncation_steps=100, seeds=3)
    if args.quick:
        defaults.update(QUICK)
    given = dict(train_temps_C=args.train_temps and tuple(args.train_temps),
                 test_temps_C=args.test_temps and tuple(args.test_temps), resample_period_s=args.resample_period_s,
                 epochs=args.epochs, pretrain_epochs=args.pretrain_epochs, hidden_size=args.hidden,
                 synthetic_cells=args.synthetic_cells, seeds=args.seeds)
    defaults.update({key: value for key, value in given.items() if value is not None})
    return Settings(**defaults, learning_rate=args.learning_rate, validation_temp_C=args.validation_temp,
                    curve=not args.no_curve, seed=args.seed)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the experiment; returns the figures (also written to OUT/figures.json)."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    log.setLevel(logging.INFO)
    data_dir = args.data_dir.resolve()
    os.environ[REAL_DATA_VARIABLE] = str(data_dir)  # the pairing config reads ${HYBAT_REAL_DATA}
    settings = settings_from(args)
    with torch_threads(1):  # predictions too: small RNNs gain nothing from more (see TrainConfig.threads)
        figures = run(settings, data_dir, args.out, args.work or args.out / "work")
    print((args.out / "results.md").read_text())
    print(json.dumps({key: figures[key] for key in ("experiment", "summary", "data_efficiency", "timings_s", "wall_s")},
                     default=_json_default))
    return figures


if __name__ == "__main__":
    main()
