"""The design report: report.md (the chosen designs, surrogate beside reference per metric) and
a PNG (single objective: convergence; several: the Pareto front), beside report.json and
study.db in the design's output directory.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from hybrid.design.candidates import Candidate
from hybrid.design.optimise import STUDY_FILE, pareto_front
from hybrid.design.problem import DesignProblem, Objective, constraint_labels
from hybrid.design.uncertainty import objective_label

REPORT_JSON = "report.json"
REPORT_MARKDOWN = "report.md"
PLOT_FILE = "design.png"


def write_report(problem: DesignProblem, report: dict[str, Any], candidates: Sequence[tuple[int, Candidate]],
                 out_dir: Path) -> dict[str, str]:
    """Write report.md and the PNG (Pareto front or convergence); returns their paths."""
    (out_dir / REPORT_MARKDOWN).write_text(markdown_report(problem, report))
    plot_study(problem, report, candidates, out_dir / PLOT_FILE)
    return {"markdown": str(out_dir / REPORT_MARKDOWN), "plot": str(out_dir / PLOT_FILE),
            "json": str(out_dir / REPORT_JSON), "study": str(out_dir / STUDY_FILE)}


def _targets(problem: DesignProblem) -> list[tuple[str, str]]:
    """(protocol, metric) of every objective and constraint, once each, in order."""
    seen = []
    for target in [*problem.objectives, *problem.constraints]:
        key = (problem.protocol_of(target), target.metric)
        if key not in seen:
            seen.append(key)
    return seen


def markdown_report(problem: DesignProblem, report: dict[str, Any]) -> str:
    """A Markdown table of the chosen designs: variables, then surrogate / reference per metric."""
    targets = _targets(problem)
    lines = [f"# Design problem `{problem.name}`", "",
             f"{report['surrogate_evaluations']} surrogate evaluations, {report['reference_evaluations']} reference "
             f"evaluations, {report['wall_s']:.0f} s.", "",
             "Objectives: " + ", ".join(f"{o.direction} {problem.protocol_of(o)}.{o.metric}"
                                        for o in problem.objectives)]
    if problem.constraints:
        lines.append("Constraints: " + ", ".join(constraint_labels(problem)))
        lines.append("Back-off of the surrogate's constraints after verification: " + ", ".join(
            f"{label}: {value:.4g}" for label, value in report["constraint_backoff"].items()))
    header = ["trial (round)", *problem.variables, *(f"{p}.{m} surrogate / reference" for p, m in targets),
              "feasible (S/R)"]
    lines += ["", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for k, row in enumerate(report["chosen"]):
        mark = " (best)" if report["best"] == k else ""
        trial = {"calibration": f"calibration {-row['trial']}",
                 "polish": f"polish {row['trial'] - problem.optimiser.trials + 1}"}.get(row.get("purpose"), row["trial"])
        cells = [f"{trial} ({row['round'] + 1}){mark}",
                 *(f"{row['params'][name]:.4g}" for name in problem.variables)]
        for protocol, metric in targets:
            cells.append(f"{_fmt(row['surrogate'].get(protocol, {}).get(metric))} / "
                         f"{_fmt(row['reference'].get(protocol, {}).get(metric))}")
        cells.append(f"{'yes' if row['surrogate_feasible'] else 'no'} / {'yes' if row['reference_feasible'] else 'no'}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines + _uncertainty_lines(report.get("uncertainty"))) + "\n"


def _uncertainty_lines(uncertainty: dict[str, Any] | None) -> list[str]:
    """The coverage of the surrogate's 90 % intervals on the reference, and the calibration."""
    if not uncertainty:
        return []
    judged, raw = uncertainty["coverage"], uncertainty["coverage_raw"]
    lines = ["", "## Uncertainty", "",
             f"90 % intervals of the search picks covered {_fmt_pct(judged['overall'])} of their reference values "
             f"({judged['count']} values, each interval calibrated on the designs verified before it); the raw "
             f"ensemble spread covered {_fmt_pct(raw['overall'])} ({raw['count']} values).", "",
             "| target | coverage | raw coverage | offset | scale | floor | selection widening | local bias length |",
             "|---|---|---|---|---|---|---|---|"]
    calibration = uncertainty["calibration"]
    for label, value in judged["targets"].items() or raw["targets"].items():
        fit = calibration.get(label, {})
        lines.append(f"| {label} | {_fmt_pct(value)} | {_fmt_pct(raw['targets'].get(label))} | "
                     f"{_fmt(fit.get('offset'))} | {_fmt(fit.get('scale'))} | {_fmt(fit.get('floor'))} | "
                     f"{_fmt(fit.get('selection_widening'))} | {_fmt(fit.get('local_bias_length'))} |")
    for k, round_ in enumerate(uncertainty.get("active_learning", []), start=1):
        if round_.get("probe_designs"):
            ratios = ", ".join(f"{label}: {_fmt(ratio)}" for label, ratio in round_["ratio"].items())
            lines += ["", f"Active-learning round {k}: ensemble spread after / before fine-tuning on "
                          f"{round_['probe_designs']} unverified designs: {ratios}."]
    return lines


def _fmt_pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.0f} %"


def plot_study(problem: DesignProblem, report: dict[str, Any], candidates: Sequence[tuple[int, Candidate]],
               path: Path, direct: np.ndarray | None = None) -> None:
    """Single objective: surrogate objective per trial, best so far, and the verified designs
    (surrogate with its 90 % interval, reference). Several: the first two objectives of every
    trial, the surrogate's front, the verified designs (surrogate with its intervals, joined to
    the reference) and, given ``direct`` (points of a study run directly on the reference, in
    the objectives' units), the direct reference front."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6.4, 4.4))
    if len(problem.objectives) == 1:
        _plot_convergence(axes, problem, report, candidates)
    else:
        _plot_front(axes, problem, report, candidates, direct)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def _objective_values(problem: DesignProblem, candidates: Sequence[tuple[int, Candidate]],
                      objective: Objective) -> np.ndarray:
    """(candidates,) surrogate value of ``objective``; NaN where the candidate failed."""
    return np.array([c.value(problem, objective) if c.status == "ok" else np.nan for _, c in candidates])


def _reported(problem: DesignProblem, side: dict, target: Objective) -> float:
    """The value of ``target`` in one side (surrogate or reference) of a report row; NaN if absent."""
    value = side.get(problem.protocol_of(target), {}).get(target.metric)
    return np.nan if value is None else value


def _plot_convergence(axes, problem: DesignProblem, report: dict[str, Any],
                      candidates: Sequence[tuple[int, Candidate]]) -> None:
    objective = problem.objectives[0]
    numbers = np.array([number for number, _ in candidates])
    values = _objective_values(problem, candidates, objective)
    feasible = np.array([c.feasible(problem) for _, c in candidates])
    sign = 1.0 if objective.direction == "minimize" else -1.0
    best = sign * np.fmin.accumulate(np.where(feasible, sign * values, np.nan))
    axes.scatter(numbers[feasible], values[feasible], s=14, color="tab:blue", label="surrogate, feasible")
    axes.scatter(numbers[~feasible], values[~feasible], s=14, marker="x", color="tab:gray", label="infeasible")
    axes.step(numbers, best, where="post", color="tab:blue", label="best so far (surrogate)")
    trials = [row["trial"] for row in report["chosen"]]  # calibration designs at negative trials
    predicted = _centres(problem, report["chosen"], 0)
    axes.errorbar(trials, predicted, yerr=_errors(problem, report["chosen"], 0, predicted), fmt="none",
                  ecolor="tab:blue", elinewidth=0.8, capsize=2, label="surrogate 90 % interval (verified)")
    axes.scatter(trials, [_reported(problem, row["reference"], objective) for row in report["chosen"]],
                 s=40, marker="D", facecolor="none", edgecolor="tab:red", label="reference (verified)")
    axes.set_xlabel("trial")
    axes.set_ylabel(f"{problem.protocol_of(objective)}.{objective.metric}")
    axes.set_title(f"{problem.name}: convergence")


def _plot_front(axes, problem: DesignProblem, report: dict[str, Any], candidates: Sequence[tuple[int, Candidate]],
                direct: np.ndarray | None) -> None:
    first, second = problem.objectives[:2]
    values = _objective_values(problem, candidates, first)
    values_2 = _objective_values(problem, candidates, second)
    feasible = np.array([c.feasible(problem) for _, c in candidates])
    axes.scatter(values[feasible], values_2[feasible], s=8, color="tab:blue", alpha=0.3,
                 label="surrogate, feasible")
    axes.scatter(values[~feasible], values_2[~feasible], s=8, marker="x", color="tab:gray", alpha=0.5,
                 label="infeasible")
    _front_line(axes, problem, np.column_stack([values, values_2])[feasible], color="tab:blue",
                label="surrogate front")
    if direct is not None and len(direct):
        _front_line(axes, problem, np.asarray(direct)[:, :2], color="black", label="direct reference front")
    chosen = report["chosen"]
    if chosen:
        x, y = _centres(problem, chosen, 0), _centres(problem, chosen, 1)
        axes.errorbar(x, y, xerr=_errors(problem, chosen, 0, x), yerr=_errors(problem, chosen, 1, y), fmt="o",
                      markersize=4, color="tab:blue", ecolor="tab:blue", elinewidth=0.8, capsize=2,
                      label="surrogate, calibrated 90 % interval (verified)")
        checked = np.array([(_reported(problem, row["reference"], first), _reported(problem, row["reference"], second))
                            for row in chosen], dtype=float)
        ok = np.array([bool(row["reference_feasible"]) for row in chosen])
        axes.scatter(*checked[ok].T, s=40, marker="D", color="tab:red", label="reference, feasible (verified)")
        axes.scatter(*checked[~ok].T, s=40, marker="D", facecolor="none", edgecolor="tab:red",
                     label="reference, infeasible (verified)")
        for centre, point in zip(zip(x, y), checked):
            axes.plot(*zip(centre, point), color="tab:red", linewidth=0.6)
    axes.set_xlabel(f"{problem.protocol_of(first)}.{first.metric} ({first.direction})")
    axes.set_ylabel(f"{problem.protocol_of(second)}.{second.metric} ({second.direction})")
    axes.set_title(f"{problem.name}: Pareto front")


def _front_line(axes, problem: DesignProblem, points: np.ndarray, **style) -> None:
    """The non-dominated points of ``points`` (first two objectives, their units) as a step line."""
    signs = np.array([1.0 if o.direction == "minimize" else -1.0 for o in problem.objectives[:2]])
    points = points[np.all(np.isfinite(points), axis=1)]
    if not len(points):
        return
    front = points[pareto_front(points * signs)]
    front = front[np.argsort(front[:, 0])]
    axes.step(front[:, 0], front[:, 1], where="post" if signs[0] * signs[1] < 0 else "pre", linewidth=1.2, **style)


def _centres(problem: DesignProblem, chosen: Sequence[dict], objective: int) -> list[float]:
    """Each row's calibrated surrogate value of ``objective`` (its 90 % interval's centre, in
    the objective's units); the raw surrogate value where the row has no interval."""
    target = problem.objectives[objective]
    label, sign = objective_label(problem, target), (1.0 if target.direction == "minimize" else -1.0)
    centres = []
    for row in chosen:
        bounds = np.asarray(row.get("interval", {}).get(label, [np.nan, np.nan]), dtype=float)
        centres.append(sign * float(np.mean(bounds)) if np.all(np.isfinite(bounds))
                       else _reported(problem, row["surrogate"], target))
    return centres


def _errors(problem: DesignProblem, chosen: Sequence[dict], objective: int, centre: Sequence[float]) -> np.ndarray:
    """(2, rows) distances from ``centre`` to each row's 90 % interval of ``objective`` (error bars)."""
    target = problem.objectives[objective]
    label = objective_label(problem, target)
    sign = 1.0 if target.direction == "minimize" else -1.0
    bounds = np.array([sorted(sign * np.asarray(row.get("interval", {}).get(label, [np.nan, np.nan]), dtype=float))
                       for row in chosen], dtype=float).reshape(len(chosen), 2)
    centre = np.asarray(centre, dtype=float)
    return np.nan_to_num(np.vstack([centre - bounds[:, 0], bounds[:, 1] - centre]).clip(min=0.0))


def _fmt(value: float | None) -> str:
    return "-" if value is None or (isinstance(value, float) and not math.isfinite(value)) else f"{value:.4g}"
