"""Aliasing: a residual model trained on data sampled with vs without the anti-aliasing filter.

Usage:
    python experiments/aliasing.py --out experiments/results/claims/aliasing [--corpora corpora/aliasing] [--quick]

Three corpora of the same cells (configs/corpus/claims.yaml's plant, physics and sensor; one
drive-cycle-like profile per cell sampled every 1 s), generated under --corpora when absent:

    aliased    converter ripple of ``--ripple-hz`` (above the 0.5 Hz Nyquist frequency), point-
               sampled without the anti-alias filter: the ripple folds down to the alias
               frequency |f - round(f / fs) fs| (0.02 Hz for 10.02 Hz at 1 Hz), a slow fake
               oscillation in the measured current and voltage. The physics counterpart is
               driven by that measured current, so it answers the fake current as if it were real.
    filtered   the same ripple through the sensor's analog anti-alias filter (sim.plant.sensor): gone.
    clean      no ripple at all: the cell's real behaviour.

The same residual LSTM (hybrid.models.residual_rnn.ResidualRNN, TBPTT via hybrid.train.loop.fit) is trained on
the aliased and on the filtered corpus and tested on the clean test cells. Reported, with
amplitudes from sim.signals.filters.tone_amplitude at the alias frequency of (rippled - clean) of the
same cells (same profile, same sensor draws): the tone the ripple adds to the training data's
measured current [A] and residual target [mV]; the tone the trained model adds to its
predicted residual when fed the rippled rather than the clean test inputs [mV] (the learned
dynamics: has it learned the alias as a response of the cell?); the test voltage RMSE [mV] on
clean data (all rows, and the error's part below twice the alias frequency); and the RMSE on
test cells of the model's own kind. The plot shows the residual
spectra of the training data and of each model's clean-test error.

Writes OUT/aliasing.md, .png, .json.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from matplotlib import pyplot as plt
from scipy import signal

from hybrid.data import CURRENT, PHYSICS_VOLTAGE, TIME, VOLTAGE_RESIDUAL
from hybrid.evaluate import (class_errors, class_rmse_mV, held_out_class_rmse_mV, markdown_table, physics_model,
                             predict_record, row_class_splits, write_outputs)
from hybrid.models import ResidualRNNConfig
from hybrid.train import TrainConfig, TrainedModel, TrainingSet, corpus_on_demand, load_training_set
from sim.config import load_config
from sim.corpus import CorpusSpec, ProtocolChoice
from sim.protocols import Dynamic, Ripple
from sim.signals import alias_frequency, tone_amplitude

ROOT = Path(__file__).resolve().parents[1]

VARIANTS = ("aliased", "filtered", "clean")
TRAINED_ON = ("aliased", "filtered")
SAMPLE_PERIOD_S = 1.0  # the dynamic profile's fast_period_s


def variant_spec(variant: str, cells: int, duration_s: float, ripple_hz: float, ripple_c_rate: float) -> CorpusSpec:
    """The claims corpus's cell, plant and physics with one rippled (or clean) dynamic profile per cell."""
    base = load_config(ROOT / "configs" / "corpus" / "claims.yaml", CorpusSpec)
    ripple = None if variant == "clean" else Ripple(frequency_hz=ripple_hz, amplitude_c_rate=ripple_c_rate)
    protocol = Dynamic(duration_s=duration_s, peak_c_rate=2.0, fast_period_s=SAMPLE_PERIOD_S, ripple=ripple)
    sensor = base.reference.sensor.model_copy(update={"anti_alias": variant != "aliased"})
    reference = base.reference.model_copy(update={"sensor": sensor})
    return base.model_copy(update={"name": f"aliasing-{variant}", "cells": cells, "reference": reference,
                                   "protocols": [ProtocolChoice(protocol=protocol)]})


def artefact_tone(data: TrainingSet, clean: TrainingSet, split: str, column: str, frequency_hz: float) -> float:
    """Mean over the cells of ``split`` of the amplitude of the tone at frequency_hz in ``column``
    minus the same cell's clean ``column``: what the ripple added (same cells, same sensor draws)."""
    amplitudes = []
    for sample_id in data.assignment.ranges[split]:
        cell, reference = data.corpus.cells[sample_id], clean.corpus.cells.get(sample_id)
        if reference is not None and reference.rows == cell.rows:
            added = cell.column(column) - reference.column(column)
            amplitudes.append(tone_amplitude(cell.columns[TIME], added, frequency_hz))
    return float(np.mean(amplitudes)) if amplitudes else float("nan")


def predicted_residual(model: TrainedModel, data: TrainingSet, sample_id: int) -> np.ndarray:
    """The model's residual [V] over one whole record of ``data``."""
    cell = data.corpus.cells[sample_id]
    return predict_record(model, cell).voltage_V - cell.columns[PHYSICS_VOLTAGE]


def learned_artefact_mV(model: TrainedModel, data: TrainingSet, clean: TrainingSet, frequency_hz: float) -> float:
    """Mean amplitude [mV] of the tone at frequency_hz in (the model's residual on the rippled test
    records - its residual on the clean ones): how much of the alias the model reproduces."""
    amplitudes = []
    for sample_id in data.assignment.ranges["test"]:
        cell, reference = data.corpus.cells[sample_id], clean.corpus.cells.get(sample_id)
        if reference is not None and reference.rows == cell.rows:
            added = predicted_residual(model, data, sample_id) - predicted_residual(model, clean, sample_id)
            amplitudes.append(tone_amplitude(cell.columns[TIME], added, frequency_hz))
    return 1e3 * float(np.mean(amplitudes)) if amplitudes else float("nan")


def low_frequency_rms_mV(errors_V: np.ndarray, cutoff_hz: float) -> float:
    """RMS [mV] of the error's content below cutoff_hz (errors on the 1 s grid, records concatenated)."""
    frequency, power = signal.periodogram(errors_V, fs=1.0 / SAMPLE_PERIOD_S, detrend=False)
    band = (frequency > 0) & (frequency < cutoff_hz)
    # one-sided density * bin width = power; add back the mean (the DC bin) as offset error
    return 1e3 * float(np.sqrt(np.sum(power[band]) * (frequency[1] - frequency[0]) + np.mean(errors_V) ** 2))


def spectrum(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Welch power spectral density of a signal on the 1 s grid."""
    return signal.welch(values, fs=1.0 / SAMPLE_PERIOD_S, nperseg=min(512, len(values)))


def run(corpora: Path, out: Path, cells: int, duration_s: float, ripple_hz: float, ripple_c_rate: float,
        epochs: int, hidden_size: int, seed: int) -> tuple[dict, dict]:
    alias_hz = alias_frequency(ripple_hz, SAMPLE_PERIOD_S)
    data = {variant: load_training_set(corpus_on_demand(corpora / variant, variant_spec(
                variant, cells, duration_s, ripple_hz, ripple_c_rate)), row_class_splits(seed))
            for variant in VARIANTS}
    figures = {"ripple_hz": ripple_hz, "ripple_c_rate": ripple_c_rate, "alias_hz": alias_hz, "cells": cells,
               "duration_s": duration_s, "epochs": epochs, "hidden_size": hidden_size,
               "physics_clean_test_rmse_mV": held_out_class_rmse_mV(
                   physics_model(data["clean"].normalisation), data["clean"].corpus, data["clean"].assignment)["all"]}
    spectra = {}
    for variant in ("aliased", "filtered"):
        figures[variant] = {
            "train_current_alias_A": artefact_tone(data[variant], data["clean"], "train", CURRENT, alias_hz),
            "train_residual_alias_mV": 1e3 * artefact_tone(data[variant], data["clean"], "train", VOLTAGE_RESIDUAL,
                                                           alias_hz)}
    for variant in TRAINED_ON:
        own = data[variant]
        model_config = ResidualRNNConfig(input_size=own.input_size, cell="lstm", hidden_size=hidden_size, layers=1)
        config = TrainConfig(epochs=epochs, batch_size=4, truncation_steps=200, learning_rate=3e-3, seed=seed,
                             early_stopping_patience=epochs)
        model, _ = own.train_fresh(variant, model_config, config, out / "runs" / variant)
        # the clean cells, read with this model's features and normalisation
        clean = TrainingSet(data["clean"].corpus, data["clean"].assignment, own.normalisation)
        clean_errors = class_errors(model, clean.corpus, clean.assignment, "test")["all"]
        figures[variant].update({
            "learned_alias_mV": learned_artefact_mV(model, own, clean, alias_hz),
            "clean_test_rmse_mV": class_rmse_mV({"all": clean_errors})["all"],
            "clean_test_low_frequency_rms_mV": low_frequency_rms_mV(clean_errors, 2 * alias_hz),
            "own_test_rmse_mV": class_rmse_mV(class_errors(model, own.corpus, own.assignment, "test"))["all"],
        })
        spectra[f"training residual, {variant}"] = spectrum(np.concatenate(
            [own.corpus.cells[i].column(VOLTAGE_RESIDUAL) for i in sorted(own.assignment.ranges["train"])]))
        spectra[f"clean-test error, trained {variant}"] = spectrum(clean_errors)
    return figures, spectra


def table(figures: dict) -> str:
    header = ["trained on", "alias tone added to train current [A]", "alias tone added to train residual [mV]",
              "alias tone the model adds to its residual [mV]", "clean test RMSE [mV]",
              f"clean test error below {2 * figures['alias_hz']:.3g} Hz [mV RMS]", "own-kind test RMSE [mV]"]
    rows = [[variant, f"{figures[variant]['train_current_alias_A']:.3g}",
             *(figures[variant][key] for key in ("train_residual_alias_mV", "learned_alias_mV", "clean_test_rmse_mV",
                                                 "clean_test_low_frequency_rms_mV", "own_test_rmse_mV"))]
            for variant in TRAINED_ON]
    rows.append(["(physics only)", "", "", "", figures["physics_clean_test_rmse_mV"], "", ""])
    return (f"Ripple {figures['ripple_hz']} Hz, {figures['ripple_c_rate']} C, sampled every {SAMPLE_PERIOD_S:g} s: "
            f"alias at {figures['alias_hz']:.3g} Hz. \"Added\": the tone in (rippled - clean) of the same cells.\n\n"
            + markdown_table(header, rows))


def plot(figures: dict, spectra: dict):
    figure, (training, errors) = plt.subplots(1, 2, figsize=(11, 3.8), sharex=True)
    for name, (frequency, density) in spectra.items():
        axis = training if name.startswith("training") else errors
        axis.loglog(frequency[1:], density[1:], label=name)
    for axis, title in ((training, "residual target of the training data"), (errors, "error on clean test cells")):
        axis.axvline(figures["alias_hz"], color="k", linestyle=":", label=f"alias {figures['alias_hz']:.3g} Hz")
        axis.set(xlabel="frequency [Hz]", ylabel="PSD [V^2/Hz]", title=title)
        axis.legend(fontsize=8)
    return figure


def main(argv: list[str] | None = None) -> dict:
    arguments = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    arguments.add_argument("--out", type=Path, required=True, help="directory for the table, plot and JSON")
    arguments.add_argument("--corpora", type=Path, default=ROOT / "corpora" / "aliasing",
                           help="where the aliased / filtered / clean corpora are (generated when absent)")
    arguments.add_argument("--quick", action="store_true", help="tiny settings (seconds): for smoke tests")
    arguments.add_argument("--seed", type=int, default=0)
    arguments.add_argument("--ripple-hz", type=float, default=10.02)
    arguments.add_argument("--ripple-c-rate", type=float, default=0.5)
    arguments.add_argument("--epochs", type=int, default=None)
    args = arguments.parse_args(argv)
    torch.set_num_threads(1)
    started = time.perf_counter()
    figures, spectra = run(args.corpora, args.out, cells=4 if args.quick else 12,
                           duration_s=300.0 if args.quick else 1200.0, ripple_hz=args.ripple_hz,
                           ripple_c_rate=args.ripple_c_rate, epochs=args.epochs or (3 if args.quick else 40),
                           hidden_size=8 if args.quick else 32, seed=args.seed)
    figures["wall_s"] = time.perf_counter() - started
    write_outputs(args.out, "aliasing", table(figures), figures, plot(figures, spectra))
    return figures


if __name__ == "__main__":
    main()
