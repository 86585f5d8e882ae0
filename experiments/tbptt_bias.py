"""Truncation bias of TBPTT: error on the slow modes and training cost against the truncation length K.

Usage:
    hybat corpus configs/corpus/claims.yaml --out corpora/claims      # or let the script do it
    python experiments/tbptt_bias.py --out experiments/results/claims/tbptt_bias [--corpus corpora/claims] [--quick]

The same residual LSTM (hybrid.models.residual_rnn.ResidualRNN) is trained with hybrid.train.loop.fit on the same
cells, once per truncation length K ("full" = full BPTT). The state is carried along each
record and detached every K steps; every run takes one optimizer step per batch of whole
records (chunk_steps = a multiple of every K at least as long as the longest record, the
loss of the K-step segments accumulated), so the runs see the same data, take the same number
of optimizer steps, and differ only in where the gradient is cut. With K steps of gradient the model can
only learn dependencies shorter than K: the graphite hysteresis state set by the last
charge or discharge step (held through a 30 min rest, 60+ rows at 30 s) and the ageing drift
(hundreds of rows) lie beyond small K. Reports test-cell voltage RMSE [mV] overall and per
row class (fast, rest, late life; see hybrid.evaluate.rows), the wall time of
training, and the training throughput (sequence steps per second) and optimizer steps. Two
feature sets: every physics state (the default of hybrid.data.features), and the physics voltage and
SOC only, where the slow modes must be remembered by the RNN rather than read off the
physics model's own slow states.

Writes OUT/tbptt_bias.md, OUT/tbptt_bias.png, OUT/tbptt_bias.json.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import torch
from matplotlib import pyplot as plt

from hybrid.data import PHYSICS_SOC, PHYSICS_VOLTAGE, FeatureOptions
from hybrid.evaluate import (ROW_CLASSES, held_out_class_rmse_mV, markdown_table, physics_model, row_class_splits,
                             write_outputs)
from hybrid.models import ResidualRNNConfig
from hybrid.train import TrainConfig, TrainingSet, corpus_on_demand, load_training_set
from sim.config import load_config
from sim.corpus import CorpusSpec

ROOT = Path(__file__).resolve().parents[1]

FULL = "full"
BATCH_SIZE = 1  # records per optimizer step: many steps per epoch even with whole-record chunks
# With every physics state as a feature, the physics model's own slow states carry part of the
# history; with the physics voltage and SOC only, the hysteresis branch (the SOC does not move
# at rest) and the ageing drift have to be carried in the RNN state.
FEATURE_SETS = {
    "all physics states": FeatureOptions(),
    "physics voltage + SOC only": FeatureOptions(physics_columns=[PHYSICS_VOLTAGE, PHYSICS_SOC]),
}


def run(corpus_dir: Path, out: Path, truncations: list[int | None], epochs: int, hidden_size: int,
        seed: int) -> dict:
    """Train one model per feature set and truncation length; return the figures (JSON-able)."""
    figures = {"corpus": str(corpus_dir), "epochs": epochs, "hidden_size": hidden_size, "cell": "lstm",
               "feature_sets": {}}
    for name, features in FEATURE_SETS.items():
        data = load_training_set(corpus_dir, row_class_splits(seed), features)
        figures["cells"] = {split: len(ranges) for split, ranges in data.assignment.ranges.items()}
        figures["feature_sets"][name] = {"features": data.normalisation["features"],
                                         "physics_rmse_mV": held_out_class_rmse_mV(
                                             physics_model(data.normalisation), data.corpus, data.assignment),
                                         "runs": _truncation_runs(data, out / "runs" / _slug(name), truncations,
                                                                  epochs, hidden_size, seed)}
    return figures


def _truncation_runs(data: TrainingSet, runs: Path, truncations: list[int | None], epochs: int, hidden_size: int,
                     seed: int) -> list[dict]:
    model_config = ResidualRNNConfig(input_size=data.input_size, output_size=1, cell="lstm",
                                     hidden_size=hidden_size, layers=1)
    whole_records = _whole_record_chunk(data, [k for k in truncations if k is not None])
    results = []
    for truncation in truncations:
        label = FULL if truncation is None else str(truncation)
        config = TrainConfig(epochs=epochs, batch_size=BATCH_SIZE, truncation_steps=truncation,
                             chunk_steps=None if truncation is None else whole_records, learning_rate=3e-3,
                             early_stopping_patience=epochs, seed=seed, schedule="cosine")
        started = time.perf_counter()
        trained, result = data.train_fresh(f"K_{label}", model_config, config, runs / f"K_{label}")
        wall_s = time.perf_counter() - started
        history = result.history
        results.append({
            "K": label, "rmse_mV": held_out_class_rmse_mV(trained, data.corpus, data.assignment), "train_wall_s": wall_s,
            "steps_per_s": sum(epoch["steps_per_second"] for epoch in history) / len(history),
            "optimizer_steps": _optimizer_steps(runs / f"K_{label}"),
            "best_val_loss": result.best_val_loss, "best_epoch": result.best_epoch})
    return results


def _slug(name: str) -> str:
    return "".join(character if character.isalnum() else "_" for character in name)


def _whole_record_chunk(data: TrainingSet, truncations: list[int]) -> int:
    """The smallest multiple of every truncation length that holds the longest record."""
    multiple = math.lcm(*truncations) if truncations else 1
    longest = max(data.corpus.cells[i].rows for split in ("train", "val") for i in data.assignment.ranges[split])
    return multiple * math.ceil(longest / multiple)


def _optimizer_steps(run_dir: Path) -> int:
    """Optimizer steps of a run: the lines of its grad_norms.jsonl (log_every = 1)."""
    return sum(1 for _ in (run_dir / "grad_norms.jsonl").open())


def table(figures: dict) -> str:
    header = ["features", "K", "all [mV]", "fast [mV]", "rest [mV]", "late life [mV]", "train wall [s]",
              "steps/s", "optimizer steps"]
    rows = []
    for name, feature_set in figures["feature_sets"].items():
        physics = feature_set["physics_rmse_mV"]
        rows.append([name, "physics only", *(physics[row] for row in ROW_CLASSES), "", "", ""])
        for run_figures in feature_set["runs"]:
            rmse = run_figures["rmse_mV"]
            rows.append([name, run_figures["K"], *(rmse[row] for row in ROW_CLASSES), run_figures["train_wall_s"],
                         f"{run_figures['steps_per_s']:.0f}", run_figures["optimizer_steps"]])
    return markdown_table(header, rows)


def plot(figures: dict):
    figure, (errors, cost) = plt.subplots(1, 2, figsize=(11, 3.8))
    for (name, feature_set), style in zip(figures["feature_sets"].items(), ("-", "--")):
        runs = feature_set["runs"]
        labels = [run_figures["K"] for run_figures in runs]
        for row, colour in zip(ROW_CLASSES, ("k", "tab:blue", "tab:green", "tab:red")):
            errors.plot(labels, [run_figures["rmse_mV"][row] for run_figures in runs], style, color=colour,
                        marker="o", label=f"{row}, {name}")
    errors.set(xlabel="truncation length K [steps]", ylabel="test voltage RMSE [mV]", title="error by row class")
    errors.legend(fontsize=7)
    runs = next(iter(figures["feature_sets"].values()))["runs"]
    labels = [run_figures["K"] for run_figures in runs]
    cost.bar(labels, [run_figures["train_wall_s"] for run_figures in runs], color="tab:gray")
    cost.set(xlabel="truncation length K [steps]", ylabel="training wall time [s]", title="training cost")
    speed = cost.twinx()
    speed.plot(labels, [run_figures["steps_per_s"] for run_figures in runs], color="tab:red", marker="s")
    speed.set_ylabel("sequence steps / s", color="tab:red")
    return figure


def main(argv: list[str] | None = None) -> dict:
    arguments = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    arguments.add_argument("--out", type=Path, required=True, help="directory for the table, plot and JSON")
    arguments.add_argument("--corpus", type=Path, default=ROOT / "corpora" / "claims",
                           help="corpus directory; generated from configs/corpus/claims.yaml when absent")
    arguments.add_argument("--quick", action="store_true", help="tiny settings (seconds): for smoke tests")
    arguments.add_argument("--seed", type=int, default=0)
    arguments.add_argument("--truncations", default="10,50,200,full",
                           help="comma-separated K values; 'full' = full BPTT")
    arguments.add_argument("--epochs", type=int, default=None)
    args = arguments.parse_args(argv)
    torch.set_num_threads(1)  # small recurrent models run fastest single-threaded
    truncations = [None if value == FULL else int(value) for value in args.truncations.split(",")]
    epochs = args.epochs or (2 if args.quick else 100)
    started = time.perf_counter()
    figures = run(corpus_on_demand(args.corpus, load_config(ROOT / "configs" / "corpus" / "claims.yaml", CorpusSpec)), args.out,
                   truncations, epochs, 8 if args.quick else 32, args.seed)
    figures["wall_s"] = time.perf_counter() - started
    write_outputs(args.out, "tbptt_bias", table(figures), figures, plot(figures))
    return figures


if __name__ == "__main__":
    main()
