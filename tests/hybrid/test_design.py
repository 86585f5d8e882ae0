"""Facts about design problems and the design loop: problems are validated with useful messages,
the fast-charge protocol is the one the design corpus trains on, hypervolumes and Pareto sets
are right, the same seed reproduces the same study and a rerun resumes it, and the smoke loop
finds a better design than its first random candidates and reports reference metrics equal to
a direct reference evaluation of the chosen design."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import optuna
import pytest
from tests.hybrid.test_surrogate import smoke_run_dir

from hybrid.design.active import ActiveLearningOptions
from hybrid.design.problem import (
    Candidate,
    DesignProblem,
    FastChargeProtocol,
    check_training_space,
    design_cli,
    design_loop,
    hypervolume,
    load_problem,
    optimise,
    pareto_front,
    select_candidates,
    study_candidates,
    verify,
)
from hybrid.surrogate.metrics import METRICS
from hybrid.surrogate.models import DesignEvaluation, HybridSurrogate, ReferenceModel
from hybrid.train.loop import load_checkpoint
from sim.config import load_config
from sim.corpus.generate import CorpusSpec, Range
from sim.errors import ConfigError
from sim.protocols.steps import Sequence

ROOT = Path(__file__).resolve().parents[2]
DESIGNS = ROOT / "configs" / "design"
DESIGN_CORPUS = ROOT / "configs" / "corpus" / "design.yaml"


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
                     max_temperature_K: float = 329.0) -> DesignProblem:
    return DesignProblem.model_validate({
        "name": "analytic",
        "variables": {"negative_porosity": {"low": 0.2, "high": 0.3},
                      "positive_particle_radius_m": {"low": 3e-6, "high": 8e-6, "log": True}},
        "protocols": {"hppc": {"kind": "hppc", "levels": 2}},
        "objectives": [{"metric": "power_capability_W", "direction": direction}],
        "constraints": [{"metric": "max_temperature_K", "max": max_temperature_K}],
        "optimiser": {"trials": trials, "batch_size": 3, "startup_trials": 4, "seed": seed}})


def _trials(study: optuna.Study) -> list[tuple[dict, tuple]]:
    return [(trial.params, tuple(trial.values)) for trial in study.trials]


# --- problems ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["cell", "fast_charge", "smoke"])
def test_shipped_problems_load(name):
    problem = load_problem(DESIGNS / f"{name}.yaml")
    assert problem.name == name
    assert problem.objectives


@pytest.mark.parametrize("name", ["cell", "fast_charge"])
def test_shipped_problems_lie_inside_the_design_corpus(tmp_path, name):
    spec = load_config(DESIGN_CORPUS, CorpusSpec)
    (tmp_path / "corpus_manifest.json").write_text(json.dumps({"spec": spec.model_dump(mode="json")}))
    check_training_space(load_problem(DESIGNS / f"{name}.yaml"), ReferenceModel(tmp_path))


def test_problem_leaving_the_training_space_is_refused(tmp_path):
    spec = load_config(DESIGN_CORPUS, CorpusSpec)
    (tmp_path / "corpus_manifest.json").write_text(json.dumps({"spec": spec.model_dump(mode="json")}))
    problem = load_problem(DESIGNS / "cell.yaml")
    wider = problem.model_copy(update={"variables": {**problem.variables,
                                                      "negative_porosity": Range(low=0.2, high=0.35)}})
    with pytest.raises(ConfigError, match=r"'negative_porosity' bounds \[0.2, 0.35\] leave the training range "
                                          r"\[0.2, 0.3\]"):
        check_training_space(wider, ReferenceModel(tmp_path))


def test_invalid_problems_name_the_field_and_what_is_allowed(tmp_path):
    base = analytic_problem().model_dump(mode="json")
    cases = [({"objectives": [{"metric": "speed", "direction": "maximize"}]}, "metric 'speed' unknown; allowed:"),
             ({"variables": {"hppc.bogus": {"low": 1, "high": 2}}}, "'bogus' is not a variable of protocol 'hppc'"),
             ({"variables": {"thickness": {"low": 1, "high": 2}}}, "variable 'thickness': not a design variable"),
             ({"constraints": [{"metric": "max_temperature_K"}]}, "has neither min nor max")]
    for change, message in cases:
        path = tmp_path / "problem.yaml"
        path.write_text(json.dumps({**base, **change}))
        with pytest.raises(ConfigError, match=message):
            load_problem(path)


def test_fast_charge_stages_charge_to_the_target_and_stop_at_the_voltage_limit():
    protocol = FastChargeProtocol(c_rates=[3.0, 2.0, 1.0], switch_socs=[0.3, 0.6], target_soc=0.8, cycles=2)
    steps = protocol.to_sequence().steps
    charges = [step for step in steps if step.kind == "cc" and step.c_rate < 0]
    assert len(charges) == 6
    assert sum(-step.c_rate * step.duration_s / 3600.0 for step in charges[:3]) == pytest.approx(0.8)
    assert all(step.until_voltage_V == 4.2 for step in charges)
    assert protocol.with_values({"c_rate_2": 1.5}).c_rates == [3.0, 1.5, 1.0]
    with pytest.raises(ConfigError, match="strictly increasing"):
        protocol.with_values({"switch_soc_2": 0.2})
    with pytest.raises(ConfigError, match="fast_charge variable 'c_rate_4': unknown"):
        protocol.with_values({"c_rate_4": 1.0})


def test_design_corpus_trains_on_the_fast_charge_protocol_the_problem_optimises():
    spec = load_config(DESIGN_CORPUS, CorpusSpec)
    sequences = [choice.protocol for choice in spec.protocols if isinstance(choice.protocol, Sequence)]
    template = load_problem(DESIGNS / "fast_charge.yaml").protocols["charge"]
    assert len(sequences) == 8
    for sequence in sequences:
        stages = [step for step in sequence.steps[2:5]]
        c_rates = [-step.c_rate for step in stages]
        socs = np.cumsum([c * step.duration_s / 3600.0 for c, step in zip(c_rates, stages)])
        rebuilt = template.with_values({"c_rate_1": c_rates[0], "c_rate_2": c_rates[1], "c_rate_3": c_rates[2],
                                        "switch_soc_1": socs[0], "switch_soc_2": socs[1]})
        assert rebuilt.to_sequence() == sequence


# --- Pareto sets and hypervolume ----------------------------------------------------------------


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


# --- the optimiser ------------------------------------------------------------------------------


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


def test_verification_backs_off_a_constraint_the_surrogate_underestimates(tmp_path):
    # the optimum (porosity 0.27, 327 K) lies beyond a 326 K limit, so the best surrogate designs
    # sit at the limit (porosity ~0.26); the reference runs 0.5 K hotter and rejects some of them
    problem = analytic_problem(trials=30, max_temperature_K=326.0)
    candidates = study_candidates(optimise(problem, AnalyticModel(), tmp_path, progress=False))
    reference = AnalyticModel(temperature_offset_K=0.5)
    pairs, backoff = verify(problem, reference, candidates)
    first = [checked for round_k, _, _, checked in pairs if round_k == 0]
    second = [checked for round_k, _, _, checked in pairs if round_k == 1]
    assert not all(checked.feasible(problem) for checked in first)
    assert backoff == pytest.approx([0.5])
    assert second and all(checked.feasible(problem) for checked in second)
    assert reference.evaluated == len(pairs) <= 2 * problem.verify.candidates


def test_verification_stops_at_its_budget(tmp_path):
    problem = analytic_problem(trials=30, max_temperature_K=326.0)
    problem = problem.model_copy(update={"verify": problem.verify.model_copy(update={"budget": 4})})
    candidates = study_candidates(optimise(problem, AnalyticModel(), tmp_path, progress=False))
    reference = AnalyticModel(temperature_offset_K=0.5)
    pairs, _ = verify(problem, reference, candidates)
    assert len(pairs) == reference.evaluated == 4  # the second round is cut to the one left


# --- the loop on the smoke run ------------------------------------------------------------------


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, one_thread) -> Path:
    return smoke_run_dir(tmp_path_factory)


def test_smoke_design_loop_improves_on_random_designs_and_reports_true_reference_metrics(tmp_path, run_dir):
    problem = load_problem(DESIGNS / "smoke.yaml")
    out = tmp_path / "design"
    report = design_cli(DESIGNS / "smoke.yaml", run_dir, out)

    assert {"report.json", "report.md", "design.png", "study.db"} <= {path.name for path in out.iterdir()}
    assert report == json.loads((out / "report.json").read_text())
    assert report["surrogate_evaluations"] == problem.optimiser.trials
    assert report["reference_evaluations"] == problem.verify.candidates == len(report["chosen"])
    assert report["wall_s"] > 0
    study = optuna.load_study(study_name=problem.name, storage=f"sqlite:///{out / 'study.db'}")
    objective = problem.objectives[0]
    random_start = [candidate.value(problem, objective) for _, candidate in study_candidates(study)
                    ][:problem.optimiser.startup_trials]
    chosen = report["chosen"][report["best"]]
    assert chosen["surrogate"]["hppc"]["power_capability_W"] > max(random_start)

    direct, = ReferenceModel(run_dir).evaluate([chosen["design"]], problem.protocols["hppc"],
                                               conditions=problem.conditions, mass_model=problem.mass)
    for name, value in direct.metrics.items():
        reported = chosen["reference"]["hppc"][name]
        if np.isnan(value):
            assert reported is None
        else:
            assert reported == pytest.approx(value, rel=1e-9), name


def test_active_learning_fine_tunes_the_residual_on_the_verified_designs(tmp_path, run_dir):
    problem = load_problem(DESIGNS / "smoke.yaml")
    problem = problem.model_copy(update={"active_learning": ActiveLearningOptions(rounds=1, epochs=20)})
    report = design_loop(problem, HybridSurrogate(run_dir), ReferenceModel(run_dir), tmp_path)

    assert report["surrogate_evaluations"] == 2 * problem.optimiser.trials
    assert [row["round"] for row in report["chosen"]] == [0, 1]
    first = report["chosen"][0]
    tuned = HybridSurrogate(tmp_path / "active_1" / "run")
    assert load_checkpoint(tmp_path / "active_1" / "run" / "gru" / "best.pt")["extra"]["records"] == 1
    # the fine-tuned residual predicts the design it was tuned on closer to the reference
    again, = tuned.evaluate([first["design"]], problem.protocols["hppc"], conditions=problem.conditions)
    truth = first["reference"]["hppc"]["power_capability_W"]
    before = abs(first["surrogate"]["hppc"]["power_capability_W"] - truth)
    assert abs(again.metrics["power_capability_W"] - truth) < 0.7 * before
