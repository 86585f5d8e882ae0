"""Facts about the calibrated uncertainty: the fit recovers a known offset, scale and floor, its 90 %
intervals cover 90 % of fresh draws, coverage judges each design by its own calibration, and
expected improvement and probability of feasibility match their closed forms."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm
from tests.hybrid.design.test_candidates import analytic_problem

from hybrid.design.candidates import Candidate
from hybrid.design.problem import unit_positions
from hybrid.design.uncertainty import (
    Calibration,
    coverage,
    expected_improvement,
    fit_calibration,
    fit_local_bias,
    probability_feasible,
    target_arrays,
    target_labels,
)


def _pair(power: float, power_sd: float, truth: float, temperature: float = 300.0) -> tuple[Candidate, Candidate]:
    surrogate = Candidate({}, {}, {"hppc": {"power_capability_W": power, "max_temperature_K": temperature}},
                          {"hppc": {"power_capability_W": power_sd, "max_temperature_K": 0.0}})
    reference = Candidate({}, {}, {"hppc": {"power_capability_W": truth, "max_temperature_K": temperature + 0.5}})
    return surrogate, reference


def _draws(rng, count: int, scale: float, floor: float, bias: float = 0.0) -> list[tuple[Candidate, Candidate]]:
    spreads = rng.uniform(0.5, 3.0, count)
    errors = bias + rng.standard_normal(count) * np.hypot(scale * spreads, floor)
    return [_pair(100.0, s, 100.0 + e) for s, e in zip(spreads, errors)]


def test_the_fit_recovers_a_known_offset_scale_and_floor_and_covers_ninety_percent_of_fresh_draws():
    problem, rng = analytic_problem(), np.random.default_rng(0)
    calibration = fit_calibration(problem, _draws(rng, 2000, scale=2.0, floor=1.0, bias=3.0))
    assert target_labels(problem) == ["maximize hppc.power_capability_W", "hppc.max_temperature_K <= 329"]
    assert calibration.scale[0] == pytest.approx(2.0, rel=0.1)
    assert calibration.floor[0] == pytest.approx(1.0, rel=0.3)
    assert calibration.offset[0] == pytest.approx(-3.0, abs=0.15)  # power is maximised: minimisation form
    assert calibration.offset[1] == pytest.approx(0.5, abs=1e-3)  # a constant 0.5 K bias without spread
    assert calibration.floor[1] < 1e-3
    fresh = _draws(rng, 2000, scale=2.0, floor=1.0, bias=3.0)
    judged = coverage(problem, [(calibration, s, r) for s, r in fresh])
    assert judged["targets"]["maximize hppc.power_capability_W"] == pytest.approx(0.9, abs=0.02)
    raw = coverage(problem, [(Calibration.raw(problem), s, r) for s, r in fresh])
    assert raw["targets"]["maximize hppc.power_capability_W"] < 0.7  # the raw spread is too narrow and biased


def test_without_verified_designs_the_calibration_is_the_raw_ensemble():
    problem = analytic_problem()
    assert fit_calibration(problem, []) == Calibration.raw(problem)
    assert coverage(problem, [])["overall"] is None


def test_targets_are_in_minimisation_form_with_their_spreads():
    problem = analytic_problem()  # maximise power
    surrogate, _ = _pair(90.0, 2.0, 0.0, temperature=330.0)
    values, spreads = target_arrays(problem, [surrogate])
    np.testing.assert_allclose(values, [[-90.0, 1.0]])
    np.testing.assert_allclose(spreads, [[2.0, 0.0]])


def test_expected_improvement_and_probability_of_feasibility_match_their_closed_forms():
    mean, sigma = np.array([1.0, 2.0, 0.5, 3.0]), np.array([1.0, 0.5, 0.0, 0.0])
    ei = expected_improvement(mean, sigma, best=1.5)
    z = (1.5 - mean[:2]) / sigma[:2]
    np.testing.assert_allclose(ei[:2], (1.5 - mean[:2]) * norm.cdf(z) + sigma[:2] * norm.pdf(z))
    np.testing.assert_allclose(ei[2:], [1.0, 0.0])  # no uncertainty: the plain improvement
    samples = np.random.default_rng(1).normal(1.0, 1.0, 200_000)
    assert ei[0] == pytest.approx(np.mean(np.maximum(1.5 - samples, 0.0)), rel=0.01)
    problem = analytic_problem()
    values = np.array([[0.0, -1.0], [0.0, 1.0], [0.0, 0.0]])
    sigmas = np.array([[0.0, 1.0], [0.0, 0.0], [0.0, 2.0]])
    np.testing.assert_allclose(probability_feasible(problem, values, sigmas), [norm.cdf(1.0), 0.0, 0.5])


def _located_pairs(problem, unit: np.ndarray, error) -> list[tuple[Candidate, Candidate]]:
    """Surrogate/reference pairs at unit-cube positions whose temperature error is ``error(unit)``."""
    pairs = []
    for position, e in zip(unit, error(unit)):
        params = {name: bounds.at(u) for (name, bounds), u in zip(problem.variables.items(), position)}
        surrogate = Candidate(params, params, {"hppc": {"power_capability_W": 100.0, "max_temperature_K": 320.0}},
                              {"hppc": {"power_capability_W": 1.0, "max_temperature_K": 0.1}})
        reference = Candidate(params, params, {"hppc": {"power_capability_W": 100.0, "max_temperature_K": 320.0 + e}})
        pairs.append((surrogate, reference))
    return pairs


def test_a_design_dependent_bias_is_learned_and_its_intervals_stay_honest_on_fresh_designs():
    # the surrogate reads the temperature 3 K low at high porosity and right at low porosity: the
    # global offset alone would be 1.5 K off everywhere
    problem, rng = analytic_problem(), np.random.default_rng(0)
    def error(unit):
        return 3.0 / (1.0 + np.exp(-12.0 * (unit[:, 0] - 0.5))) + 0.1 * rng.standard_normal(len(unit))
    calibration = fit_calibration(problem, _located_pairs(problem, rng.uniform(size=(40, 2)), error))
    assert calibration.bias[0] is None and calibration.bias[1] is not None  # power has no design-dependent error
    assert calibration.floor[1] < 0.5  # the bias's own error, not the 1.5 K a global offset leaves
    fresh = _located_pairs(problem, rng.uniform(0.05, 0.95, size=(400, 2)), error)
    positions = unit_positions(problem, [s.params for s, _ in fresh])
    expected = calibration.mean(target_arrays(problem, [s for s, _ in fresh])[0], positions)[:, 1]
    truth = target_arrays(problem, [r for _, r in fresh])[0][:, 1]
    assert np.sqrt(np.mean((expected - truth) ** 2)) < 0.4
    judged = coverage(problem, [(calibration, s, r) for s, r in fresh])
    assert judged["targets"]["hppc.max_temperature_K <= 329"] == pytest.approx(0.9, abs=0.07)


def test_errors_without_structure_get_no_local_bias():
    problem, rng = analytic_problem(), np.random.default_rng(1)
    pairs = _located_pairs(problem, rng.uniform(size=(40, 2)), lambda unit: 1.0 + rng.standard_normal(len(unit)))
    calibration = fit_calibration(problem, pairs)
    assert calibration.bias == ()
    assert calibration.offset[1] == pytest.approx(1.0, abs=0.4)
    bias, held_out = fit_local_bias(rng.uniform(size=(5, 2)), np.arange(5.0))  # too few designs
    assert bias is None and not held_out.any()


def test_search_picks_where_the_surrogate_errs_most_widen_the_interval_until_they_are_covered():
    # the surrogate errs by N(0, 1) on the calibration designs, but the search picks the designs
    # it rates best, where it errs most (N(0, 3^2)): the errors of all verified designs pooled
    # understate how far the next pick lands from its prediction
    problem, rng = analytic_problem(), np.random.default_rng(0)
    pairs = [_pair(100.0 + e, 0.5, 100.0) for e in rng.standard_normal(100)]
    picked_in: list[int | None] = [None] * len(pairs)
    inside: dict[str, list[float]] = {"widened": [], "not widened": []}
    for round_k in range(1, 6):
        picks = [_pair(100.0 + e, 0.5, 100.0) for e in 3.0 * rng.standard_normal(20)]
        for name, rounds in (("widened", picked_in), ("not widened", None)):
            calibration = fit_calibration(problem, pairs, rounds)
            judged = coverage(problem, [(calibration, s, r) for s, r in picks])
            inside[name] += [judged["targets"]["maximize hppc.power_capability_W"]] if round_k > 1 else []
        pairs, picked_in = pairs + picks, picked_in + [round_k] * len(picks)
    assert np.mean(inside["not widened"]) < 0.75
    assert np.mean(inside["widened"]) >= 0.85
    calibration = fit_calibration(problem, pairs, picked_in)
    assert calibration.widening[0] > 1.5 and calibration.widening[1] == 1.0  # temperature: no surprise
    assert fit_calibration(problem, pairs).widening == ()
