"""Facts about candidates: a failed candidate scores the worst objective and an infinite
constraint violation, feasibility honours a back-off, and invalid protocol values fail a
candidate without a solve. Also the analytic stand-in model the other design tests share."""

from __future__ import annotations

import math

import pytest

from hybrid.design.candidates import Candidate, score_candidates
from hybrid.evaluate.tables import json_safe
from hybrid.design.problem import DesignProblem
from hybrid.surrogate.metrics import METRICS
from hybrid.surrogate.models import DesignEvaluation
from sim.corpus.generate import Range


class AnalyticModel:
    """A stand-in for the surrogate (or, with a temperature offset, for a reference it
    misjudges) with closed-form metrics, no solve: power peaks at porosity 0.27 and falls with
    the particle radius, the temperature rises with porosity; it counts the designs it evaluates."""

    name = "analytic"

    def __init__(self, temperature_offset_K: float = 0.0):
        self.evaluated = 0
        self.temperature_offset_K = temperature_offset_K
        self.design_space = {"negative_porosity": Range(low=0.2, high=0.3),
                             "positive_particle_radius_m": Range(low=3e-6, high=8e-6, log=True)}

    def evaluate(self, designs, protocol, **options) -> list[DesignEvaluation]:
        self.evaluated += len(designs)
        results = []
        for design in designs:
            power = 100.0 - 1e4 * (design["negative_porosity"] - 0.27) ** 2 - 2e6 * design["positive_particle_radius_m"]
            metrics = {**dict.fromkeys(METRICS, float("nan")), "power_capability_W": power,
                       "max_temperature_K": 300.0 + 100.0 * design["negative_porosity"] + self.temperature_offset_K}
            results.append(DesignEvaluation(dict(design), "ok", "", {}, metrics))
        return results


def analytic_problem(trials: int = 8, seed: int = 0, direction: str = "maximize",
                     max_temperature_K: float = 329.0, select: str = "ei") -> DesignProblem:
    return DesignProblem.model_validate({
        "name": "analytic",
        "variables": {"negative_porosity": {"low": 0.2, "high": 0.3},
                      "positive_particle_radius_m": {"low": 3e-6, "high": 8e-6, "log": True}},
        "protocols": {"hppc": {"kind": "hppc", "levels": 2}},
        "objectives": [{"metric": "power_capability_W", "direction": direction}],
        "constraints": [{"metric": "max_temperature_K", "max": max_temperature_K}],
        "optimiser": {"trials": trials, "batch_size": 3, "startup_trials": 4, "seed": seed},
        "verify": {"select": select}})


def test_candidates_score_the_analytic_metrics_and_check_constraints_against_their_bound():
    problem = analytic_problem(max_temperature_K=326.0)
    model = AnalyticModel()
    cool, hot = score_candidates(problem, model, [{"negative_porosity": 0.25, "positive_particle_radius_m": 5e-6},
                                                  {"negative_porosity": 0.27, "positive_particle_radius_m": 5e-6}])
    assert model.evaluated == 2
    assert cool.objective_values(problem) == pytest.approx([100.0 - 1e4 * 0.02 ** 2 - 10.0])
    assert cool.constraint_values(problem) == pytest.approx([325.0 - 326.0])  # feasible when <= 0
    assert cool.feasible(problem) and not hot.feasible(problem)
    assert not cool.feasible(problem, backoff=[1.5])  # tightened by a 1.5 K back-off
    assert cool.design == {"negative_porosity": 0.25, "positive_particle_radius_m": 5e-6}


def test_a_failed_candidate_is_the_worst_objective_and_infinitely_infeasible():
    maximised, minimised = analytic_problem(), analytic_problem(direction="minimize")
    failed = Candidate({}, {}, {"hppc": {"power_capability_W": 50.0, "max_temperature_K": 300.0}}, status="failed")
    assert failed.objective_values(maximised) == [-math.inf]
    assert failed.objective_values(minimised) == [math.inf]
    assert failed.constraint_values(maximised) == [math.inf]
    assert not failed.feasible(maximised)
    unscored = Candidate({}, {}, {"hppc": {"power_capability_W": float("nan")}})
    assert unscored.objective_values(maximised) == [-math.inf]  # a NaN metric is no better


def test_invalid_protocol_values_fail_the_candidate_without_a_solve():
    problem = DesignProblem.model_validate({
        **analytic_problem().model_dump(mode="json"),
        "variables": {"negative_porosity": {"low": 0.2, "high": 0.3},
                      "charge.switch_soc_1": {"low": 0.1, "high": 0.9}},
        "protocols": {"charge": {"kind": "fast_charge", "c_rates": [2.0, 1.0], "switch_socs": [0.4],
                                 "target_soc": 0.8}},
        "constraints": []})
    model = AnalyticModel()
    bad, = score_candidates(problem, model, [{"negative_porosity": 0.25, "charge.switch_soc_1": 0.85}])
    assert bad.status == "failed" and "strictly increasing" in bad.message
    assert model.evaluated == 0


def test_json_safe_turns_non_finite_floats_into_null_and_numpy_scalars_into_numbers():
    import numpy as np

    plain = json_safe({"a": [np.float64(1.5), float("inf")], 2: (np.int64(3), float("nan"))})
    assert plain == {"a": [1.5, None], "2": [3, None]}
    assert type(plain["a"][0]) is float and type(plain["2"][0]) is int
