"""Facts about choosing what the reference verifies: expected improvement prefers an uncertain
design that may beat the incumbent over a certain one that cannot, never picks within the
minimum distance of a verified design, and the expected hypervolume improvement of a design the
verified front dominates is zero and its improvement is the difference of two hypervolumes.
Calibration designs come first and count toward the budget."""

from __future__ import annotations

import numpy as np
import pytest
from tests.hybrid.design.test_candidates import AnalyticModel, analytic_problem

from hybrid.design.acquisition import _ehvi, _improvement, choose
from hybrid.design.problem import unit_positions
from hybrid.design.candidates import Candidate
from hybrid.design.optimise import hypervolume, optimise, pareto_front, study_candidates
from hybrid.design.problem import DesignProblem
from hybrid.design.uncertainty import Calibration
from hybrid.design.verify import calibration_designs, verify


def _candidate(porosity: float, power: float, sd: float, temperature: float = 300.0,
               temperature_sd: float = 0.0) -> Candidate:
    return Candidate({"negative_porosity": porosity, "positive_particle_radius_m": 5e-6}, {},
                     {"hppc": {"power_capability_W": power, "max_temperature_K": temperature}},
                     {"hppc": {"power_capability_W": sd, "max_temperature_K": temperature_sd}})


def test_expected_improvement_prefers_a_design_that_may_beat_the_incumbent():
    problem = analytic_problem()  # maximise power
    verified = [_candidate(0.20, 90.0, 0.0)]
    pool = list(enumerate([_candidate(0.25, 89.0, 0.0), _candidate(0.28, 88.0, 5.0),
                           _candidate(0.29, 95.0, 0.0, temperature=340.0)]))  # best, but infeasible
    picks = choose(problem, pool, verified, Calibration.raw(problem), count=2, min_distance=0.0)
    assert [n for n, _ in picks][0] == 1


def test_a_feasibility_threshold_stops_a_long_shot_from_taking_the_pick():
    problem = analytic_problem()  # maximise power, max temperature <= 329 K
    verified = [_candidate(0.20, 90.0, 0.0)]
    long_shot = _candidate(0.25, 200.0, 1.0, temperature=335.0, temperature_sd=3.0)  # P(feasible) ~ 0.02
    likely = _candidate(0.28, 92.0, 1.0, temperature=320.0, temperature_sd=3.0)  # ~ 1.0, a small gain
    pool = list(enumerate([long_shot, likely]))
    [free] = choose(problem, pool, verified, Calibration.raw(problem), count=1, min_distance=0.0)
    [held] = choose(problem, pool, verified, Calibration.raw(problem), count=1, min_distance=0.0, min_feasibility=0.5)
    assert free[0] == 0 and held[0] == 1
    only_long_shots = list(enumerate([long_shot]))  # none reaches the threshold: it does not empty the pick
    assert len(choose(problem, only_long_shots, verified, Calibration.raw(problem), count=1, min_distance=0.0,
                      min_feasibility=0.5)) == 1


def test_no_pick_lies_within_the_minimum_distance_of_a_verified_design():
    problem = analytic_problem()
    verified = [_candidate(0.25, 90.0, 0.0)]
    pool = list(enumerate([_candidate(0.2505, 99.0, 1.0), _candidate(0.29, 91.0, 1.0)]))
    picks = choose(problem, pool, verified, Calibration.raw(problem), count=2, min_distance=0.05)
    assert [n for n, _ in picks] == [1]
    assert unit_positions(problem, [c.params for _, c in pool])[0, 0] == np.float64(0.505)


def test_a_design_the_verified_front_dominates_gains_no_hypervolume():
    known = np.array([[1.0, 1.0]])
    mean = np.array([[2.0, 2.0], [0.5, 0.5], [0.5, 3.0]])
    gain = _ehvi(known, mean, np.zeros_like(mean), np.zeros((4, 2)), np.ones(3, dtype=bool))
    assert gain[0] == 0.0 and gain[1] > gain[2] > 0.0


def test_calibration_designs_come_first_and_count_toward_the_budget(tmp_path):
    problem = analytic_problem(trials=20)
    problem = DesignProblem.model_validate({**problem.model_dump(), "verify": {
        "calibration_designs": 3, "budget": 5, "candidates": 2, "rounds": 3}})
    surrogate, reference = AnalyticModel(), AnalyticModel(temperature_offset_K=0.5)
    first = calibration_designs(problem, surrogate, reference)
    assert [(v.round, v.trial, v.purpose) for v in first] == [(0, -1, "calibration"), (0, -2, "calibration"),
                                                             (0, -3, "calibration")]
    candidates = study_candidates(optimise(problem, surrogate, tmp_path, progress=False))
    more, _ = verify(problem, reference, candidates, previous=first, first_round=1)
    assert len(first) + len(more) == 5 and all(v.purpose == "search" for v in more)
    assert more[0].calibration.fitted_on == 3  # the first picks are judged by the calibration designs' fit


def test_the_hypervolume_improvement_equals_the_difference_of_hypervolumes():
    rng = np.random.default_rng(3)
    front = rng.uniform(0.0, 1.0, (12, 3))
    front = front[pareto_front(front)]
    reference = np.full(3, 1.2)
    for point in rng.uniform(0.0, 1.3, (50, 3)):
        brute = hypervolume(np.vstack([front, point]), reference) - hypervolume(front, reference)
        assert _improvement(front, point, reference) == pytest.approx(brute, abs=1e-12)
