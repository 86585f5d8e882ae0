"""Causality: what seeing the future buys offline, and what it costs when the future is unknown.

Usage:
    hybat corpus configs/corpus/claims.yaml --out corpora/claims      # or let the script do it
    python experiments/causality.py --out experiments/results/claims/causality [--corpus corpora/claims] [--quick]

Two comparisons on the same cells (hybrid features, voltage-residual target):

1. Smoothing vs filtering. The same residual LSTM (hybrid.models.residual_rnn.ResidualRNN), unidirectional
   (causal filter: the residual at t from inputs up to t) and bidirectional (smoother: from the
   whole record), trained with hybrid.train.loop.fit by full BPTT and run over each whole test
   record. Test voltage RMSE [mV] per row class. The smoother is an offline tool only:
   hybrid.models.base.require_causal refuses it for online use (checked here).
2. Forecasting with and without the causal mask. hybrid.models.forecaster.Seq2SeqForecaster encodes a
   context window and forecasts the residual over the next ``horizon`` steps from the planned
   future inputs. Both variants are trained with teacher forcing on the true future targets;
   ``causal_mask=False`` also lets every decoder step see a summary of the whole true future
   target sequence (leakage). RMSE [mV] over the horizon:
     train (teacher forced)       what the training loss sees
     test, future known           teacher forced with the true future targets (a leaky evaluation)
     test, future = zeros         the future targets replaced by zeros (teacher forced)
     test, own predictions        autoregressive: each step feeds back the model's own prediction,
                                  the leak gets zeros (deployment: the future is really unknown)

Writes OUT/causality.md, .png, .json.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from matplotlib import pyplot as plt
from torch import Tensor

from hybrid.data import cell_inputs, cell_targets
from hybrid.evaluate import (ROW_CLASSES, held_out_class_rmse_mV, markdown_table, physics_model, row_class_splits,
                             write_outputs)
from hybrid.models import ForecasterConfig, ResidualRNNConfig, Seq2SeqForecaster, build_model, require_causal
from hybrid.train import TrainConfig, TrainingSet, corpus_on_demand, load_training_set, seed_everything
from sim.config import load_config
from sim.corpus import CorpusSpec
from sim.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]

FORECAST_MODES = ("train", "test_future_known", "test_future_zeros", "test_own_predictions")


# --- 1. smoothing vs filtering ------------------------------------------------------------


def smoothing_vs_filtering(data: TrainingSet, out: Path, hidden_size: int, epochs: int, seed: int) -> dict:
    results = {}
    for name, bidirectional in (("causal filter", False), ("bidirectional smoother", True)):
        model_config = ResidualRNNConfig(input_size=data.input_size, cell="lstm", hidden_size=hidden_size, layers=1,
                                         bidirectional=bidirectional)
        config = TrainConfig(epochs=epochs, batch_size=4, truncation_steps=None, learning_rate=3e-3, seed=seed,
                             early_stopping_patience=epochs)
        started = time.perf_counter()
        run_dir = out / "runs" / ("bidirectional" if bidirectional else "causal")
        trained, result = data.train_fresh(run_dir.name, model_config, config, run_dir)
        try:
            require_causal(trained.model, "online state estimation")
            refused_online = False
        except ConfigError:
            refused_online = True
        results[name] = {"rmse_mV": held_out_class_rmse_mV(trained, data.corpus, data.assignment), "refused_online": refused_online,
                         "best_val_loss": result.best_val_loss, "train_wall_s": time.perf_counter() - started}
    return results


# --- 2. forecaster with and without the causal mask ---------------------------------------


def forecast_windows(data: TrainingSet, split: str, context: int, horizon: int, stride: int) -> dict[str, Tensor]:
    """Windows of ``context + horizon`` valid rows every ``stride`` rows of each record of ``split``:
    context_x (n, context, features), context_y (n, context, 1), future_x (n, horizon, features),
    future_y (n, horizon, 1), all normalised."""
    parts: dict[str, list[np.ndarray]] = {"context_x": [], "context_y": [], "future_x": [], "future_y": []}
    length = context + horizon
    for sample_id, (start, stop) in sorted(data.assignment.ranges[split].items()):
        cell = data.corpus.cells[sample_id]
        x, y = cell_inputs(cell, data.normalisation), cell_targets(cell, data.normalisation)[:, :1]
        valid = cell.valid_rows(data.normalisation["max_residual_V"])
        for begin in range(start, stop - length + 1, stride):
            if not valid[begin:begin + length].all():
                continue
            middle = begin + context
            parts["context_x"].append(x[begin:middle])
            parts["context_y"].append(y[begin:middle])
            parts["future_x"].append(x[middle:begin + length])
            parts["future_y"].append(y[middle:begin + length])
    if not parts["context_x"]:
        raise SystemExit(f"no {split} record holds {length} valid rows; pass a shorter --context / --horizon")
    return {name: torch.from_numpy(np.stack(values)) for name, values in parts.items()}


def train_forecaster(model: Seq2SeqForecaster, windows: dict[str, Tensor], epochs: int, batch_size: int,
                     seed: int) -> None:
    """Teacher-forced MSE on the true future targets, AdamW, shuffled minibatches."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    generator = torch.Generator().manual_seed(seed)
    count = windows["context_x"].shape[0]
    model.train()
    for _ in range(epochs):
        for index in torch.randperm(count, generator=generator).split(batch_size):
            batch = {name: values[index] for name, values in windows.items()}
            prediction = model.forecast(**batch, teacher_forcing=True)  # (batch, horizon, 1)
            loss = torch.mean((prediction - batch["future_y"]) ** 2)
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
    model.eval()


@torch.no_grad()
def forecast_rmse_mV(model: Seq2SeqForecaster, windows: dict[str, Tensor], mode: str, scale_mV: float) -> float:
    """Horizon RMSE [mV] of ``model`` on ``windows`` in one of the test modes (see the docstring)."""
    given = {name: windows[name] for name in ("context_x", "context_y", "future_x")}
    if mode == "known":
        prediction = model.forecast(**given, future_y=windows["future_y"], teacher_forcing=True)
    elif mode == "zeros":
        prediction = model.forecast(**given, future_y=torch.zeros_like(windows["future_y"]), teacher_forcing=True)
    else:
        prediction = model.forecast(**given, future_y=None, teacher_forcing=False)
    return float(torch.sqrt(torch.mean((prediction - windows["future_y"]) ** 2))) * scale_mV


def forecasting(data: TrainingSet, context: int, horizon: int, hidden_size: int, epochs: int, seed: int) -> dict:
    stride = max(1, horizon // 2)
    train_windows = forecast_windows(data, "train", context, horizon, stride)
    test_windows = forecast_windows(data, "test", context, horizon, stride)
    scale_mV = data.normalisation["target_std"][0] * 1e3  # normalised residual -> mV
    results = {"windows": {"train": int(train_windows["context_x"].shape[0]),
                           "test": int(test_windows["context_x"].shape[0])}}
    # the last context value held over the horizon: the floor any forecaster should beat
    hold = test_windows["context_y"][:, -1:].expand_as(test_windows["future_y"])
    results["hold_last_test_rmse_mV"] = float(torch.sqrt(torch.mean((hold - test_windows["future_y"]) ** 2))) * scale_mV
    for name, causal_mask in (("causal mask", True), ("no causal mask", False)):
        seed_everything(seed)
        model = build_model(ForecasterConfig(input_size=data.input_size, hidden_size=hidden_size, horizon=horizon,
                                             causal_mask=causal_mask))
        started = time.perf_counter()
        train_forecaster(model, train_windows, epochs, batch_size=32, seed=seed)
        results[name] = {
            "train": forecast_rmse_mV(model, train_windows, "known", scale_mV),
            "test_future_known": forecast_rmse_mV(model, test_windows, "known", scale_mV),
            "test_future_zeros": forecast_rmse_mV(model, test_windows, "zeros", scale_mV),
            "test_own_predictions": forecast_rmse_mV(model, test_windows, "own", scale_mV),
            "train_wall_s": time.perf_counter() - started}
    return results


# --- report -------------------------------------------------------------------------------


def table(figures: dict) -> str:
    smoothing = figures["smoothing"]
    physics = figures["physics_rmse_mV"]
    first = markdown_table(
        ["model (test cells)", *(f"{name} [mV]" for name in ROW_CLASSES), "usable online"],
        [["physics only", *(physics[name] for name in ROW_CLASSES), "yes"]]
        + [[name, *(result["rmse_mV"][name] for name in ROW_CLASSES), "no (require_causal refuses)"
            if result["refused_online"] else "yes"] for name, result in smoothing.items()])
    forecast = figures["forecasting"]
    second = markdown_table(
        ["forecaster", "train, teacher forced [mV]", "test, future known [mV]", "test, future = zeros [mV]",
         "test, own predictions [mV]"],
        [[name, *(forecast[name][mode] for mode in FORECAST_MODES)] for name in ("causal mask", "no causal mask")]
        + [["hold last context value", "", "", "", forecast["hold_last_test_rmse_mV"]]])
    return (first + "\n\n" + f"Forecaster: context {figures['context']} steps, horizon {figures['horizon']} steps, "
            f"{forecast['windows']['train']} train / {forecast['windows']['test']} test windows.\n\n" + second)


def plot(figures: dict):
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8))
    names = list(figures["smoothing"])
    positions = np.arange(len(ROW_CLASSES))
    for offset, name in enumerate(names):
        values = [figures["smoothing"][name]["rmse_mV"][row] for row in ROW_CLASSES]
        left.bar(positions + 0.4 * offset - 0.2, values, width=0.4, label=name)
    left.set_xticks(positions, ROW_CLASSES)
    left.set(ylabel="test voltage RMSE [mV]", title="filter vs smoother")
    left.legend()
    for offset, name in enumerate(("causal mask", "no causal mask")):
        values = [figures["forecasting"][name][mode] for mode in FORECAST_MODES]
        right.bar(np.arange(len(FORECAST_MODES)) + 0.4 * offset - 0.2, values, width=0.4, label=name)
    right.set_xticks(np.arange(len(FORECAST_MODES)), ["train", "future\nknown", "future\nzeros", "own\npredictions"])
    right.set(ylabel="horizon RMSE [mV]", yscale="log", title="forecaster")
    right.legend()
    return figure


def main(argv: list[str] | None = None) -> dict:
    arguments = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    arguments.add_argument("--out", type=Path, required=True, help="directory for the table, plot and JSON")
    arguments.add_argument("--corpus", type=Path, default=ROOT / "corpora" / "claims",
                           help="corpus directory; generated from configs/corpus/claims.yaml when absent")
    arguments.add_argument("--quick", action="store_true", help="tiny settings (seconds): for smoke tests")
    arguments.add_argument("--seed", type=int, default=0)
    arguments.add_argument("--context", type=int, default=None, help="context window [steps] (default 60)")
    arguments.add_argument("--horizon", type=int, default=None, help="forecast horizon [steps] (default 30)")
    arguments.add_argument("--epochs", type=int, default=None)
    args = arguments.parse_args(argv)
    torch.set_num_threads(1)
    started = time.perf_counter()
    data = load_training_set(corpus_on_demand(args.corpus, load_config(ROOT / "configs" / "corpus" / "claims.yaml", CorpusSpec)), row_class_splits(args.seed))
    context, horizon = args.context or (20 if args.quick else 60), args.horizon or (10 if args.quick else 30)
    hidden_size = 8 if args.quick else 32
    epochs = args.epochs or (2 if args.quick else 30)
    figures = {"corpus": str(args.corpus), "context": context, "horizon": horizon, "epochs": epochs,
               "hidden_size": hidden_size,
               "physics_rmse_mV": held_out_class_rmse_mV(physics_model(data.normalisation), data.corpus, data.assignment),
               "smoothing": smoothing_vs_filtering(data, args.out, hidden_size, epochs, args.seed),
               "forecasting": forecasting(data, context, horizon, hidden_size, epochs, args.seed)}
    figures["wall_s"] = time.perf_counter() - started
    write_outputs(args.out, "causality", table(figures), figures, plot(figures))
    return figures


if __name__ == "__main__":
    main()
