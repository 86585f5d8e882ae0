"""Polish: the reference runs the verification rounds left, spent on a trust-region search
around the best verified design (single objective).

The global search through the surrogate finds the region of the optimum; a constrained optimum
lies on a constraint's bound, where a surrogate error of the size of its calibrated interval
(a few mV of top-of-charge voltage) decides which designs are feasible, so the best verified
design stops short of the bound. Each polish step corrects the surrogate to agree with the
reference near the current best design, the centre: per objective and constraint value, the
error (reference minus surrogate) is the centre's plus a slope fitted, by ridge-regularised
least squares, to the errors of the verified designs inside the box (first-order correction,
as far as the verified designs span it; the slope matters where the surrogate's sensitivity is
off, e.g. a top-of-charge voltage that hardly moves with the last stage's current). Then it
scores ``verify.polish_samples`` scrambled-Sobol designs around the centre (half in a box of
half-width ``radius`` in the unit cube of the variables, half in one a quarter as wide), and
runs on the reference the best one that is feasible and better than the centre by the
corrected values. A feasible improvement becomes the new centre and doubles the radius; anything
else (or no such design) halves it (trust-region model management: Alexandrov, Dennis, Lewis
and Torczon, Structural Optimization 15, 1998). It stops after ``verify.polish_steps`` reference
runs, at the budget, or when the radius has halved four times from ``verify.polish_radius``.
"""

from __future__ import annotations

import logging
from typing import Sequence

import numpy as np
from scipy.stats import qmc

from hybrid.design.candidates import Candidate, score_candidates
from hybrid.design.optimise import minimisation_form
from hybrid.design.problem import DesignProblem, params_at, unit_positions
from hybrid.design.verify import Verified, best_verified, calibrated
from hybrid.surrogate import RunModel

log = logging.getLogger(__name__)

MAX_RADIUS = 0.5
SHRINKS = 4  # halvings of the radius before the polish gives up


def polish(problem: DesignProblem, surrogate: RunModel, reference: RunModel,
           verified: Sequence[Verified]) -> list[Verified]:
    """Run the polish (module docstring) from the best feasible design in ``verified``; returns
    the designs it ran on the reference (``purpose == "polish"``, numbered after the study's
    trials). Nothing for several objectives, without a feasible verified design, or with no
    reference run left."""
    options = problem.verify
    left = options.polish_steps if options.budget is None else min(options.polish_steps,
                                                                   options.budget - len(verified))
    best = best_verified(problem, [v.reference for v in verified])
    centre = None if best is None else verified[best].reference
    if centre is None or not centre.feasible(problem) or left <= 0:
        return []
    done: list[Verified] = []
    radius, smallest = options.polish_radius, options.polish_radius / 2 ** SHRINKS
    round_k = max((v.round for v in verified), default=0) + 1
    step = 0
    while len(done) < left and radius >= smallest:
        known = [v.reference for v in [*verified, *done] if v.reference.status == "ok"]
        pick = _corrected_best(problem, surrogate, centre, known, radius, seed=problem.optimiser.seed + step)
        step += 1
        if pick is None:  # nothing in the box is feasible and better by the corrected surrogate
            radius /= 2
            continue
        (checked,) = score_candidates(problem, reference, [pick.params], out_of_range="flag")
        done.append(Verified(round_k, problem.optimiser.trials + len(done), pick, checked,
                             calibrated(problem, [*verified, *done]), polish=True))
        better = checked.feasible(problem) and _objective(problem, checked) < _objective(problem, centre)
        log.info("%s: polish step %d, radius %.3g: %s", problem.name, len(done), radius,
                 "accepted" if better else "rejected")
        centre = checked if better else centre
        radius = min(2 * radius, MAX_RADIUS) if better else radius / 2
    return done


def _corrected_best(problem: DesignProblem, surrogate: RunModel, centre: Candidate, known: Sequence[Candidate],
                    radius: float, *, seed: int) -> Candidate | None:
    """The design around ``centre`` with the best corrected objective among those feasible and
    better than the centre by the corrected values; None if none is."""
    unit = unit_positions(problem, [centre.params])[0]
    near = [c for c in known if c is not centre and
            np.max(np.abs(unit_positions(problem, [c.params])[0] - unit)) <= radius]
    box = qmc.Sobol(len(unit), scramble=True, seed=seed).random(problem.verify.polish_samples)
    scale = np.where(np.arange(len(box)) % 2 == 0, 1.0, 0.25)[:, None] * radius
    points = np.clip(unit + (2 * box - 1) * scale, 0.0, 1.0)
    params = [centre.params, *(c.params for c in near),
              *params_at(problem, points)]
    scored = score_candidates(problem, surrogate, params)
    anchors, samples = scored[:1 + len(near)], scored[1 + len(near):]
    errors = _targets(problem, [centre, *near]) - _targets(problem, anchors)
    if not np.all(np.isfinite(errors[0])):
        return None
    correction = _error_model(unit_positions(problem, [a.params for a in anchors]) - unit, errors, radius)
    corrected = _targets(problem, samples) + correction(points - unit)
    ok = np.array([c.status == "ok" for c in samples]) & np.all(corrected[:, 1:] <= 0, axis=1)
    ok &= np.isfinite(corrected[:, 0]) & (corrected[:, 0] < _objective(problem, centre))
    if not ok.any():
        return None
    return samples[int(np.argmin(np.where(ok, corrected[:, 0], np.inf)))]


def _error_model(offsets: np.ndarray, errors: np.ndarray, radius: float):
    """The correction e(d) = e_0 + d @ slope, exact at the centre (row 0 of ``offsets``, 0) and
    fitted to the other rows by least squares with a ridge of radius**2 (one pseudo-observation
    of no slope at the box's edge per variable, so a few designs move it little). Rows with a
    non-finite error are left out."""
    base = errors[0]
    d, e = offsets[1:], errors[1:] - base
    finite = np.all(np.isfinite(e), axis=1)
    d, e = d[finite], e[finite]
    slope = np.linalg.solve(d.T @ d + radius ** 2 * np.eye(d.shape[1]), d.T @ e)  # (variables, targets)
    return lambda delta: base + delta @ slope


def _targets(problem: DesignProblem, candidates: Sequence[Candidate]) -> np.ndarray:
    """(candidates, 1 + constraint values): the objective in minimisation form, then each
    constraint value (feasible when <= 0)."""
    return np.array([[_objective(problem, c), *c.constraint_values(problem)] for c in candidates], dtype=float)


def _objective(problem: DesignProblem, candidate: Candidate) -> float:
    """The single objective in minimisation form (+inf for a failed candidate)."""
    return float(minimisation_form(problem, [candidate])[0, 0])
