"""Vanishing gradients: how far back the loss at the last step reaches, for vanilla RNN, GRU and LSTM.

Usage:
    hybat corpus configs/corpus/claims.yaml --out corpora/claims      # or let the script do it
    python experiments/vanishing_gradients.py --out experiments/results/claims/vanishing_gradients [--corpus corpora/claims] [--quick]

For each cell type (hybrid.models.residual_rnn.ResidualRNN with cell rnn / gru / lstm, same width), at
initialisation and after training with hybrid.train.loop.fit (TBPTT, K = 200), on windows of
``--window`` steps cut from the test cells' battery records (normalised hybrid features,
voltage-residual target): the squared error at the last step of the window is
back-propagated through the unrolled model and we record, for every lag L,

    input gradient   mean over windows of || d loss_T / d x_(T-L) ||
    hidden gradient  mean over windows of || d loss_T / d h_(T-L) ||  (LSTM: h and c together)

where h_(T-L) is the state after step T-L, carried into step T-L+1 (so the hidden gradient
starts at lag 1). A dependency L steps back can only be learned if these do not vanish at lag
L. The table gives the norm at lag 1 and the norms at longer lags relative to it; the plot
shows them against lag on a log scale.

Writes OUT/vanishing_gradients.md, .png, .json.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from matplotlib import pyplot as plt
from torch import Tensor, nn

from hybrid.data import cell_inputs, cell_targets
from hybrid.evaluate import markdown_table, row_class_splits, write_outputs
from hybrid.models import ResidualRNNConfig, build_model
from hybrid.train import TrainConfig, TrainingSet, corpus_on_demand, load_training_set, seed_everything
from sim.config import load_config
from sim.corpus import CorpusSpec

ROOT = Path(__file__).resolve().parents[1]

CELLS = ("rnn", "gru", "lstm")


def windows(data: TrainingSet, split: str, length: int, per_cell: int) -> tuple[Tensor, Tensor]:
    """Up to ``per_cell`` evenly spaced windows of ``length`` steps from each record of ``split``:
    inputs (windows, length, features), targets (windows, length, outputs)."""
    inputs, targets = [], []
    for sample_id in sorted(data.assignment.ranges[split]):
        cell = data.corpus.cells[sample_id]
        if cell.rows < length:
            continue
        x, y = cell_inputs(cell, data.normalisation), cell_targets(cell, data.normalisation)
        for end in np.linspace(length, cell.rows, per_cell).astype(int):
            inputs.append(x[end - length:end])
            targets.append(y[end - length:end])
    if not inputs:
        raise SystemExit(f"no {split} record holds {length} rows; pass a shorter --window")
    return torch.from_numpy(np.stack(inputs)), torch.from_numpy(np.stack(targets))


def _state_tensors(state) -> list[Tensor]:
    return [state] if isinstance(state, Tensor) else [part for item in state for part in _state_tensors(item)]


def lag_gradient_norms(model: nn.Module, inputs: Tensor, targets: Tensor) -> dict[str, np.ndarray]:
    """Mean gradient norms of the last step's squared error w.r.t. the input and the hidden state
    at each lag 0 .. time-1 (index = lag); inputs (batch, time, features), targets (batch, time, outputs)."""
    steps = inputs.shape[1]
    x = inputs.clone().requires_grad_(True)  # (batch, time, features)
    state, states = None, []
    for t in range(steps):  # one step at a time, so each step's state is a tensor we can ask about
        output, state = model(x[:, t:t + 1], state)  # (batch, 1, outputs)
        for tensor in _state_tensors(state):
            tensor.retain_grad()
        states.append(state)
    loss = ((output[:, -1] - targets[:, -1]) ** 2).sum()  # summed over windows: per-window gradients
    loss.backward()
    input_norm = x.grad.norm(dim=-1).mean(dim=0).flip(0)  # (time,), index = lag
    # the state after step T-1-L carries everything the last step gets from L steps back; the
    # final state feeds no later step (lag 0 is the output itself), so its entry stays NaN
    hidden_norm = torch.full((steps,), float("nan"))
    for lag in range(1, steps):
        state = states[steps - 1 - lag]
        grads = [tensor.grad.transpose(0, 1).reshape(x.shape[0], -1) for tensor in _state_tensors(state)]
        hidden_norm[lag] = torch.cat(grads, dim=-1).norm(dim=-1).mean()
    return {"input": input_norm.detach().numpy(), "hidden": hidden_norm.detach().numpy()}


def run(corpus_dir: Path, out: Path, window: int, hidden_size: int, epochs: int, seed: int) -> dict:
    data = load_training_set(corpus_dir, row_class_splits(seed))
    inputs, targets = windows(data, "test", window, per_cell=4)
    results = {}
    for cell in CELLS:
        model_config = ResidualRNNConfig(input_size=data.input_size, cell=cell, hidden_size=hidden_size, layers=1)
        seed_everything(seed)
        initial = lag_gradient_norms(build_model(model_config).eval(), inputs, targets)
        config = TrainConfig(epochs=epochs, batch_size=4, truncation_steps=200, learning_rate=3e-3, seed=seed,
                             early_stopping_patience=epochs)
        started = time.perf_counter()
        model, result = data.train_fresh(cell, model_config, config, out / "runs" / cell)
        trained = lag_gradient_norms(model.model, inputs, targets)
        results[cell] = {"initial": {key: value.tolist() for key, value in initial.items()},
                         "trained": {key: value.tolist() for key, value in trained.items()},
                         "best_val_loss": result.best_val_loss, "train_wall_s": time.perf_counter() - started}
    return {"corpus": str(corpus_dir), "window": window, "windows": int(inputs.shape[0]),
            "hidden_size": hidden_size, "epochs": epochs, "cells": results}


def report_lags(window: int) -> list[int]:
    return [lag for lag in (10, 30, 100, 300) if lag < window]


def table(figures: dict) -> str:
    lags = report_lags(figures["window"])
    header = ["cell", "weights", "gradient w.r.t.", "norm at lag 1", *(f"lag {lag} / lag 1" for lag in lags)]
    rows = []
    for cell, results in figures["cells"].items():
        for stage in ("initial", "trained"):
            for kind in ("hidden", "input"):
                norms = np.asarray(results[stage][kind])
                rows.append([cell, stage, kind, f"{norms[1]:.3g}", *(f"{norms[lag] / norms[1]:.2e}" for lag in lags)])
    return markdown_table(header, rows)


def plot(figures: dict):
    figure, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    for axis, kind in zip(axes, ("hidden", "input")):
        for cell, colour in zip(CELLS, ("tab:red", "tab:blue", "tab:green")):
            for stage, style in (("initial", ":"), ("trained", "-")):
                norms = np.asarray(figures["cells"][cell][stage][kind])
                axis.semilogy(np.arange(1, len(norms)), norms[1:] / norms[1], style, color=colour,
                              label=f"{cell} {stage}")
        axis.set(xlabel="lag L [steps]", title=f"|| d loss_T / d {'h' if kind == 'hidden' else 'x'}_(T-L) || / lag 1")
    axes[0].legend(fontsize=8)
    return figure


def main(argv: list[str] | None = None) -> dict:
    arguments = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    arguments.add_argument("--out", type=Path, required=True, help="directory for the table, plot and JSON")
    arguments.add_argument("--corpus", type=Path, default=ROOT / "corpora" / "claims",
                           help="corpus directory; generated from configs/corpus/claims.yaml when absent")
    arguments.add_argument("--quick", action="store_true", help="tiny settings (seconds): for smoke tests")
    arguments.add_argument("--seed", type=int, default=0)
    arguments.add_argument("--window", type=int, default=None, help="window length [steps] (default 301, quick 61)")
    arguments.add_argument("--epochs", type=int, default=None)
    args = arguments.parse_args(argv)
    torch.set_num_threads(1)
    started = time.perf_counter()
    figures = run(corpus_on_demand(args.corpus, load_config(ROOT / "configs" / "corpus" / "claims.yaml", CorpusSpec)), args.out,
                  args.window or (61 if args.quick else 301),
                  8 if args.quick else 32, args.epochs or (1 if args.quick else 15), args.seed)
    figures["wall_s"] = time.perf_counter() - started
    write_outputs(args.out, "vanishing_gradients", table(figures), figures, plot(figures))
    return figures


if __name__ == "__main__":
    main()
