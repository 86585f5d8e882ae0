"""Benchmark: per-design wall time of the hybrid surrogate against its reference, and its metric errors.

Usage:
    python experiments/bench_surrogate.py --run RUN [--problem configs/design/cell.yaml configs/design/fast_charge.yaml]
        [--batch-sizes 1 16 256] [--reference-designs 16] [--repeats 3] [--seed 0]
        [--backend serial|ray] [--workers N] [--threads 1]
    python experiments/bench_surrogate.py --quick [--run SMOKE_RUN]

For every design problem, in one run on the trained run ``--run`` (the shipped problems want the
run trained on configs/corpus/design.yaml, whose reference is a DFN): designs drawn uniformly
(seeded) inside the problem's variable bounds, scored under every protocol of the problem the
way the design loop scores a trial (:func:`hybrid.design.candidates.score_candidates`), by the
hybrid surrogate and by the reference on the same designs.

- Warm models: each model first scores designs that are never timed (imports, first model
  build). Every timed call then sees designs no model has solved before, so a cached build
  never flatters a batch: a design whose geometry changes costs its rebuild, as in the loop.
- Per batch size B: the surrogate scores B designs in one call, ``--repeats`` times (fresh
  designs each time): seconds per design = wall / B, mean and sd over repeats. The reference
  solves design by design (it does not batch), so it is timed once, on the first
  ``min(B, --reference-designs)`` designs of the first repeat's batch (a DFN design costs
  ~10 s on 2 cores). speedup = reference / surrogate seconds per design.
- Errors: the surrogate's metric against the reference's on every design both solved ("ok"),
  for each objective and constraint of the problem plus energy, power and maximum temperature
  (where the protocol defines them), per protocol: absolute (metric units) and relative (%)
  mean and max; temperatures absolute only (K).
- Targets (``targets``): speedup >= 100x against a DFN reference and >= 20x against an SPMe one
  at batch 256 (the largest batch run when 256 is not), and every design's energy and power
  errors <= 1 % and maximum temperature error <= 0.5 K (judged on the max over designs).

``--quick``: the smoke problem (configs/design/smoke.yaml, SPMe reference) at batch sizes 1 and 4,
2 reference designs, 2 repeats; without ``--run`` it first builds a short smoke run (corpus and
6 epochs of training, ~20 s) in a temporary folder. Prints one JSON line; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from hybrid.design import DesignProblem, check_training_space, load_problem
from hybrid.design.candidates import Candidate, score_candidates
from hybrid.design.problem import params_at
from hybrid.evaluate import json_safe
from hybrid.surrogate import METRICS, HybridSurrogate, ReferenceModel, RunModel
from hybrid.train.run import TrainRunConfig, train_from_config
from sim.backends import ray_runtime
from sim.config import load_config
from sim.corpus import CorpusSpec, generate_corpus

ROOT = Path(__file__).resolve().parents[1]
FULL = {"problem": [ROOT / "configs" / "design" / "cell.yaml", ROOT / "configs" / "design" / "fast_charge.yaml"],
        "batch_sizes": [1, 16, 256], "reference_designs": 16, "repeats": 3}
QUICK = {"problem": [ROOT / "configs" / "design" / "smoke.yaml"], "batch_sizes": [1, 4], "reference_designs": 2,
         "repeats": 2}
QUICK_EPOCHS = 6  # a working smoke model in seconds (as the tests' smoke run); --quick times, it does not fit
TARGET_BATCH = 256
SPEEDUP_TARGETS = {"dfn": 100.0, "spme": 20.0}  # reference fidelity -> least speedup per design
ERROR_TARGETS = {"energy": 1.0, "power": 1.0, "max_temperature": 0.5}  # max over designs: % , %, K
ALWAYS_SCORED = ("discharge_energy_Wh", "power_capability_W", "max_temperature_K")


def sample_params(problem: DesignProblem, count: int, seed: int) -> list[dict[str, float]]:
    """``count`` variable sets drawn uniformly (log-uniformly for log ranges) inside the problem's bounds."""
    unit = np.random.default_rng(seed).random((count, len(problem.variables)))
    return params_at(problem, unit)


def timed_scores(problem: DesignProblem, model: RunModel,
                 params: list[dict[str, float]]) -> tuple[float, list[Candidate]]:
    """(wall seconds per design, candidates) of scoring ``params`` in one call, as the design loop does."""
    started = time.perf_counter()
    candidates = score_candidates(problem, model, params)
    return (time.perf_counter() - started) / len(params), candidates


def bench_problem(problem: DesignProblem, run: Path, args: argparse.Namespace) -> dict:
    """Timings per batch size and metric errors of one problem (see the module docstring)."""
    surrogate, reference = HybridSurrogate(run, model=problem.model), ReferenceModel(run)
    check_training_space(problem, surrogate)
    warm_count = 1 if problem.backend == "serial" else (problem.workers or os.cpu_count())  # a design per worker
    params = iter(sample_params(problem, warm_count + args.repeats * sum(args.batch_sizes), args.seed))
    warm = [next(params) for _ in range(warm_count)]
    for model in (surrogate, reference):
        score_candidates(problem, model, warm)
    batches, pairs = {}, []
    for batch_size in args.batch_sizes:
        seconds, first_batch = [], []
        for repeat in range(args.repeats):
            batch = [next(params) for _ in range(batch_size)]
            per_design, candidates = timed_scores(problem, surrogate, batch)
            seconds.append(per_design)
            if repeat == 0:
                first_batch = list(zip(batch, candidates))
            progress(f"{problem.name}: surrogate, batch {batch_size}, repeat {repeat + 1}: {per_design:.3g} s/design")
        solved = first_batch[:args.reference_designs]
        reference_s, checked = timed_scores(problem, reference, [variables for variables, _ in solved])
        progress(f"{problem.name}: reference, {len(solved)} designs: {reference_s:.3g} s/design")
        pairs += [(candidate, truth) for (_, candidate), truth in zip(solved, checked)]
        surrogate_s = statistics.fmean(seconds)
        batches[str(batch_size)] = {"surrogate_s_per_design": surrogate_s,
                                    "surrogate_s_per_design_sd": statistics.pstdev(seconds),
                                    "reference_s_per_design": reference_s, "reference_designs": len(solved),
                                    "speedup": reference_s / surrogate_s}
    return {"reference_fidelity": reference.fidelity.model, "batches": batches,
            "errors": metric_errors(problem, pairs)}


def metric_errors(problem: DesignProblem, pairs: Sequence[tuple[Candidate, Candidate]]) -> dict:
    """"protocol.metric" -> surrogate error against the reference over the designs both solved."""
    errors = {}
    for protocol in problem.protocols:
        read = [target.metric for target in [*problem.objectives, *problem.constraints]
                if problem.protocol_of(target) == protocol]
        for metric in dict.fromkeys([*read, *ALWAYS_SCORED]):
            values = np.array([(estimate.metrics[protocol][metric], truth.metrics[protocol][metric])
                               for estimate, truth in pairs if estimate.status == truth.status == "ok"]).reshape(-1, 2)
            values = values[np.all(np.isfinite(values), axis=1)]
            if len(values):
                errors[f"{protocol}.{metric}"] = error_figures(values[:, 0], values[:, 1], METRICS[metric][0])
    return errors


def error_figures(estimate: np.ndarray, truth: np.ndarray, unit: str) -> dict:
    """Mean and max absolute error (in ``unit``) and, except for temperatures, relative error (%)."""
    absolute = np.abs(estimate - truth)
    figures = {"unit": unit, "designs": len(truth), "mean_abs": float(absolute.mean()),
               "max_abs": float(absolute.max())}
    if unit != "K":  # a relative error of an absolute temperature means nothing
        relative = 100.0 * absolute / np.abs(truth)
        figures |= {"mean_rel_pct": float(relative.mean()), "max_rel_pct": float(relative.max())}
    return figures


def targets(problems: dict) -> dict:
    """Every target of the module docstring: its bound, the values it is judged on, met (None: nothing to judge)."""
    result = {}
    for fidelity, bound in SPEEDUP_TARGETS.items():
        values, batches = {}, set()
        for name, figures in problems.items():
            if figures["reference_fidelity"] == fidelity:
                run = figures["batches"]
                batch = str(TARGET_BATCH) if str(TARGET_BATCH) in run else max(run, key=int)  # --quick: the largest
                values[name], batches = run[batch]["speedup"], batches | {int(batch)}
        result[f"speedup_vs_{fidelity}>={bound:g}"] = judged(values, bound, at_least=True) | {"batch": sorted(batches)}
    for kind, bound in ERROR_TARGETS.items():
        key, unit = ("max_abs", "K") if kind == "max_temperature" else ("max_rel_pct", "pct")
        values = {f"{name}.{label}": entry[key] for name, figures in problems.items()
                  for label, entry in figures["errors"].items() if kind in label.split(".", 1)[1] and key in entry}
        result[f"{kind}_error_{unit}<={bound:g}"] = judged(values, bound, at_least=False)
    return result


def judged(values: dict[str, float], bound: float, *, at_least: bool) -> dict:
    met = all((v >= bound) if at_least else (v <= bound) for v in values.values()) if values else None
    return {"bound": bound, "values": values, "met": met}


def build_smoke_run(out: Path) -> Path:
    """A short smoke run (configs/train/smoke.yaml for QUICK_EPOCHS on configs/corpus/smoke.yaml) under ``out``."""
    generate_corpus(load_config(ROOT / "configs" / "corpus" / "smoke.yaml", CorpusSpec), out / "corpus", progress=False)
    config = load_config(ROOT / "configs" / "train" / "smoke.yaml", TrainRunConfig)
    config = config.model_copy(update={"train": config.train.model_copy(update={"epochs": QUICK_EPOCHS})})
    train_from_config(config, out / "corpus", out / "run")
    return out / "run"


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, default=None, help="trained run directory (required without --quick)")
    parser.add_argument("--problem", type=Path, nargs="+", default=None, help="design problem YAMLs")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=None)
    parser.add_argument("--reference-designs", type=int, default=None,
                        help="at most this many designs of each batch are solved by the reference")
    parser.add_argument("--repeats", type=int, default=None, help="timed surrogate calls per batch size")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--backend", choices=["serial", "ray"], default=None, help="override the problems' backend")
    parser.add_argument("--workers", type=int, default=None, help="Ray CPUs (default: all)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--quick", action="store_true", help="the smoke problem on the smoke run, small batches")
    args = parser.parse_args(argv)
    for key, value in (QUICK if args.quick else FULL).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.run is None and not args.quick:
        parser.error("--run is required without --quick")
    if min(args.batch_sizes) < 1 or args.reference_designs < 1 or args.repeats < 1:
        parser.error("--batch-sizes, --reference-designs and --repeats: allowed: positive integers")
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    begun, load_at_start = time.perf_counter(), os.getloadavg()[0]
    problems = [load_problem(path) for path in args.problem]
    problems = [p.model_copy(update={"backend": args.backend or p.backend, "workers": args.workers or p.workers})
                for p in problems]
    uses_ray = any(p.backend == "ray" for p in problems)
    with tempfile.TemporaryDirectory(prefix="bench-surrogate-") as scratch, \
            (ray_runtime(args.workers) if uses_ray else contextlib.nullcontext()):
        started = time.perf_counter()
        run = args.run or build_smoke_run(Path(scratch))
        run_build_s = time.perf_counter() - started
        figures = {problem.name: bench_problem(problem, run, args) for problem in problems}
    result = {"bench": "surrogate", "run": str(args.run or "smoke run built in a temporary folder"),
              "quick": args.quick, "seed": args.seed,
              "batch_sizes": args.batch_sizes, "reference_designs": args.reference_designs, "repeats": args.repeats,
              "backend": {p.name: p.backend for p in problems},
              "machine": {"cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                          "load_1min": [round(load_at_start, 2), round(os.getloadavg()[0], 2)]},
              "problems": figures, "targets": targets(figures), "run_build_s": round(run_build_s, 1),
              "bench_wall_s": round(time.perf_counter() - begun, 1)}
    result = json_safe(result)
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
