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
                  OUT/work); pairings, the synthetic corpus and runs left there are resumed
    --validation-temp  the training test that selects models (default 5 degC: the only interior
                  training temperature besides the calibration test, like the held-out tests)
    --epochs      the largest epoch budget on measured data (default 40; a quarter and a half
                  are tried too); --pretrain-epochs: on the synthetic corpus (default 20)
    --seeds       train every trained model with seeds SEED .. SEED+N-1 (default 3); tables: mean ± sd
    --no-curve    skip the data-efficiency curve

The data hold one A123 cell (script 1 per temperature: full to ~10 % SOC, UDDS-derived), so
held-out tests are other temperatures of the same cell. Physics: nominal Prada2013 and calibrated on
the training test nearest 25 degC (configs/measured/a123_dynamic.yaml); ECM: hybrid.baselines (OCV
from the 25 degC C/30 tests); the rest is hybrid.transfer.transfer on configs/corpus/sim_to_real.yaml
plus the training tests' currents. Scores per test: voltage RMSE [mV] over the record and inside
5-95 % SOC, SOC MAE [%] (reference SOC: coulomb counting from full). Prints the Markdown table and
one JSON line of figures.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd

from hybrid.baselines import ecm_predictions, ocv_from_slow_tests
from hybrid.data import CHARGE, SOC, Corpus, FeatureOptions, load_corpus
from hybrid.evaluate import (Predictions, error_traces, format_mean_sd, json_safe, markdown_table, per_record_table,
                             physics_prediction, score_all, score_tables, summarise, summary_table)
from hybrid.train import torch_threads
from hybrid.transfer import (FINETUNED, SCRATCH, ZERO_SHOT, TransferOptions, candidates_table, plot_data_efficiency,
                             transfer)
from sim.config import load_config
from sim.corpus import CorpusSpec
from sim.errors import ConfigError
from sim.measured import REAL_DATA_VARIABLE, Calibration, PairingSpec, default_real_data_dir, pair_measured

ROOT = Path(__file__).resolve().parents[1]
PAIRING_CONFIG = ROOT / "configs" / "measured" / "a123_dynamic.yaml"
CORPUS_CONFIG = ROOT / "configs" / "corpus" / "sim_to_real.yaml"
DATASET = "a123_lfp_plett_dyn"
DYNAMIC_SCRIPT = "script1"
# The physics outputs both corpora carry and that vary (LLI and SEI are constant without ageing).
PHYSICS_FEATURES = ["Physics voltage [V]", "Physics cell temperature [K]", "Physics state of charge",
                    "Physics X-averaged negative particle surface stoichiometry",
                    "Physics X-averaged positive particle surface stoichiometry",
                    "Physics X-averaged negative electrode surface potential difference [V]"]
FEATURES = FeatureOptions(physics_columns=PHYSICS_FEATURES, design=False, time_step=True, soc_head=True)
MODELS = ("physics_nominal", "physics_calibrated", "ecm", "black_box", SCRATCH, ZERO_SHOT, FINETUNED)
LABELS = {"physics_nominal": "(1) physics only, nominal Prada2013", "physics_calibrated": "(2) physics only, calibrated",
          SCRATCH: "(3) hybrid, measured data only", ZERO_SHOT: "(4a) hybrid, synthetic pretraining only",
          FINETUNED: "(4) hybrid, pretrained + fine-tuned", "black_box": "(5) black-box RNN",
          "ecm": "(6) ECM: OCV + R0 + 2 RC + hysteresis"}


@dataclass(frozen=True)
class Settings:
    """The experiment's knobs (see the usage block); temperatures in degC, periods in s."""

    train_temps_C: tuple[float, ...] = (-25.0, 5.0, 25.0, 45.0)
    test_temps_C: tuple[float, ...] = (-15.0, 15.0)
    resample_period_s: float = 10.0
    epochs: int = 40
    pretrain_epochs: int = 20
    hidden_size: int = 32
    synthetic_cells: int = 24
    learning_rate: float = 3e-3
    truncation_steps: int = 100
    validation_temp_C: float = 5.0
    seeds: int = 3
    curve: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        if (set(self.train_temps_C) & set(self.test_temps_C) or len(self.train_temps_C) < 2
                or self.validation_temp_C not in self.train_temps_C):
            raise ConfigError(f"temperatures: train {self.train_temps_C}, test {self.test_temps_C}, validation "
                              f"{self.validation_temp_C} degC; allowed: two or more training temperatures, none of them "
                              "held out, the validation temperature one of them")

    @property
    def seed_list(self) -> list[int]:
        return [self.seed + k for k in range(self.seeds)]

    def options(self) -> TransferOptions:
        """How hybrid.transfer trains: an LSTM hybrid of hidden_size, FEATURES, these epochs and seeds."""
        model = {"kind": "residual_rnn", "cell": "lstm", "hidden_size": self.hidden_size, "layers": 1}
        return TransferOptions(hybrid_model=model, features=FEATURES, epochs=self.epochs,
                               pretrain_epochs=self.pretrain_epochs, learning_rate=self.learning_rate,
                               truncation_steps=self.truncation_steps, seeds=tuple(self.seed_list), split_seed=self.seed)


QUICK = dict(train_temps_C=(5.0, 25.0), test_temps_C=(15.0,), resample_period_s=60.0, epochs=2, pretrain_epochs=2,
             hidden_size=8, synthetic_cells=2, truncation_steps=50, seeds=1)


def dynamic_tests(data_dir: Path) -> dict[float, str]:
    """Chamber temperature [degC] -> file (relative to the dataset folder) of every script-1 test."""
    manifest = pd.read_csv(data_dir / DATASET / "manifest.csv")
    rows = manifest[manifest["file"].str.startswith("dyn/") & manifest["file"].str.contains(DYNAMIC_SCRIPT)]
    return {float(row.test_temperature_C): row.file for row in rows.itertuples()}


def pair(files: list[str], calibration_file: str | None, resample_period_s: float, out: Path) -> Corpus:
    """configs/measured/a123_dynamic.yaml for ``files`` (one test group each), calibrated on
    ``calibration_file`` (None: the nominal cell), on the resampled grid, paired (or finished) into
    ``out`` and loaded with the reference SOC added."""
    data = load_config(PAIRING_CONFIG, PairingSpec).model_dump()
    data["tests"] = [{**data["tests"][0], "pattern": file} for file in files]
    data["resample_period_s"] = resample_period_s
    data["compare_nominal"] = False  # the nominal cell gets its own pairing (its series are scored)
    data["calibration"] = {"mode": "none"} if calibration_file is None else {**data["calibration"], "file": calibration_file}
    pair_measured(PairingSpec.model_validate(data), out, resume=out.exists(), progress=False)
    corpus = load_corpus(out)
    for sample_id, cell in corpus.cells.items():  # the cell starts full
        cell.columns[SOC] = 1.0 - cell.columns[CHARGE] / float(corpus.samples.loc[sample_id, "throughput_capacity_Ah"])
    return corpus


def pair_tests(settings: Settings, files: dict[float, str], calibration_temp: float,
               work: Path) -> tuple[Corpus, Corpus, dict[int, float], list[int], list[int]]:
    """The training and held-out tests paired calibrated on ``calibration_temp`` and nominal;
    returns both corpora, sample_id -> temperature [degC], the training and the held-out ids."""
    wanted = [*settings.train_temps_C, *settings.test_temps_C]
    calibrated = pair([files[t] for t in wanted], files[calibration_temp], settings.resample_period_s,
                      work / "paired_calibrated")
    nominal = pair([files[t] for t in wanted], None, settings.resample_period_s, work / "paired_nominal")
    temperatures = {i: wanted[i] for i in calibrated.sample_ids}  # sample ids follow the test groups
    train_ids = [i for i in calibrated.sample_ids if temperatures[i] in settings.train_temps_C]
    test_ids = [i for i in calibrated.sample_ids if temperatures[i] in settings.test_temps_C]
    if len(train_ids) != len(settings.train_temps_C) or not test_ids:
        raise ConfigError(f"pairing left train tests {train_ids} and held-out tests {test_ids}; see "
                          f"{work / 'paired_calibrated' / 'samples.parquet'} for the failed ones")
    return calibrated, nominal, temperatures, train_ids, test_ids


def run(settings: Settings, data_dir: Path, out: Path, work: Path) -> dict[str, Any]:
    """Pair, fit the ECM, transfer (see the module docstring); writes OUT/figures.json, results.md and the PNGs."""
    started, timings = time.perf_counter(), {}
    files = dynamic_tests(data_dir)
    if any(t not in files for t in (*settings.train_temps_C, *settings.test_temps_C)):
        raise ConfigError(f"temperatures: train {settings.train_temps_C}, test {settings.test_temps_C}; allowed: "
                          f"{sorted(files)} degC")
    calibration_temp = min(settings.train_temps_C, key=lambda t: abs(t - 25.0))  # its test calibrates
    tick = time.perf_counter()
    calibrated, nominal, temperatures, train_ids, test_ids = pair_tests(settings, files, calibration_temp, work)
    timings["pairing_s"] = time.perf_counter() - tick
    fixed: Predictions = {
        "physics_nominal": {i: physics_prediction(nominal.cells[i]) for i in calibrated.sample_ids if i in nominal.cells},
        "physics_calibrated": {i: physics_prediction(cell) for i, cell in calibrated.cells.items()}}
    tick = time.perf_counter()
    fixed["ecm"], ecm_fitted = ecm_predictions(calibrated, temperatures, train_ids, ocv_from_slow_tests(
        data_dir / DATASET / "ocv", "A123_OCV_p25C_script{script}.csv.gz"))
    timings["ecm_s"] = time.perf_counter() - tick
    calibration = Calibration(**json.loads((work / "paired_calibrated" / "manifest.json").read_text())["calibration"])
    spec = CorpusSpec.model_validate({**load_config(CORPUS_CONFIG, CorpusSpec).model_dump(),
                                      "cells": settings.synthetic_cells})
    order = sorted(train_ids, key=lambda i: (temperatures[i] != calibration_temp,  # the calibration test first
                                             settings.train_temps_C.index(temperatures[i])))
    result = transfer(calibrated, spec, train_ids, [i for i in train_ids if temperatures[i] == settings.validation_temp_C],
                      test_ids, settings.options(), work, calibration=calibration,
                      curve_order=order if settings.curve else None)
    timings.update(result.timings_s)
    per_seed = {**result.scores, **{name: [by_test] for name, by_test in score_all(fixed, calibrated).items()}}
    curve = None if result.curve is None else {
        "points": [{"tests": point["tests"], "temperatures_C": [temperatures[i] for i in point["records"]],
                    SCRATCH: point[SCRATCH], FINETUNED: point[FINETUNED]} for point in result.curve],
        "zero_shot": summarise(per_seed[ZERO_SHOT], test_ids),
        "physics_calibrated": summarise(per_seed["physics_calibrated"], test_ids)}
    figures = {
        "experiment": "sim_to_real", "settings": {**settings.__dict__, "seed_list": settings.seed_list},
        "data_dir": str(data_dir),
        "tests": {str(i): {"file": files[temperatures[i]], "temperature_C": temperatures[i],
                           "role": "train" if i in train_ids else "held_out", "rows": calibrated.cells[i].rows,
                           "throughput_capacity_Ah": float(calibrated.samples.loc[i, "throughput_capacity_Ah"])}
                  for i in calibrated.sample_ids},
        "calibrated_on_C": calibration_temp, "calibration": calibration.values,
        "selection": {"validation_temp_C": settings.validation_temp_C, **result.selection.summary()},
        # summary: mean over seeds of the test-averaged figure (deterministic models: one "seed")
        **score_tables({model: per_seed[model] for model in MODELS}, train_ids, test_ids),
        "ecm_parameters": {str(t): p.to_dict() for t, p in sorted(ecm_fitted.items())},
        "pretraining": result.pretraining, "data_efficiency": curve,
        "timings_s": {k: round(v, 1) for k, v in timings.items()},
    }
    out.mkdir(parents=True, exist_ok=True)
    figures["plots"] = [str(path) for path in write_plots(calibrated, {**fixed, **result.predictions}, test_ids,
                                                          temperatures, curve, out)]
    figures["wall_s"] = round(time.perf_counter() - started, 1)
    (out / "figures.json").write_text(json.dumps(json_safe(figures), indent=1))
    (out / "results.md").write_text(markdown(figures, train_ids, test_ids, temperatures) + "\n")
    return figures


def markdown(figures: dict, train_ids: list[int], test_ids: list[int], temperatures: dict[int, float]) -> str:
    """The tables: every model, every test, the validation candidates and the data-efficiency curve."""
    settings, selection = figures["settings"], figures["selection"]
    degrees = {i: f"{temperatures[i]:g}" for i in temperatures}
    blocks = [
        f"Held-out A123 dynamic tests at {', '.join(degrees[i] for i in test_ids)} °C (trained / fitted on "
        f"{', '.join(degrees[i] for i in train_ids)} °C; {settings['resample_period_s']:g} s grid). Voltage "
        f"RMSE [mV], SOC MAE [%]; trained models: mean ± sd over {settings['seeds']} seed(s) of the test-averaged "
        "figure.", summary_table(figures["summary"], {model: LABELS[model] for model in MODELS}),
        "Per test, RMSE over the record / inside 5–95 % SOC [mV] (* = held out; mean over seeds):",
        per_record_table(figures, list(MODELS), {i: f"{degrees[i]} °C{'*' if i in test_ids else ''}"
                                                 for i in [*train_ids, *test_ids]}),
        f"Model selection on the {selection['validation_temp_C']:g} °C training test (fitted on the other training "
        "tests, final weights, mean ± sd over seeds; the held-out tests play no part). Chosen: fine-tuning "
        f"\"{selection['recipe']['name']}\"; epochs {selection['epochs']}.",
        candidates_table(selection["candidates"])]
    curve = figures.get("data_efficiency")
    if curve:
        def cell(block: dict) -> str:
            return format_mean_sd(block["rmse_soc_5_95_mV"]["mean"], block["rmse_soc_5_95_mV"]["sd"])

        blocks += ["Data efficiency: mean held-out RMSE 5–95 % SOC [mV] (± sd over seeds) against measured training "
                   "tests used:", markdown_table(["tests (°C)", "from scratch", "pretrained + fine-tuned"], [
                       ["0 (synthetic only)", "–", cell(curve["zero_shot"])],
                       *([f"{p['tests']} ({', '.join(f'{t:g}' for t in p['temperatures_C'])})", cell(p[SCRATCH]),
                          cell(p[FINETUNED])] for p in curve["points"])])]
    return "\n\n".join(blocks)


def write_plots(corpus: Corpus, predictions: Predictions, test_ids: list[int], temperatures: dict[int, float],
                curve: dict | None, out: Path) -> list[Path]:
    """The held-out tests' error traces and, with ``curve``, the data-efficiency curve."""
    titles = {i: f"held-out test {temperatures[i]:g} °C: prediction − measurement" for i in test_ids}
    paths = [error_traces(corpus, {model: predictions[model] for model in MODELS}, test_ids, titles,
                          out / "held_out_errors.png")]
    if curve:
        paths.append(plot_data_efficiency(curve["points"], {
            "calibrated physics": curve["physics_calibrated"]["rmse_soc_5_95_mV"]["mean"],
            "synthetic pretraining only": curve["zero_shot"]["rmse_soc_5_95_mV"]["mean"]}, out / "data_efficiency.png"))
    return paths


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=default_real_data_dir())
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--work", type=Path, default=None)
    for flag in ("--quick", "--no-curve"):
        parser.add_argument(flag, action="store_true")
    for flag in ("--train-temps", "--test-temps"):
        parser.add_argument(flag, type=float, nargs="+", default=None)
    for flag, kind in (("--resample-period-s", float), ("--epochs", int), ("--pretrain-epochs", int), ("--hidden", int),
                       ("--synthetic-cells", int), ("--seeds", int), ("--learning-rate", float),
                       ("--validation-temp", float), ("--seed", int)):
        parser.add_argument(flag, type=kind, default=None)  # None: the Settings default (or --quick's)
    return parser.parse_args(argv)


def settings_from(args: argparse.Namespace) -> Settings:
    """The defaults, then --quick's, then the options given."""
    given = dict(train_temps_C=args.train_temps and tuple(args.train_temps),
                 test_temps_C=args.test_temps and tuple(args.test_temps), resample_period_s=args.resample_period_s,
                 epochs=args.epochs, pretrain_epochs=args.pretrain_epochs, hidden_size=args.hidden,
                 synthetic_cells=args.synthetic_cells, seeds=args.seeds, learning_rate=args.learning_rate,
                 validation_temp_C=args.validation_temp, seed=args.seed)
    return replace(Settings(**QUICK) if args.quick else Settings(), curve=not args.no_curve,
                   **{key: value for key, value in given.items() if value is not None})


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the experiment; returns the figures (also written to OUT/figures.json)."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("hybrid.transfer").setLevel(logging.INFO)  # each training run and the selection
    data_dir = args.data_dir.resolve()
    os.environ[REAL_DATA_VARIABLE] = str(data_dir)  # the pairing config reads ${HYBAT_REAL_DATA}
    with torch_threads(1):  # predictions too: small RNNs gain nothing from more (see TrainConfig.threads)
        figures = run(settings_from(args), data_dir, args.out, args.work or args.out / "work")
    print((args.out / "results.md").read_text())
    print(json.dumps(json_safe({key: figures[key]
                                for key in ("experiment", "summary", "data_efficiency", "timings_s", "wall_s")})))
    return figures


if __name__ == "__main__":
    main()
