"""Design loop on the hybrid surrogate, measured against the reference.

Usage:
    hybat corpus configs/corpus/design.yaml --out corpora/design --backend ray
    hybat train configs/train/design.yaml --corpus corpora/design --out runs/design
    python experiments/design_loop.py configs/design/cell.yaml --model runs/design --out designs/cell \
        [--compare-reference | --direct-only] [--reuse-loop] [--timing-designs 4] [--backend serial|ray] \
        [--trials N] [--objective K] [--set KEY=VALUE ...]

In one run it measures:
1. speed and accuracy per design evaluation: the same ``--timing-designs`` designs (a seeded
   Latin hypercube over the problem's variables) and the same protocols, evaluated by the
   surrogate and by the reference, serially and each with cold model caches: seconds per
   design, the speedup (and again with the models already built, i.e. the cost of a design
   that needs no rebuild: same geometry and protocol structure), and the surrogate's metric
   errors (energy %, power %, retention percentage points, max temperature K, and the voltage
   RMSE mV over the whole protocol, phase by phase, and while both still follow the same
   current (hybrid.surrogate.metrics.voltage_rmse_mV), with the uncorrected physics RMSE beside each);
2. the design loop (:func:`hybrid.design.design_loop`): optimise on the surrogate, verify the
   selected designs on the reference; report.md, design.png, report.json in OUT/surrogate;
   The loop's uncertainty: coverage of the surrogate's 90 % intervals on the verified designs
   (each judged by the calibration it was picked with; target 85-95 %) and of the raw ensemble.
3. with ``--compare-reference``: the same optimiser (same seed, same number of trials) run
   directly on the reference in OUT/reference (a study there is resumed, so variants of the
   loop share it). Single objective: the regret, the gap between the best reference
   objective of the surrogate loop's verified designs and the best the reference study found,
   in % of the latter (target <= 1 %). Several objectives: the hypervolumes of the two
   reference-evaluated feasible fronts, against one reference point (the worst value of each
   objective over both fronts, pushed out by 10 % of its range; target >= 97 %). Either way the
   fraction of the direct study's evaluations the loop spent on the reference (target <= 10 %),
   and OUT/pareto.png: the surrogate's last study and front, the verified designs with their
   intervals and the reference values, and the direct reference front.

``--direct-only`` runs (or resumes) just the direct study, e.g. ahead of the loop with
``--backend ray``; ``--reuse-loop`` reads the loop's report from an earlier run in OUT, so
the comparison can follow a loop run earlier. ``--set KEY=VALUE`` overrides the problem YAML
by dotted path (``verify.select=best``, ``verify.budget=50``), to compare variants.
``--timing-designs 0`` skips section 1. Prints one JSON line of figures and writes OUT/summary.md.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import optuna
import torch
from scipy.stats import qmc

from hybrid.design import (
    Candidate,
    DesignProblem,
    check_training_space,
    design_loop,
    hypervolume,
    minimisation_form,
    optimise,
    pareto_front,
    protocol_with_values,
    study_candidates,
)
from hybrid.design.problem import params_at
from hybrid.design.report import REPORT_JSON, plot_study
from hybrid.surrogate import HybridSurrogate, ReferenceModel, RunModel, voltage_rmse_mV
from sim.config import apply_overrides, read_yaml, validate


def timing_designs(problem: DesignProblem, count: int, seed: int) -> list[dict[str, float]]:
    """``count`` variable sets from a seeded Latin hypercube over the problem's bounds."""
    unit = qmc.LatinHypercube(len(problem.variables), seed=seed).random(count)
    return params_at(problem, unit)


def evaluate_all(problem: DesignProblem, model: RunModel, params_list: list[dict[str, float]]) -> tuple[dict, float]:
    """protocol -> evaluations of every variable set (serial), and the wall seconds it took."""
    started = time.perf_counter()
    evaluations = {}
    for name, protocol in problem.protocols.items():
        designs, protocols = [], []
        for params in params_list:
            design, values = problem.split(params)
            designs.append(design)
            protocols.append(protocol_with_values(protocol, values[name], name))
        evaluations[name] = model.evaluate(designs, protocols, conditions=problem.conditions, mass_model=problem.mass,
                                           metric_options=problem.metric_options, backend="serial")
    return evaluations, time.perf_counter() - started


def _relative_pct(estimate: float, truth: float) -> float:
    return 100.0 * abs(estimate - truth) / abs(truth)


def speed_and_accuracy(problem: DesignProblem, run: Path, count: int) -> dict:
    """Section 1 of the module docstring (fresh evaluators, so both start with cold caches)."""
    params_list = timing_designs(problem, count, problem.optimiser.seed)
    surrogate, reference = HybridSurrogate(run, model=problem.model), ReferenceModel(run)
    surrogate_runs, surrogate_s = evaluate_all(problem, surrogate, params_list)
    reference_runs, reference_s = evaluate_all(problem, reference, params_list)
    # again, now that both hold the built models: what a design costs without a rebuild
    _, surrogate_warm_s = evaluate_all(problem, surrogate, params_list)
    _, reference_warm_s = evaluate_all(problem, reference, params_list)
    errors: dict[str, list[float]] = {name: [] for name in (
        "energy_pct", "power_pct", "retention_pp", "max_temperature_K", "voltage_rmse_mV", "physics_voltage_rmse_mV",
        "voltage_rmse_same_current_mV", "physics_voltage_rmse_same_current_mV")}
    for name in problem.protocols:
        for estimate, truth in zip(surrogate_runs[name], reference_runs[name]):
            if estimate.status == "failed" or truth.status == "failed":
                continue
            e, t = estimate.metrics, truth.metrics
            pairs = {"energy_pct": _relative_pct(e["discharge_energy_Wh"], t["discharge_energy_Wh"]),
                     "power_pct": _relative_pct(e["power_capability_W"], t["power_capability_W"]),
                     "retention_pp": abs(e["capacity_retention_pct"] - t["capacity_retention_pct"]),
                     "max_temperature_K": abs(e["max_temperature_K"] - t["max_temperature_K"])}
            threshold = problem.metric_options.rest_c_rate * truth.capacity_Ah
            physics = {**estimate.columns, "Voltage [V]": estimate.columns["Physics voltage [V]"]}
            for label, until_divergence in (("", False), ("_same_current", True)):
                for prefix, columns in (("", estimate.columns), ("physics_", physics)):
                    pairs[f"{prefix}voltage_rmse{label}_mV"] = voltage_rmse_mV(
                        columns, truth.columns, threshold_A=threshold, until_divergence=until_divergence)
            for key, value in pairs.items():
                if np.isfinite(value):
                    errors[key].append(float(value))
    return {"designs": count, "surrogate_s_per_design": surrogate_s / count,
            "reference_s_per_design": reference_s / count, "speedup": reference_s / surrogate_s,
            "surrogate_warm_s_per_design": surrogate_warm_s / count,
            "reference_warm_s_per_design": reference_warm_s / count,
            "warm_speedup": reference_warm_s / surrogate_warm_s,
            "errors_mean": {key: float(np.mean(values)) if values else None for key, values in errors.items()},
            "errors_max": {key: float(np.max(values)) if values else None for key, values in errors.items()}}


def compare_with_reference(problem: DesignProblem, run: Path, out: Path, loop: dict) -> dict:
    """Section 3 of the module docstring."""
    started = time.perf_counter()
    study = optimise(problem, ReferenceModel(run), out / "reference")
    reference_candidates = [candidate for _, candidate in study_candidates(study)]
    reference_s = time.perf_counter() - started
    direct = [c for c in reference_candidates if c.feasible(problem)]
    natural = np.array([[c.value(problem, o) for o in problem.objectives] for c in direct]).reshape(len(direct), -1)
    plot_study(problem, loop, surrogate_study(problem, out / "surrogate"), out / "pareto.png", direct=natural)
    verified = [Candidate(row["params"], row["design"], {p: {m: np.nan if v is None else v for m, v in metrics.items()}
                                                         for p, metrics in row["reference"].items()},
                          status=row["status"]["reference"]) for row in loop["chosen"]]
    verified = [c for c in verified if c.feasible(problem)]
    result = {"reference_study_evaluations": len(reference_candidates), "reference_study_s": reference_s,
              "reference_fraction": loop["reference_evaluations"] / len(reference_candidates)}
    direct_points, verified_points = minimisation_form(problem, direct), minimisation_form(problem, verified)
    if len(problem.objectives) == 1:
        sign = 1.0 if problem.objectives[0].direction == "minimize" else -1.0
        best_direct = sign * float(np.min(direct_points[:, 0])) if len(direct) else float("nan")
        best_surrogate = sign * float(np.min(verified_points[:, 0])) if len(verified) else float("nan")
        gap = sign * (best_surrogate - best_direct) / abs(best_direct) * 100.0
        result.update({"best_reference_direct": best_direct, "best_via_surrogate": best_surrogate,
                       "objective_gap_pct": gap})
    else:
        both = np.vstack([points for points in (direct_points, verified_points) if len(points)])
        both = both[np.all(np.isfinite(both), axis=1)]
        worst, best = both.max(axis=0), both.min(axis=0)
        reference_point = worst + 0.1 * np.maximum(worst - best, 1e-12)
        direct_front = direct_points[pareto_front(direct_points)] if len(direct) else direct_points
        result.update({"hypervolume_reference_direct": hypervolume(direct_front, reference_point),
                       "hypervolume_via_surrogate": hypervolume(verified_points, reference_point),
                       "hypervolume_reference_point": reference_point.tolist(),
                       "reference_direct_pareto_size": int(len(direct_front)),
                       "verified_feasible": len(verified)})
        result["hypervolume_ratio"] = (result["hypervolume_via_surrogate"]
                                       / result["hypervolume_reference_direct"])
    result["targets"] = _targets(result)
    return result


def surrogate_study(problem: DesignProblem, loop_dir: Path) -> list:
    """The candidates of the loop's last surrogate study (after active learning, its last round's)."""
    rounds = sorted(loop_dir.glob("active_*"), key=lambda path: int(path.name.split("_")[1]))
    study_dir = rounds[-1] if rounds else loop_dir
    return study_candidates(optuna.load_study(study_name=problem.name, storage=f"sqlite:///{study_dir / 'study.db'}"))


def _targets(result: dict) -> dict:
    """The issue's targets: regret <= 1 %, hypervolume >= 97 %, <= 10 % of the direct study's trials."""
    checks = {"reference_fraction": (result["reference_fraction"], 0.10, "max")}
    if "objective_gap_pct" in result:
        # the gap is positive where the loop's best is worse; a loop that beats the direct study has no regret
        checks["regret_pct"] = (max(result["objective_gap_pct"], 0.0), 1.0, "max")
    if "hypervolume_ratio" in result:
        checks["hypervolume_ratio"] = (result["hypervolume_ratio"], 0.97, "min")
    return {key: {"value": value, "bound": bound,
                  "met": bool(np.isfinite(value) and (value <= bound if side == "max" else value >= bound))}
            for key, (value, bound, side) in checks.items()}


def summary_markdown(problem: DesignProblem, figures: dict) -> str:
    lines = [f"# Design loop `{problem.name}`", "", "| figure | value |", "|---|---|"]
    if figures.get("timing"):
        lines += _timing_lines(figures["timing"])
    lines += [f"| surrogate evaluations | {figures['loop']['surrogate_evaluations']} |",
              f"| reference evaluations (calibration and verification) | {figures['loop']['reference_evaluations']} |",
              f"| loop wall s | {figures['loop']['wall_s']:.0f} |"]
    coverage = figures["loop"]["coverage"]
    for label, side in (("90 % interval coverage, calibrated", coverage),
                        ("raw ensemble", figures["loop"]["coverage_raw"])):
        value = side["overall"]
        lines.append(f"| {label} | {'-' if value is None else f'{100 * value:.0f} %'} of {side['count']} |")
    for key, value in figures.get("comparison", {}).items():
        if key != "targets":
            lines.append(f"| {key} | {value if not isinstance(value, float) else f'{value:.4g}'} |")
    for key, target in figures.get("comparison", {}).get("targets", {}).items():
        verdict = "met" if target["met"] else "missed"
        lines.append(f"| target {key} ({target['bound']}) | {target['value']:.4g}: {verdict} |")
    return "\n".join(lines) + "\n"


def _timing_lines(timing: dict) -> list[str]:
    lines = [f"| surrogate s / design | {timing['surrogate_s_per_design']:.2f} |",
             f"| reference s / design | {timing['reference_s_per_design']:.2f} |",
             f"| speedup | {timing['speedup']:.1f}x |",
             f"| surrogate / reference s per design, models already built | "
             f"{timing['surrogate_warm_s_per_design']:.2f} / {timing['reference_warm_s_per_design']:.2f} |",
             f"| speedup, models already built | {timing['warm_speedup']:.1f}x |"]
    for key, value in timing["errors_mean"].items():
        if value is not None:
            lines.append(f"| mean / max {key} | {value:.3g} / {timing['errors_max'][key]:.3g} |")
    return lines


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", type=Path, help="design problem YAML (configs/design/)")
    parser.add_argument("--model", type=Path, required=True, help="trained run directory")
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    parser.add_argument("--direct-only", action="store_true",
                        help="only run (or resume) the direct reference study of section 3, then stop")
    parser.add_argument("--reuse-loop", action="store_true",
                        help="read the loop's report (and timing) from an earlier run in --out instead of running it")
    parser.add_argument("--compare-reference", action="store_true",
                        help="also run the optimiser directly on the reference (expensive)")
    parser.add_argument("--timing-designs", type=int, default=4, help="designs in the speed/accuracy check")
    parser.add_argument("--backend", choices=["serial", "ray"], default=None, help="override the problem's backend")
    parser.add_argument("--trials", type=int, default=None, help="override optimiser.trials")
    parser.add_argument("--objective", type=int, default=None,
                        help="keep only this objective (0-based): a single-objective variant of the problem")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--set", dest="overrides", nargs="*", default=[], metavar="KEY=VALUE",
                        help="problem overrides by dotted path, e.g. verify.select=best")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    problem = validate(DesignProblem, apply_overrides(read_yaml(args.config), args.overrides), str(args.config))
    updates = {"backend": args.backend} if args.backend else {}
    if args.trials:
        updates["optimiser"] = problem.optimiser.model_copy(update={"trials": args.trials})
    if args.objective is not None:
        objective = problem.objectives[args.objective]
        updates.update(objectives=[objective], name=f"{problem.name}-{objective.metric}")
    problem = problem.model_copy(update=updates)
    check_training_space(problem, ReferenceModel(args.model))
    args.out.mkdir(parents=True, exist_ok=True)
    if args.direct_only:  # the expensive part, resumable: run it ahead (on more workers), compare later
        study = optimise(problem, ReferenceModel(args.model), args.out / "reference")
        print(json.dumps({"problem": problem.name, "direct_trials": len(study_candidates(study))}))
        return {}
    earlier = json.loads((args.out / "figures.json").read_text()) if args.reuse_loop else {}
    figures = {"problem": problem.name, "overrides": args.overrides, "timing": earlier.get("timing")}
    if args.timing_designs and not args.reuse_loop:
        figures["timing"] = speed_and_accuracy(problem, args.model, args.timing_designs)
    report = args.out / "surrogate" / REPORT_JSON
    loop = (json.loads(report.read_text()) if args.reuse_loop else
            design_loop(problem, HybridSurrogate(args.model, model=problem.model), ReferenceModel(args.model),
                        args.out / "surrogate"))
    figures["loop"] = {key: loop[key] for key in ("surrogate_evaluations", "reference_evaluations", "wall_s", "best")}
    figures["loop"].update({key: loop["uncertainty"][key] for key in ("coverage", "coverage_raw", "calibration",
                                                                      "active_learning")})
    if args.compare_reference:
        figures["comparison"] = compare_with_reference(problem, args.model, args.out, loop)
    (args.out / "summary.md").write_text(summary_markdown(problem, figures))
    (args.out / "figures.json").write_text(json.dumps(figures, indent=1))
    print(json.dumps(figures))
    return figures


if __name__ == "__main__":
    main()
