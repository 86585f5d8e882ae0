"""Shared plumbing of the modelling-claims experiments (tbptt_bias, vanishing_gradients, aliasing,
causality): corpus on demand, features and splits through hybrid.data.corpus, training through
hybrid.train.loop.fit, voltage errors per row class, and the three outputs (Markdown table, PNG, JSON).

Not a script: each claim script imports it. Row classes, in mV of voltage error:
    fast   current flowing on the 1 s grid (pulses, drive cycles)
    rest   |I| < C/50: relaxation, where the hysteresis state and diffusion show
    late   rows of the ``late_life`` split: after ageing cycle ``LATE_AFTER_CYCLE`` of the ageing
           campaigns (held out of training; the state is carried over the whole early life)
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
from matplotlib import pyplot as plt  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hybrid.data import (  # noqa: E402
    VOLTAGE,
    Corpus,
    FeatureOptions,
    LateLifeSplit,
    SplitAssignment,
    SplitOptions,
    assign_splits,
    cell_inputs,
    decode_outputs,
    fit_normalisation,
    load_corpus,
    make_batches,
)
from hybrid.evaluate import error_stats, timescale_masks
from hybrid.train import EvaluationOptions  # noqa: E402
from hybrid.models import ModelConfig, build_model, config_to_dict  # noqa: E402
from hybrid.data import SequenceBatch
from hybrid.train import TrainConfig, TrainResult, fit, load_checkpoint, seed_everything  # noqa: E402
from sim.config import load_config  # noqa: E402
from sim.corpus import CorpusSpec, generate_corpus  # noqa: E402

CLAIMS_CONFIG = ROOT / "configs" / "corpus" / "claims.yaml"
DEFAULT_CORPUS = ROOT / "corpora" / "claims"
LATE_AFTER_CYCLE = 5
ROW_CLASSES = ("all", "fast", "rest", "late")


def parser(description: str) -> argparse.ArgumentParser:
    """Arguments every claim script takes: --out, --corpus, --quick, --seed."""
    arguments = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    arguments.add_argument("--out", type=Path, required=True, help="directory for the table, plot and JSON")
    arguments.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS,
                           help="corpus directory; generated from configs/corpus/claims.yaml when absent")
    arguments.add_argument("--quick", action="store_true", help="tiny settings (seconds): for smoke tests")
    arguments.add_argument("--seed", type=int, default=0)
    return arguments


def ensure_corpus(path: Path, spec: CorpusSpec | None = None) -> Path:
    """``path`` if it holds a corpus, else the corpus ``spec`` (default: configs/corpus/claims.yaml)
    generated there (serial backend)."""
    if not (path / "samples.parquet").is_file():
        generate_corpus(spec or claims_spec(), path, progress=False)
    return path


def claims_spec() -> CorpusSpec:
    """The corpus spec of configs/corpus/claims.yaml."""
    return load_config(CLAIMS_CONFIG, CorpusSpec)


@dataclass
class Data:
    """A corpus with its cell splits and the hybrid features' normalisation."""

    corpus: Corpus
    assignment: SplitAssignment
    normalisation: dict[str, Any]

    @property
    def input_size(self) -> int:
        return len(self.normalisation["features"])

    def batches(self, split: str, batch_size: int) -> list[SequenceBatch]:
        return make_batches(self.corpus, self.assignment.ranges[split], self.normalisation, batch_size)

    def has(self, split: str) -> bool:
        return bool(self.assignment.ranges.get(split))


def prepare(corpus_dir: Path, seed: int = 0, features: FeatureOptions = FeatureOptions()) -> Data:
    """Hybrid features and residual target of ``corpus_dir``, cells split 60/20/20 plus late life."""
    corpus = load_corpus(corpus_dir)
    options = SplitOptions(seed=seed, val_fraction=0.2, test_fraction=0.2,
                           late_life=LateLifeSplit(after_cycle=LATE_AFTER_CYCLE))
    assignment = assign_splits(corpus, options)
    return Data(corpus, assignment, fit_normalisation(corpus, assignment, features, "hybrid"))


def train(data: Data, model_config: ModelConfig, config: TrainConfig, run_dir: Path) -> tuple[nn.Module, TrainResult]:
    """Train a fresh model of ``model_config`` (weights seeded by config.seed) with hybrid.train.loop.fit;
    returns it with its best-validation weights loaded, in eval mode."""
    shutil.rmtree(run_dir, ignore_errors=True)  # a scratch run of this experiment: start afresh
    seed_everything(config.seed)
    model = build_model(model_config)
    result = fit(model, data.batches("train", config.batch_size), data.batches("val", config.batch_size), config,
                 run_dir=run_dir, model_config=config_to_dict(model_config), normalisation=data.normalisation)
    model.load_state_dict(load_checkpoint(run_dir / "best.pt")["model_state"])
    return model.eval(), result


@torch.no_grad()
def voltage_errors(model: nn.Module, data: Data, split: str) -> dict[str, np.ndarray]:
    """Voltage error [V] (hybrid - reference) of ``model`` run over each whole record of ``split``
    from row 0, pooled per row class (see the module docstring); invalid rows are left out."""
    options = EvaluationOptions()
    pooled: dict[str, list[np.ndarray]] = {name: [] for name in ROW_CLASSES}
    late = data.assignment.ranges.get("late_life", {})
    for sample_id, (start, stop) in sorted(data.assignment.ranges[split].items()):
        cell = data.corpus.cells[sample_id]
        inputs = torch.from_numpy(cell_inputs(cell, data.normalisation)).unsqueeze(0)  # (1, time, features)
        outputs, _ = model(inputs)  # (1, time, targets)
        voltage = decode_outputs(outputs[0].double().numpy(), cell, data.normalisation).voltage
        error = voltage - cell.columns[VOLTAGE]
        valid = cell.valid_rows(data.normalisation["max_residual_V"])
        scored = np.zeros(cell.rows, dtype=bool)
        scored[start:stop] = True
        scored &= valid
        masks = timescale_masks(cell, options)
        pooled["all"].append(error[scored])
        pooled["fast"].append(error[scored & masks["pulse"]])
        pooled["rest"].append(error[scored & masks["rest"]])
        if sample_id in late:
            late_rows = np.zeros(cell.rows, dtype=bool)
            late_rows[late[sample_id][0]:late[sample_id][1]] = True
            pooled["late"].append(error[late_rows & valid])
    return {name: np.concatenate(parts) if parts else np.empty(0) for name, parts in pooled.items()}


def rmse_mV(errors_V: np.ndarray) -> float:
    """RMSE [mV]; NaN when there are no rows."""
    return error_stats(errors_V)["rmse_mV"] if len(errors_V) else math.nan


def class_rmse_mV(model: nn.Module, data: Data) -> dict[str, float]:
    """Test-cell RMSE [mV] per row class; ``late`` over the late-life rows of every cell."""
    test = voltage_errors(model, data, "test")
    figures = {name: rmse_mV(test[name]) for name in ("all", "fast", "rest")}
    figures["late"] = rmse_mV(voltage_errors(model, data, "late_life")["late"]) if data.has("late_life") else math.nan
    return figures


def physics_rmse_mV(data: Data) -> dict[str, float]:
    """The same figures for the physics model alone (residual 0), to put the hybrids in scale."""
    return class_rmse_mV(_ZeroResidual(len(data.normalisation["targets"]), data.normalisation), data)


class _ZeroResidual(nn.Module):
    """Predicts a residual of exactly 0 V (the normalised output that decodes to 0)."""

    def __init__(self, outputs: int, normalisation: dict[str, Any]):
        super().__init__()
        mean, std = np.asarray(normalisation["target_mean"]), np.asarray(normalisation["target_std"])
        self.register_buffer("zero", torch.tensor(-mean / std, dtype=torch.float32))
        self.outputs = outputs

    def forward(self, x: torch.Tensor, state: Any = None) -> tuple[torch.Tensor, None]:
        return self.zero.expand(x.shape[0], x.shape[1], self.outputs), None


def markdown_table(header: list[str], rows: list[list[Any]]) -> str:
    """A Markdown table; floats with one decimal (NaN as "n/a")."""
    def cell(value: Any) -> str:
        if isinstance(value, float):
            return "n/a" if not math.isfinite(value) else f"{value:.1f}" if abs(value) >= 0.1 else f"{value:.3g}"
        return str(value)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(value) for value in row) + " |" for row in rows]
    return "\n".join(lines)


def write_outputs(out: Path, name: str, table: str, figures: dict[str, Any], figure: Any) -> dict[str, Path]:
    """Write OUT/NAME.md, OUT/NAME.json (NaN as null) and OUT/NAME.png; print the table."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {"table": out / f"{name}.md", "figures": out / f"{name}.json", "plot": out / f"{name}.png"}
    paths["table"].write_text(table + "\n")
    paths["figures"].write_text(json.dumps(_json_safe(figures), indent=1) + "\n")
    figure.tight_layout()
    figure.savefig(paths["plot"], dpi=110)
    plt.close(figure)
    print(table)
    return paths


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(key): _json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(item) for item in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value
