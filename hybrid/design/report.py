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
from hybrid.design.optimise import STUDY_FILE
from hybrid.design.problem import DesignProblem, Objective, constraint_labels

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
        cells = [f"{row['trial']} ({row['round'] + 1}){mark}",
                 *(f"{row['params'][name]:.4g}" for name in problem.variables)]
        for protocol, metric in targets:
            cells.append(f"{_fmt(row['surrogate'].get(protocol, {}).get(metric))} / "
                         f"{_fmt(row['reference'].get(protocol, {}).get(metric))}")
        cells.append(f"{'yes' if row['surrogate_feasible'] else 'no'} / {'yes' if row['reference_feasible'] else 'no'}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot_study(problem: DesignProblem, report: dict[str, Any], candidates: Sequence[tuple[int, Candidate]],
               path: Path) -> None:
    """Single objective: surrogate objective per trial, best so far, and the reference values of
    the verified designs. Several: the first two objectives of every trial, the verified
    designs' surrogate and reference values joined by a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6.4, 4.4))
    if len(problem.objectives) == 1:
        _plot_convergence(axes, problem, report, candidates)
    else:
        _plot_front(axes, problem, report, candidates)
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
    axes.scatter([row["trial"] for row in report["chosen"]], [_reported(problem, row["reference"], objective)
                                                              for row in report["chosen"]],
                 s=40, marker="D", facecolor="none", edgecolor="tab:red", label="reference (verified)")
    axes.set_xlabel("trial")
    axes.set_ylabel(f"{problem.protocol_of(objective)}.{objective.metric}")
    axes.set_title(f"{problem.name}: convergence")


def _plot_front(axes, problem: DesignProblem, report: dict[str, Any],
                candidates: Sequence[tuple[int, Candidate]]) -> None:
    first, second = problem.objectives[:2]
    values = _objective_values(problem, candidates, first)
    values_2 = _objective_values(problem, candidates, second)
    feasible = np.array([c.feasible(problem) for _, c in candidates])
    axes.scatter(values[feasible], values_2[feasible], s=12, color="tab:blue", alpha=0.5,
                 label="surrogate, feasible")
    axes.scatter(values[~feasible], values_2[~feasible], s=12, marker="x", color="tab:gray", label="infeasible")
    for row in report["chosen"]:
        pair = [(_reported(problem, row[side], first), _reported(problem, row[side], second))
                for side in ("surrogate", "reference")]
        axes.plot(*zip(*pair), color="tab:red", linewidth=0.8)
        axes.scatter(*pair[0], s=30, color="tab:blue", edgecolor="black")
        axes.scatter(*pair[1], s=40, marker="D", facecolor="none", edgecolor="tab:red")
    axes.scatter([], [], s=40, marker="D", facecolor="none", edgecolor="tab:red", label="reference (verified)")
    axes.set_xlabel(f"{problem.protocol_of(first)}.{first.metric} ({first.direction})")
    axes.set_ylabel(f"{problem.protocol_of(second)}.{second.metric} ({second.direction})")
    axes.set_title(f"{problem.name}: Pareto front")


def _fmt(value: float | None) -> str:
    return "-" if value is None or (isinstance(value, float) and not math.isfinite(value)) else f"{value:.4g}"
