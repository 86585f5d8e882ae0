"""Benchmark: how close the residual hybrids come to their floor, over seeds.

Usage:
    python experiments/bench_residual.py --corpus DIR [--config configs/train/default.yaml]
                                         [--seeds 0 1 2] [--out DIR] [--set KEY=VALUE ...]

Trains the run ``--config`` on ``--corpus`` once per seed (``train.seed``; the cell split stays
that of the config, so seeds change the initial weights and the batch order) and evaluates it.
``--set`` overrides config entries by dotted path (``features.design=false``, ``models.0.model.cell=lstm``), to compare
recipes. Prints one JSON line; per split (test, late_life, unseen_design, unseen_temperature,
whichever the corpus has) the voltage RMSE [mV] as mean and (population) sd over seeds of:

- physics, and the floor (the plant at nominal variability, a corpus with ``floor: true``);
- the best open-loop hybrid: of the hybrids without a context, the one with the lowest mean
  validation RMSE (chosen on validation cells, never on a held-out split);
- the best context hybrid (the same choice among context-conditioned hybrids), predicting
  each record after its characterisation window, and the same model without a context;
- their ratios to physics and to the floor, against the issue's targets;
- with a forecaster (kind forecaster), its rolling RMSE at its horizon beside the last measured
  residual held (hold_last), physics and the open-loop hybrid on the same forecast rows;
- seconds per training epoch of the context hybrid over the open-loop one;
- ``models``: per split, every model of the run (and the floor) the same way.

Every split scores the same rows for every model: rows inside a context window are left out
for all of them.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

from hybrid.evaluate import evaluate_run, over_seeds
from hybrid.evaluate.predict import NO_CONTEXT
from hybrid.train.run import METRICS, SUMMARY, TrainRunConfig, train_from_config
from sim.config import apply_overrides, validate

ROOT = Path(__file__).resolve().parents[1]
HELD_OUT = ("test", "late_life", "unseen_design", "unseen_temperature")
TARGETS = {"open_loop_vs_physics": 0.3, "open_loop_vs_floor": 1.5, "context_vs_physics": 0.2,
           "context_vs_floor": 1.5, "context_epoch_time_ratio": 2.0}


def run_seed(config: dict, corpus: Path, seed: int, out: Path) -> dict:
    """Train and evaluate one seed; returns the report plus each model's mean epoch seconds."""
    config = apply_overrides(json.loads(json.dumps(config)), [f"train.seed={seed}"])
    run_dir = out / f"seed{seed}"
    if (run_dir / SUMMARY).exists():  # a seed an earlier bench trained (--out): not trained again
        summary = json.loads((run_dir / SUMMARY).read_text())
    else:
        summary = train_from_config(validate(TrainRunConfig, config, "bench config"), corpus, run_dir)
    metrics = run_dir / METRICS
    if metrics.exists() and json.loads(metrics.read_text()).get("corpus") == str(corpus):
        report = json.loads(metrics.read_text())  # evaluated on this corpus already
    else:
        report = evaluate_run(run_dir, corpus)
    epoch_s = {name: entry["seconds"] / max(entry["epochs_run"], 1) for name, entry in summary["models"].items()}
    kinds = {name: entry["kind"] for name, entry in summary["models"].items()}
    return {"splits": report["splits"], "rolling": report.get("rolling", {}), "epoch_s": epoch_s, "kinds": kinds}


def best_on_validation(runs: list[dict], names: list[str]) -> str | None:
    if not names:
        return None
    return min(names, key=lambda name: statistics.fmean(run["splits"]["val"][name]["rmse_mV"] for run in runs))


def figures(runs: list[dict]) -> dict:
    """Per held-out split: mean and sd over seeds of every figure in the module docstring."""
    kinds = runs[0]["kinds"]
    hybrids = [name for name, kind in kinds.items() if name != "black_box" and kind != "forecaster"]
    open_loop = best_on_validation(runs, [name for name in hybrids if kinds[name] != "context_residual"])
    context = best_on_validation(runs, [name for name in hybrids if kinds[name] == "context_residual"])
    models = {"physics": "physics", "black_box": "black_box", "open_loop": open_loop, "context": context,
              "context_none": context and context + NO_CONTEXT}
    result: dict = {"open_loop_model": open_loop, "context_model": context, "splits": {}}
    for split in HELD_OUT:
        if split not in runs[0]["splits"]:
            continue
        tables = [run["splits"][split] for run in runs]
        row = {label: over_seeds([table[name]["rmse_mV"] for table in tables])
               for label, name in models.items() if name is not None}
        if all("floor" in table for table in tables):
            row["floor"] = over_seeds([table["floor"]["rmse_mV"] for table in tables])
        for label in ("open_loop", "context"):
            if label in row:
                row[f"{label}_vs_physics"] = over_seeds([t[models[label]]["rmse_mV"] / t["physics"]["rmse_mV"] for t in tables])
                if "floor" in row:
                    row[f"{label}_vs_floor"] = over_seeds([t[models[label]]["rmse_mV"] / t["floor"]["rmse_mV"] for t in tables])
        result["splits"][split] = row | _rolling(runs, split, open_loop)
    result["models"] = _every_model(runs)
    if open_loop and context:
        result["context_epoch_time_ratio"] = over_seeds([run["epoch_s"][context] / run["epoch_s"][open_loop] for run in runs])
    result["targets"] = _targets(result)
    return result


def _every_model(runs: list[dict]) -> dict:
    """Per split (validation and held out), every model's RMSE [mV], mean and sd over the seeds."""
    splits = [split for split in ("val", *HELD_OUT) if split in runs[0]["splits"]]
    return {split: {name: over_seeds([run["splits"][split][name]["rmse_mV"] for run in runs])
                    for name in runs[0]["splits"][split]} for split in splits}


def _rolling(runs: list[dict], split: str, open_loop: str | None) -> dict:
    """The first forecaster's rolling RMSE [mV] on ``split``, with hold_last and the open-loop
    hybrid on the same forecast rows (empty without a forecaster)."""
    forecasters = [name for name, kind in runs[0]["kinds"].items() if kind == "forecaster"]
    if not forecasters or split not in runs[0]["rolling"]:
        return {}
    tables = [run["rolling"][split] for run in runs]
    names = {"rolling": forecasters[0], "rolling_hold_last": "hold_last", "rolling_open_loop": open_loop,
             "rolling_physics": "physics"}
    row = {label: over_seeds([table[name]["rmse_mV"] for table in tables])
           for label, name in names.items() if name in tables[0]}
    row["rolling_horizon_s"] = tables[0][forecasters[0]]["horizon_s"]
    return row


def _targets(result: dict) -> dict:
    """Each target with its worst mean over the held-out splits and whether it is met."""
    met = {}
    for key, bound in TARGETS.items():
        if key == "context_epoch_time_ratio":
            values = [result[key]["mean"]] if key in result else []
        else:
            splits = [s for s in result["splits"] if not (key.startswith("context") and s == "unseen_temperature")]
            values = [result["splits"][s][key]["mean"] for s in splits if key in result["splits"][s]]
        if values:
            met[key] = {"worst": max(values), "bound": bound, "met": max(values) <= bound}
    return met


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, required=True, help="corpus directory (generated with floor: true)")
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "train" / "default.yaml")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--set", dest="overrides", nargs="*", default=[], metavar="KEY=VALUE",
                        help="config overrides by dotted path, e.g. features.design=false")
    parser.add_argument("--out", type=Path, default=None, help="keep the runs here (default: a temporary folder); seeds trained (and evaluated) there "
                        "before are reused: seeds can run in parallel processes, gathered by one more call")
    args = parser.parse_args(argv)
    config = apply_overrides(yaml.safe_load(args.config.read_text()), args.overrides)
    config["evaluation"] = {**config.get("evaluation", {}), "plots": False}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        out = args.out or Path(scratch)
        runs = [run_seed(config, args.corpus, seed, out) for seed in args.seeds]
    print(json.dumps({"benchmark": "residual", "corpus": str(args.corpus), "config": str(args.config),
                      "overrides": args.overrides, "seeds": args.seeds, **figures(runs),
                      "wall_s": time.perf_counter() - started}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
