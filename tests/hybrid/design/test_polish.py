"""Facts about the polish (hybrid.design.polish): from a verified design well inside the
feasible region, a surrogate that reads 2 K hot (so by its own values the bound lies 0.02 of
porosity short of the reference's) is corrected to the reference and walks to the reference's
constrained optimum, and so does one whose temperature rises with porosity 20 % too slowly
(its error changes sign on the way); every step it runs on
the reference is one the corrected surrogate calls a feasible improvement; it spends no more
than its steps and the budget leave; several objectives get no polish."""

from __future__ import annotations

import pytest
from tests.hybrid.design.test_candidates import AnalyticModel, analytic_problem

from hybrid.design.candidates import score_candidates
from hybrid.design.polish import polish
from hybrid.design.problem import DesignProblem
from hybrid.design.uncertainty import Calibration
from hybrid.design.verify import Verified

START = {"negative_porosity": 0.22, "positive_particle_radius_m": 5e-6}
OPTIMUM_W = 100.0 - 1e4 * 0.01 ** 2 - 2e6 * 3e-6  # porosity 0.26 (326 K on the reference), smallest radius


class SlopedModel(AnalyticModel):
    """Reads the temperature as 305 K + 80 K x porosity (the reference: 300 + 100): right at
    porosity 0.25, 0.4 K cool at the reference's bound, 0.2 K hot at the start."""

    def evaluate(self, designs, protocol, **options):
        results = super().evaluate(designs, protocol, **options)
        for design, result in zip(designs, results):
            result.metrics["max_temperature_K"] = 305.0 + 80.0 * design["negative_porosity"]
        return results


def _problem(**verify) -> DesignProblem:
    problem = analytic_problem(max_temperature_K=326.0)
    return DesignProblem.model_validate({**problem.model_dump(), "verify": {**problem.verify.model_dump(), **verify}})


def _verified(problem: DesignProblem, surrogate: AnalyticModel, reference: AnalyticModel) -> list[Verified]:
    (predicted,), (checked,) = (score_candidates(problem, model, [START]) for model in (surrogate, reference))
    return [Verified(1, 0, predicted, checked, Calibration.raw(problem))]


@pytest.mark.parametrize("surrogate", [AnalyticModel(temperature_offset_K=2.0), SlopedModel()],
                         ids=["offset", "slope"])
def test_the_polish_walks_a_biased_surrogate_to_the_reference_optimum_on_the_constraint(surrogate):
    problem = _problem(polish_steps=12)
    reference = AnalyticModel()
    start = _verified(problem, surrogate, reference)
    reference.evaluated = 0
    done = polish(problem, surrogate, reference, start)
    assert 0 < len(done) == reference.evaluated <= 12
    assert all(v.purpose == "polish" for v in done) and [v.trial for v in done] == list(range(8, 8 + len(done)))
    best = start[0].reference.objective_values(problem)[0]
    for v in done:
        power = v.reference.objective_values(problem)[0]
        if v.reference.feasible(problem) and power > best:
            best = power
    assert best == pytest.approx(OPTIMUM_W, abs=0.5)  # from 65 W at the start
    assert start[0].reference.objective_values(problem)[0] == pytest.approx(65.0)


def test_the_polish_stops_at_the_budget_and_needs_one_objective_and_a_feasible_start():
    surrogate, reference = AnalyticModel(temperature_offset_K=2.0), AnalyticModel()
    problem = _problem(polish_steps=12, budget=4)
    assert len(polish(problem, surrogate, reference, _verified(problem, surrogate, reference))) == 3
    assert polish(_problem(polish_steps=0), surrogate, reference, _verified(problem, surrogate, reference)) == []
    hot = _problem(polish_steps=12)
    hot = DesignProblem.model_validate({**hot.model_dump(), "constraints": [
        {"metric": "max_temperature_K", "max": 310.0}]})  # the start runs at 322 K: nothing to polish from
    assert polish(hot, surrogate, reference, _verified(hot, surrogate, reference)) == []
    two = DesignProblem.model_validate({**problem.model_dump(), "objectives": [
        *problem.model_dump()["objectives"], {"metric": "max_temperature_K", "direction": "minimize"}]})
    assert polish(two, surrogate, reference, _verified(two, surrogate, reference)) == []
