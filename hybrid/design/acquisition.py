"""Which candidates the reference verifies next: the ones expected to gain the most.

One objective: expected improvement (EI) over the best feasible verified design, times the
probability of feasibility (PoF). Several objectives: the expected hypervolume improvement
(EHVI, Monte Carlo) over the verified feasible front, times PoF. The means and sigmas are the
surrogate's, calibrated on the reference (:mod:`hybrid.design.uncertainty`). A round's picks
are made one after the other, each assuming the picks before it come out as predicted, never
within ``min_distance`` (unit cube of the variables) of a design picked or verified, and only
among designs at least ``min_feasibility`` likely to be feasible while any open one is.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from hybrid.design.candidates import Candidate
from hybrid.design.optimise import hypervolume, minimisation_form, pareto_front
from hybrid.design.problem import DesignProblem, unit_positions
from hybrid.design.uncertainty import Calibration, expected_improvement, probability_feasible, target_arrays

MC_SAMPLES = 64  # Monte Carlo draws of the expected hypervolume improvement
EHVI_POOL = 48  # candidates the hypervolume improvement is estimated for (the most promising)


def choose(problem: DesignProblem, candidates: Sequence[tuple[int, Candidate]], verified: Sequence[Candidate],
           calibration: Calibration, count: int, min_distance: float, seed: int = 0,
           min_feasibility: float = 0.0) -> list[tuple[int, Candidate]]:
    """Up to ``count`` candidates by acquisition (module docstring). ``verified``: the reference
    results of the designs verified so far (their params and metrics)."""
    pool = [(n, c) for n, c in candidates if c.status == "ok"]
    if not pool:
        return []
    values, spreads = target_arrays(problem, [c for _, c in pool])
    positions = unit_positions(problem, [c.params for _, c in pool])
    values = calibration.mean(values, positions)  # what the reference is expected to give
    objectives = len(problem.objectives)
    mean, sigma = values[:, :objectives], calibration.sigma(spreads)
    feasible_p = probability_feasible(problem, values, sigma)
    taken = unit_positions(problem, [c.params for c in verified])
    known = _verified_front(problem, verified)
    rng = np.random.default_rng(seed)
    draws = rng.standard_normal((MC_SAMPLES, objectives))
    picks: list[int] = []
    for _ in range(count):
        distance = (np.min(np.linalg.norm(positions[:, None, :] - taken[None, :, :], axis=2), axis=1)
                    if len(taken) else np.full(len(pool), np.inf))
        open_ = (distance >= min_distance) & np.all(np.isfinite(mean), axis=1)
        open_[picks] = False
        if not open_.any():
            break
        if (open_ & (feasible_p >= min_feasibility)).any():
            open_ &= feasible_p >= min_feasibility
        if objectives == 1:
            gain = expected_improvement(mean[:, 0], sigma[:, 0], _incumbent(known, mean[:, 0], feasible_p))
        else:
            gain = _ehvi(known, mean, sigma[:, :objectives], draws, open_ & (feasible_p > 0))
        score = np.where(open_, gain * feasible_p, -np.inf)
        if not np.any(score > 0):  # nothing is expected to gain: the likeliest feasible, then the best mean
            score = np.where(open_, feasible_p - 1e-9 * np.argsort(np.argsort(mean[:, 0])), -np.inf)
        k = int(np.argmax(score))
        picks.append(k)
        taken = np.vstack([taken, positions[k]]) if len(taken) else positions[k][None, :]
        if feasible_p[k] >= 0.5:  # the believer: the pick comes out as predicted
            known = np.vstack([known, mean[k]]) if len(known) else mean[k][None, :]
    return [pool[k] for k in picks]


def _verified_front(problem: DesignProblem, verified: Sequence[Candidate]) -> np.ndarray:
    """(points, objectives) minimisation form of the feasible verified designs."""
    feasible = [c for c in verified if c.feasible(problem)]
    points = minimisation_form(problem, feasible)
    return points[np.all(np.isfinite(points), axis=1)] if len(points) else points.reshape(0, len(problem.objectives))


def _incumbent(known: np.ndarray, mean: np.ndarray, feasible_p: np.ndarray) -> float:
    """The best feasible verified objective; before any, the surrogate's best likely-feasible mean."""
    if len(known):
        return float(known[:, 0].min())
    likely = np.isfinite(mean) & (feasible_p >= 0.5)
    return float(np.min(mean[likely])) if likely.any() else float(np.nanmin(mean))


def _ehvi(known: np.ndarray, mean: np.ndarray, sigma: np.ndarray, draws: np.ndarray, open_: np.ndarray) -> np.ndarray:
    """(candidates,) Monte Carlo expected hypervolume improvement over the front ``known``, for
    the EHVI_POOL most promising open candidates (optimistic non-domination rank); 0 elsewhere."""
    gain = np.zeros(len(mean))
    indices = np.flatnonzero(open_)
    if not len(indices):
        return gain
    front = known[pareto_front(known)] if len(known) else known
    everything = np.vstack([front, mean[indices]]) if len(front) else mean[indices]
    worst, best = everything.max(axis=0), everything.min(axis=0)
    reference = worst + 0.1 * np.maximum(worst - best, 1e-12)
    for k in _most_promising(mean[indices] - sigma[indices], indices):
        samples = mean[k] + sigma[k] * draws
        gain[k] = float(np.mean([_improvement(front, sample, reference) for sample in samples]))
    return gain


def _most_promising(optimistic: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """Up to EHVI_POOL of ``indices``, by non-domination layers of their optimistic points."""
    chosen: list[int] = []
    remaining = np.arange(len(indices))
    while len(remaining) and len(chosen) < EHVI_POOL:
        layer = remaining[pareto_front(optimistic[remaining])]
        chosen += layer.tolist()
        remaining = np.setdiff1d(remaining, layer)
    return indices[np.array(chosen[:EHVI_POOL], dtype=int)]


def _improvement(front: np.ndarray, point: np.ndarray, reference: np.ndarray) -> float:
    """Hypervolume gained by adding ``point`` to ``front``: its box up to ``reference`` less the
    part the front already dominates, which is what the front clipped to that box dominates."""
    if np.any(point >= reference) or (len(front) and np.any(np.all(front <= point, axis=1))):
        return 0.0
    box = float(np.prod(reference - point))
    if not len(front):
        return box
    clipped = np.maximum(front, point)
    clipped = clipped[np.all(clipped < reference, axis=1)]
    return box - (hypervolume(clipped[pareto_front(clipped)], reference) if len(clipped) else 0.0)
