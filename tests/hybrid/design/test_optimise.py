"""Facts about the optimiser: hypervolumes and Pareto sets are right by hand, the feasible Pareto
set is what a multi-objective problem verifies, the same seed reproduces the same study, a rerun
resumes it without repeating trials, and the search beats its random start within the
constraints."""

from __future__ import annotations

import dataclasses

import numpy as np
import optuna
import pytest
from tests.hybrid.design.test_candidates import AnalyticModel, analytic_problem

from hybrid.design.candidates import Candidate
from hybrid.design.optimise import hypervolume, minimisation_form, optimise, pareto_front, select_candidates, \
    study_candidates
from hybrid.design.problem import DesignProblem, unit_positions
from hybrid.design.uncertainty import Calibration, LocalBias
from sim.errors import ConfigError


def _trials(study: optuna.Study) -> list[tuple[dict, tuple]]:
    return [(trial.params, tuple(trial.values)) for trial in study.trials]


def test_hypervolume_and_pareto_front_by_hand():
    assert hypervolume(np.array([[1.0, 2.0], [2.0, 1.0]]), np.array([3.0, 3.0])) == pytest.approx(3.0)
    assert hypervolume(np.array([[0.0, 1.0, 1.0], [1.0, 0.0, 1.0]]), np.array([2.0, 2.0, 2.0])) == pytest.approx(3.0)
    assert hypervolume(np.array([[4.0, 0.0]]), np.array([3.0, 3.0])) == 0.0  # beyond the reference point
    points = np.array([[1.0, 2.0], [2.0, 1.0], [2.0, 2.0], [1.0, 2.0]])
    assert pareto_front(points).tolist() == [True, True, False, True]


def test_multi_objective_selection_verifies_the_feasible_pareto_set():
    problem = DesignProblem.model_validate({
        **analytic_problem().model_dump(mode="json"),
        "objectives": [{"metric": "power_capability_W", "direction": "maximize"},
                       {"metric": "max_temperature_K", "direction": "minimize"}],
        "constraints": [{"metric": "discharge_energy_Wh", "min": 1.0}]})

    def candidate(power, temperature, energy):
        return Candidate({}, {}, {"hppc": {"power_capability_W": power, "max_temperature_K": temperature,
                                           "discharge_energy_Wh": energy}})

    candidates = list(enumerate([candidate(10, 300, 2), candidate(20, 310, 2), candidate(15, 320, 2),
                                 candidate(30, 290, 0.5)]))  # the last dominates all but is infeasible
    assert [number for number, _ in select_candidates(problem, candidates)] == [1, 0]
    # maximised objectives are negated, so every column is minimised
    assert minimisation_form(problem, [c for _, c in candidates[:2]]).tolist() == [[-10.0, 300.0], [-20.0, 310.0]]


def test_without_a_feasible_candidate_the_least_violating_are_verified():
    problem = analytic_problem(max_temperature_K=300.0)  # nothing is this cool
    candidates = list(enumerate(Candidate({}, {}, {"hppc": {"power_capability_W": 1.0, "max_temperature_K": t}})
                                for t in (330.0, 310.0, 350.0, 320.0)))
    assert [number for number, _ in select_candidates(problem, candidates)] == [1, 3, 0]


def test_same_seed_reproduces_the_study_and_another_seed_does_not(tmp_path):
    first = optimise(analytic_problem(seed=3), AnalyticModel(), tmp_path / "a", progress=False)
    again = optimise(analytic_problem(seed=3), AnalyticModel(), tmp_path / "b", progress=False)
    other = optimise(analytic_problem(seed=4), AnalyticModel(), tmp_path / "c", progress=False)
    assert _trials(first) == _trials(again)
    assert _trials(first) != _trials(other)
    assert (tmp_path / "a" / "study.db").is_file()


def test_a_rerun_resumes_the_study_without_repeating_trials(tmp_path):
    model = AnalyticModel()
    short = _trials(optimise(analytic_problem(trials=6), model, tmp_path, progress=False))
    longer = optimise(analytic_problem(trials=10), model, tmp_path, progress=False)
    assert len(longer.trials) == 10
    assert _trials(longer)[:6] == short
    assert model.evaluated == 10
    with pytest.raises(ConfigError, match="holds a study of another problem"):
        optimise(analytic_problem(trials=10, direction="minimize"), model, tmp_path, progress=False)


def test_optimiser_beats_its_random_start_and_respects_constraints(tmp_path):
    problem = analytic_problem(trials=24)
    candidates = study_candidates(optimise(problem, AnalyticModel(), tmp_path, progress=False))
    powers = [candidate.value(problem, problem.objectives[0]) for _, candidate in candidates]
    best_number, best = select_candidates(problem, candidates)[0]
    assert best.feasible(problem)
    assert best.value(problem, problem.objectives[0]) > max(powers[:problem.optimiser.startup_trials])


def test_a_calibrated_constraint_is_what_the_sampler_sees_and_is_part_of_the_study(tmp_path):
    problem, model = analytic_problem(trials=4), AnalyticModel()
    raw = Calibration.raw(problem)
    calibration = dataclasses.replace(raw, offset=(0.0, -7.5))
    study = optimise(problem, model, tmp_path, calibration=calibration, progress=False)
    for (_, candidate), trial in zip(study_candidates(study), study.trials):
        values = candidate.constraint_values(problem)
        assert list(trial.constraints.values()) == pytest.approx([values[0] - 7.5])
    with pytest.raises(ConfigError, match="other constraint offsets"):
        optimise(problem, model, tmp_path, progress=False)
    # a local bias is added where the design is (and a study steered by another one is another study)
    bias = LocalBias(np.array([[0.5, 0.5]]), np.array([2.0]), length=0.2)
    biased = dataclasses.replace(calibration, bias=(None, bias))
    study = optimise(problem, model, tmp_path / "biased", calibration=biased, progress=False)
    for (_, candidate), trial in zip(study_candidates(study), study.trials):
        at = unit_positions(problem, [candidate.params])
        expected = candidate.constraint_values(problem)[0] - 7.5 + float(bias(at)[0])
        assert list(trial.constraints.values()) == pytest.approx([expected])
    with pytest.raises(ConfigError, match="other constraint offsets"):
        optimise(problem, model, tmp_path / "biased", calibration=calibration, progress=False)
