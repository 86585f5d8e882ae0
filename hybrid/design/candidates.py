"""Candidates: one set of variable values of a design problem, scored by a model (the hybrid
surrogate or the reference) under every protocol of the problem.

A failed or truncated evaluation is data, not an exception: its objectives become +inf
(minimised) or -inf (maximised) and its constraints +inf, so the optimiser steers away.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal, Mapping, Sequence

import numpy as np

from hybrid.design.problem import Constraint, DesignProblem, Objective
from hybrid.design.protocols import protocol_with_values
from hybrid.evaluate import json_safe
from hybrid.surrogate import DesignEvaluation, RunModel
from sim.errors import ConfigError


@dataclass
class Candidate:
    """One set of variable values, scored under every protocol of the problem."""

    params: dict[str, float]
    design: dict[str, float]
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)  # protocol -> metric -> value
    spread: dict[str, dict[str, float]] = field(default_factory=dict)  # protocol -> metric -> ensemble sd
    status: str = "ok"
    message: str = ""
    flags: list[str] = field(default_factory=list)
    trajectories: dict[str, dict[str, np.ndarray]] = field(default_factory=dict, repr=False)  # protocol -> columns

    def value(self, problem: DesignProblem, target: Objective | Constraint) -> float:
        """The metric ``target`` reads, on its protocol; NaN when not scored."""
        return self.metrics.get(problem.protocol_of(target), {}).get(target.metric, float("nan"))

    def objective_values(self, problem: DesignProblem) -> list[float]:
        """Objective values; a failed candidate or a non-finite metric is the worst value (+-inf)."""
        values = []
        for objective in problem.objectives:
            value = self.value(problem, objective)
            worst = math.inf if objective.direction == "minimize" else -math.inf
            values.append(value if self.status == "ok" and math.isfinite(value) else worst)
        return values

    def constraint_values(self, problem: DesignProblem) -> list[float]:
        """One value per bound, feasible when <= 0 (in the metric's units); +inf if unknown."""
        values = []
        for constraint in problem.constraints:
            value = self.value(problem, constraint)
            for bound, sign in ((constraint.min, -1.0), (constraint.max, 1.0)):
                if bound is not None:
                    ok = self.status == "ok" and math.isfinite(value)
                    values.append(sign * (value - bound) if ok else math.inf)
        return values

    def objective_spreads(self, problem: DesignProblem) -> list[float]:
        """The ensemble's standard deviation of each objective, in objective_values' order (0 without one)."""
        return [self._spread(problem, objective) for objective in problem.objectives]

    def constraint_spreads(self, problem: DesignProblem) -> list[float]:
        """The ensemble's standard deviation of each constraint value, in constraint_values' order."""
        return [self._spread(problem, constraint) for constraint in problem.constraints
                for bound in (constraint.min, constraint.max) if bound is not None]

    def _spread(self, problem: DesignProblem, target: Objective | Constraint) -> float:
        value = self.spread.get(problem.protocol_of(target), {}).get(target.metric, 0.0)
        return value if math.isfinite(value) else 0.0

    def feasible(self, problem: DesignProblem, backoff: Sequence[float] | None = None) -> bool:
        """All constraints hold (each tightened by ``backoff``, in constraint_values' order)."""
        values = np.array(self.constraint_values(problem)) + (0.0 if backoff is None else np.asarray(backoff))
        return self.status == "ok" and bool(np.all(values <= 0))

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe params, design, status, message, flags, metrics and spread (no trajectories)."""
        return json_safe({"params": self.params, "design": self.design, "status": self.status,
                          "message": self.message, "flags": self.flags, "metrics": self.metrics,
                          "spread": self.spread})


def score_candidates(problem: DesignProblem, model: RunModel, params_list: Sequence[Mapping[str, float]], *,
                     out_of_range: Literal["refuse", "flag"] = "refuse") -> list[Candidate]:
    """Score every variable set with ``model`` (surrogate or reference) under every protocol.

    A variable set whose protocol values are invalid (e.g. switch SOCs out of order) is a
    failed candidate; a failed or truncated solve under any protocol fails the candidate.
    """
    candidates = []
    protocols: dict[str, list] = {name: [] for name in problem.protocols}
    for params in params_list:
        design, protocol_values = problem.split(params)
        candidate = Candidate(dict(params), design)
        try:
            resolved = {name: protocol_with_values(problem.protocols[name], values, f"protocols.{name}")
                        for name, values in protocol_values.items()}
        except ConfigError as error:
            candidate.status, candidate.message = "failed", str(error)
            resolved = {}
        for name in problem.protocols:
            protocols[name].append(resolved.get(name))
        candidates.append(candidate)
    valid = [k for k, candidate in enumerate(candidates) if candidate.status == "ok"]
    for name in problem.protocols:
        if not valid:
            break
        evaluations = model.evaluate([candidates[k].design for k in valid], [protocols[name][k] for k in valid],
                                     conditions=problem.conditions, mass_model=problem.mass,
                                     metric_options=problem.metric_options, backend=problem.backend,
                                     out_of_range=out_of_range, workers=problem.workers)
        for k, evaluation in zip(valid, evaluations):
            _record(candidates[k], name, evaluation)
    return candidates


def _record(candidate: Candidate, protocol: str, evaluation: DesignEvaluation) -> None:
    candidate.metrics[protocol] = dict(evaluation.metrics)
    candidate.spread[protocol] = dict(evaluation.spread)
    candidate.trajectories[protocol] = evaluation.columns
    candidate.flags += [flag for flag in evaluation.flags if flag not in candidate.flags]
    if evaluation.status != "ok" and candidate.status == "ok":
        candidate.status = evaluation.status
        candidate.message = f"{protocol}: {evaluation.message}"

