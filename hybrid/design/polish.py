"""Polish: the reference runs the verification rounds left, spent on a trust-region search
around the best verified design (single objective).

The global search through the surrogate finds the region of the optimum; a constrained optimum
lies on a constraint's bound, where a surrogate error of the size of its calibrated interval
(a few mV of top-of-charge voltage) decides which designs are feasible, so the best verified
design stops short of the bound. Each polish step corrects the surrogate to agree with the
reference at the current best design (zeroth-order correction: per objective and constraint
value, the reference minus the surrogate there), picks the best corrected-feasible design
among ``verify.polish_samples`` scrambled-Sobol designs in a box of half-width ``radius`` (unit
cube of the variables) around it, and runs that one on the reference. A feasible improvement
becomes the new centre and doubles the radius; anything else halves it (trust-region model
management: Alexandrov, Dennis, Lewis and Torczon, Structural Optimization 15, 1998). It stops
after ``verify.polish_steps`` reference runs, at the budget, or when the radius has halved four
times from ``verify.polish_radius``.
"""

from __future__ import annotations

import logging
from typing import Sequence

import numpy as np
from scipy.stats import qmc

from hybrid.design.candidates import Candidate, score_candidates
from hybrid.design.optimise import minimisation_form
from hybrid.design.problem import DesignProblem, unit_positions
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
        pick = _corrected_best(problem, surrogate, centre, radius, seed=problem.optimiser.seed + step)
        step += 1
        if pick is None:  # nothing in the box is feasible by the corrected surrogate
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


def _corrected_best(problem: DesignProblem, surrogate: RunModel, centre: Candidate, radius: float, *,
                    seed: int) -> Candidate | None:
    """The design in the box around ``centre`` with the best objective among those feasible by
    the surrogate corrected to the reference at ``centre``; None if none is."""
    unit = unit_positions(problem, [centre.params])[0]
    box = qmc.Sobol(len(unit), scramble=True, seed=seed).random(problem.verify.polish_samples)
    points = np.clip(unit + (2 * box - 1) * radius, 0.0, 1.0)
    params = [centre.params] + [{name: bounds.at(u) for (name, bounds), u in zip(problem.variables.items(), row)}
                                for row in points]
    here, *samples = score_candidates(problem, surrogate, params)
    objective_shift = _objective(problem, centre) - _objective(problem, here)
    constraint_shift = np.array(centre.constraint_values(problem)) - np.array(here.constraint_values(problem))
    if not (np.isfinite(objective_shift) and np.all(np.isfinite(constraint_shift))):
        return None
    objectives = np.array([_objective(problem, c) for c in samples]) + objective_shift
    feasible = np.array([c.status == "ok" and np.all(np.array(c.constraint_values(problem)) + constraint_shift <= 0)
                         for c in samples])
    objectives = np.where(feasible & np.isfinite(objectives), objectives, np.inf)
    best = int(np.argmin(objectives))
    return samples[best] if np.isfinite(objectives[best]) else None


def _objective(problem: DesignProblem, candidate: Candidate) -> float:
    """The single objective in minimisation form (+inf for a failed candidate)."""
    return float(minimisation_form(problem, [candidate])[0, 0])

