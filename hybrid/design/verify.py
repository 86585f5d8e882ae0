"""Verification: which designs the reference runs, within its budget.

- **Calibration designs** (``verify.calibration_designs``): a seeded Latin hypercube over the
  variables, scored by both models before the search, so that the surrogate's intervals are
  calibrated on the reference before the first pick (:mod:`hybrid.design.uncertainty`).
- **Rounds** (``verify.rounds``): each round picks from the study's candidates and runs the
  picks on the reference. ``select: ei`` picks by expected (hypervolume) improvement times the
  probability of feasibility under the calibration fitted on every design verified before the
  round (:mod:`hybrid.design.acquisition`). ``select: best`` picks the surrogate's best
  feasible designs, and after a round in which a design the surrogate called feasible failed
  on the reference, backs each constraint off by the largest amount the surrogate
  underestimated it (and stops after a round without such a surprise).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
from scipy.stats import qmc

from hybrid.design.acquisition import choose
from hybrid.design.candidates import Candidate, score_candidates
from hybrid.design.optimise import minimisation_form, select_candidates
from hybrid.design.problem import DesignProblem, constraint_labels, params_at
from hybrid.design.uncertainty import Calibration, fit_calibration
from hybrid.surrogate import RunModel

log = logging.getLogger(__name__)


@dataclass
class Verified:
    """A design run on the reference. trial: its study trial (negative: a calibration design;
    polish: numbered after the study's trials, :mod:`hybrid.design.polish`);
    calibration: the one its surrogate interval had when it was picked (coverage is judged by it)."""

    round: int
    trial: int
    surrogate: Candidate
    reference: Candidate
    calibration: Calibration
    polish: bool = False

    @property
    def purpose(self) -> str:
        if self.polish:
            return "polish"
        return "calibration" if self.trial < 0 else "search"


def calibrated(problem: DesignProblem, verified: Sequence[Verified]) -> Calibration:
    """The calibration fitted on the designs verified so far, widened by how the search picks
    among them fared (:func:`hybrid.design.uncertainty.fit_calibration`)."""
    return fit_calibration(problem, [(v.surrogate, v.reference) for v in verified],
                           picked_in=[v.round if v.purpose == "search" else None for v in verified])


def calibration_designs(problem: DesignProblem, surrogate: RunModel, reference: RunModel) -> list[Verified]:
    """``verify.calibration_designs`` seeded Latin-hypercube designs scored by both models (round 0)."""
    count = problem.verify.calibration_designs
    if count == 0:
        return []
    unit = qmc.LatinHypercube(len(problem.variables), seed=problem.optimiser.seed).random(count)
    params = params_at(problem, unit)
    predicted = score_candidates(problem, surrogate, params)
    checked = score_candidates(problem, reference, params, out_of_range="flag")
    raw = Calibration.raw(problem)
    return [Verified(0, -(k + 1), candidate, result, raw)
            for k, (candidate, result) in enumerate(zip(predicted, checked))]


def verify(problem: DesignProblem, reference: RunModel, candidates: Sequence[tuple[int, Candidate]], *,
           previous: Sequence[Verified] = (), first_round: int = 0) -> tuple[list[Verified], list[float]]:
    """Verify candidates of a study on the reference in up to ``verify.rounds`` rounds numbered
    from ``first_round`` (module docstring). ``previous``: designs verified before (calibration
    designs, earlier studies of active learning): they count toward the budget and the
    calibration, are not verified again, and the back-off starts from theirs.
    Returns (the designs verified in these rounds, the final back-off per constraint value)."""
    pairs: list[Verified] = []
    done_before = {_params_key(v.surrogate.params) for v in previous}
    candidates = [(n, c) for n, c in candidates if _params_key(c.params) not in done_before]
    backoff = _backoff(problem, previous)
    options = problem.verify
    for round_k in range(first_round, first_round + options.rounds):
        done = [*previous, *pairs]
        left = None if options.budget is None else max(options.budget - len(done), 0)
        verified = {v.trial for v in pairs}
        open_ = [(n, c) for n, c in candidates if n not in verified]
        calibration = calibrated(problem, done)
        count = options.candidates if len(problem.objectives) == 1 else options.pareto_max
        if options.select == "ei":
            selected = choose(problem, open_, [v.reference for v in done], calibration, count, options.min_distance,
                              seed=problem.optimiser.seed + round_k, min_feasibility=options.min_feasibility)
        else:
            selected = select_candidates(problem, open_, backoff)
        selected = selected if left is None else selected[:left]
        if not selected:
            break
        checked = score_candidates(problem, reference, [candidate.params for _, candidate in selected],
                                   out_of_range="flag")
        pairs += [Verified(round_k, n, c, result, calibration) for (n, c), result in zip(selected, checked)]
        surprises = [result for (_, c), result in zip(selected, checked)
                     if c.feasible(problem, backoff) and not result.feasible(problem)]
        backoff = _backoff(problem, [*previous, *pairs])
        if options.select == "best" and not surprises:
            break
        log.info("%s: round %d verified %d design(s), %d surprise(s)", problem.name, round_k, len(selected),
                 len(surprises))
    return pairs, backoff.tolist()


def _params_key(params: Mapping[str, float]) -> tuple:
    return tuple(sorted((name, round(value, 12)) for name, value in params.items()))


def _backoff(problem: DesignProblem, pairs: Sequence[Verified]) -> np.ndarray:
    """Per constraint value: the largest amount by which the surrogate underestimated it (>= 0)."""
    backoff = np.zeros(len(constraint_labels(problem)))
    for v in pairs:
        underestimate = (np.array(v.reference.constraint_values(problem))
                         - np.array(v.surrogate.constraint_values(problem)))
        backoff = np.maximum(backoff, np.where(np.isfinite(underestimate), underestimate, 0.0))
    return backoff


def best_verified(problem: DesignProblem, verified: Sequence[Candidate]) -> int | None:
    """Index of the best reference-verified candidate (feasible first); None for several objectives."""
    if len(problem.objectives) > 1 or not verified:
        return None
    points = minimisation_form(problem, verified)[:, 0]
    infeasible = np.array([not candidate.feasible(problem) for candidate in verified])
    return int(np.lexsort((points, infeasible))[0])
