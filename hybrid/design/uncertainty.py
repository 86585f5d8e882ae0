"""How far the surrogate can be trusted, measured on the reference, and where to spend the reference.

**Calibration.** The surrogate gives each metric as its ensemble's mean and spread
(:mod:`hybrid.surrogate.ensemble`). A deep ensemble knows where its members disagree, not how
far they all are from the reference: its raw spread is usually too narrow, a single model has
none, and where the surrogate is biased (a metric its physics model gives without a residual
correction, such as a plating margin) every member shares the bias. Per target (each
objective, each constraint bound) the loop models the reference as

    reference ~ Normal(mean + offset, sigma^2),   sigma = sqrt((scale * spread)^2 + floor^2)

and fits ``offset``, ``scale`` and ``floor`` by maximum likelihood on the designs verified so
far (the difference reference - mean, against the spread). A 90 % interval is
mean + offset +- 1.645 sigma. Without the offset, a bias is absorbed into ``floor``: on the
fast-charge problem (retention 0.5 points too high, plating margin 15 mV too low) the
intervals came out 2.5 times as wide and covered 97.5 % of the picks (offset fitted: 92 %).
Coverage is measured honestly: each verified design is judged by the calibration fitted
before it was verified (:func:`coverage`).

**Acquisition.** Candidates for the reference are chosen by what they are expected to gain:
one objective, expected improvement over the best feasible verified design times the
probability that every constraint holds; several objectives, the expected hypervolume
improvement over the verified feasible front (Monte Carlo) times that probability. The picks of
one round are chosen one after the other, each assuming the previous picks turn out as
predicted (the "believer"), and never closer than ``min_distance`` (in the unit cube of the
variables) to a design already picked or verified.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy.optimize import minimize
from scipy.stats import norm

from hybrid.design.candidates import Candidate
from hybrid.design.optimise import minimisation_form
from hybrid.design.problem import DesignProblem, Objective, constraint_labels
from hybrid.surrogate.ensemble import Z_90


@dataclass(frozen=True)
class Calibration:
    """Per target (target_labels order): the reference's expected value is the surrogate's mean
    plus ``offset``, with sigma = sqrt((scale spread)^2 + floor^2)."""

    labels: tuple[str, ...]
    scale: tuple[float, ...]
    floor: tuple[float, ...]
    offset: tuple[float, ...]
    fitted_on: int = 0

    @classmethod
    def raw(cls, problem: DesignProblem) -> "Calibration":
        """The ensemble as it is (scale 1, floor 0, offset 0)."""
        labels = tuple(target_labels(problem))
        return cls(labels, (1.0,) * len(labels), (0.0,) * len(labels), (0.0,) * len(labels))

    def mean(self, values: np.ndarray) -> np.ndarray:
        """(..., targets) expected reference values of (..., targets) surrogate means."""
        return np.asarray(values, dtype=float) + np.asarray(self.offset)

    def sigma(self, spread: np.ndarray) -> np.ndarray:
        """(..., targets) sigmas of (..., targets) ensemble spreads."""
        return np.hypot(np.asarray(self.scale) * np.nan_to_num(spread), np.asarray(self.floor))

    def to_dict(self) -> dict:
        return {"fitted_on": self.fitted_on,
                **{label: {"offset": o, "scale": s, "floor": f}
                   for label, o, s, f in zip(self.labels, self.offset, self.scale, self.floor)}}


def target_labels(problem: DesignProblem) -> list[str]:
    """One label per objective, then per constraint bound (constraint_labels)."""
    return [objective_label(problem, objective) for objective in problem.objectives] + constraint_labels(problem)


def objective_label(problem: DesignProblem, objective: Objective) -> str:
    """e.g. 'minimize charge.charge_time_min'."""
    return f"{objective.direction} {problem.protocol_of(objective)}.{objective.metric}"


def target_arrays(problem: DesignProblem, candidates: Sequence[Candidate]) -> tuple[np.ndarray, np.ndarray]:
    """(values, spreads), each (candidates, targets): objectives in minimisation form, then the
    constraint values (feasible <= 0)."""
    signs = np.array([1.0 if d == "minimize" else -1.0 for d in problem.directions])
    values = np.hstack([minimisation_form(problem, candidates),
                        np.array([c.constraint_values(problem) for c in candidates], dtype=float).reshape(
                            len(candidates), -1)])
    spreads = np.array([[*np.abs(signs * c.objective_spreads(problem)), *c.constraint_spreads(problem)]
                        for c in candidates], dtype=float).reshape(values.shape)
    return values, spreads


def fit_calibration(problem: DesignProblem, pairs: Sequence[tuple[Candidate, Candidate]]) -> Calibration:
    """Offset, scale and floor per target by maximum likelihood on (surrogate, reference) pairs whose
    values are both finite; the raw ensemble where no pair is usable."""
    raw = Calibration.raw(problem)
    if not pairs:
        return raw
    predicted, spreads = target_arrays(problem, [surrogate for surrogate, _ in pairs])
    measured, _ = target_arrays(problem, [reference for _, reference in pairs])
    fits = [(raw.scale[k], raw.floor[k], raw.offset[k]) for k in range(len(raw.labels))]
    for k in range(len(raw.labels)):
        usable = np.isfinite(predicted[:, k]) & np.isfinite(measured[:, k])
        if usable.any():
            fits[k] = _fit_one(measured[usable, k] - predicted[usable, k], spreads[usable, k])
    scale, floor, offset = (tuple(column) for column in zip(*fits))
    return Calibration(raw.labels, scale, floor, offset, fitted_on=len(pairs))


def _fit_one(error: np.ndarray, spread: np.ndarray) -> tuple[float, float, float]:
    """(scale, floor, offset) maximising the Gaussian likelihood of ``error`` with mean offset
    and sigma(spread); the offset is searched in units of the errors' size."""
    size = max(float(np.sqrt(np.mean(error ** 2))), 1e-12)
    spread = np.nan_to_num(spread)

    def negative_log_likelihood(x: np.ndarray) -> float:
        sigma2 = (math.exp(x[0]) * spread) ** 2 + math.exp(x[1]) ** 2
        return float(np.sum(np.log(sigma2) + (error - x[2] * size) ** 2 / sigma2))

    bounds = [(math.log(0.3), math.log(30.0)), (math.log(1e-3 * size), math.log(10.0 * size)), (-1.0, 1.0)]
    start = np.array([0.0, math.log(0.5 * size), float(np.mean(error)) / size])
    fitted = minimize(negative_log_likelihood, start, bounds=bounds, method="L-BFGS-B")
    return math.exp(fitted.x[0]), math.exp(fitted.x[1]), float(fitted.x[2]) * size


def inside_interval(problem: DesignProblem, calibration: Calibration, surrogate: Candidate,
                    reference: Candidate) -> np.ndarray:
    """(targets,) True/False where the reference lies inside the surrogate's 90 % interval; NaN
    where either value is not finite."""
    (mean,), (spread,) = target_arrays(problem, [surrogate])
    (measured,), _ = target_arrays(problem, [reference])
    inside = (np.abs(measured - calibration.mean(mean)) <= Z_90 * calibration.sigma(spread)).astype(float)
    return np.where(np.isfinite(mean) & np.isfinite(measured), inside, np.nan)


def coverage(problem: DesignProblem, judged: Sequence[tuple[Calibration, Candidate, Candidate]]) -> dict:
    """Fraction of (design, target) pairs inside their 90 % interval, each judged by the
    calibration it had before it was verified: overall, and per target label."""
    if not judged:
        return {"overall": None, "count": 0, "targets": {}}
    inside = np.array([inside_interval(problem, calibration, surrogate, reference)
                       for calibration, surrogate, reference in judged])
    counted = np.isfinite(inside)
    per_target = {label: float(np.nanmean(inside[:, k])) if counted[:, k].any() else None
                  for k, label in enumerate(target_labels(problem))}
    return {"overall": float(np.nanmean(inside)) if counted.any() else None, "count": int(counted.sum()),
            "targets": per_target}


def probability_feasible(problem: DesignProblem, values: np.ndarray, sigmas: np.ndarray) -> np.ndarray:
    """(candidates,) probability that every constraint value is <= 0 (independent normals)."""
    objectives = len(problem.objectives)
    constraint, sigma = values[:, objectives:], sigmas[:, objectives:]
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(sigma > 0, norm.cdf(-constraint / np.where(sigma > 0, sigma, 1.0)), (constraint <= 0) * 1.0)
    return np.prod(np.where(np.isfinite(constraint), p, 0.0), axis=1)


def expected_improvement(mean: np.ndarray, sigma: np.ndarray, best: float) -> np.ndarray:
    """Expected improvement below ``best`` (minimisation) of normals N(mean, sigma^2)."""
    gain = best - mean
    with np.errstate(divide="ignore", invalid="ignore"):
        z = gain / np.where(sigma > 0, sigma, 1.0)
        ei = np.where(sigma > 0, gain * norm.cdf(z) + sigma * norm.pdf(z), np.maximum(gain, 0.0))
    return np.where(np.isfinite(mean), ei, 0.0)
