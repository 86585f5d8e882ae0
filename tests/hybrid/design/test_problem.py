"""Facts about design problems: the shipped problems load and lie inside the design corpus, a
problem leaving the training space is refused, and invalid problems name the field and what is
allowed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.hybrid.design.test_candidates import analytic_problem

from hybrid.design.problem import check_training_space, constraint_labels, load_problem
from hybrid.surrogate.models import ReferenceModel
from sim.config import load_config
from sim.corpus.generate import CorpusSpec, Range
from sim.errors import ConfigError

ROOT = Path(__file__).resolve().parents[3]
DESIGNS = ROOT / "configs" / "design"
DESIGN_CORPUS = ROOT / "configs" / "corpus" / "design.yaml"


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


def test_split_separates_design_and_protocol_variables_and_adds_the_fixed_ones():
    problem = analytic_problem().model_copy(update={"fixed": {"positive_thickness_m": 70e-6}})
    design, protocols = problem.split({"negative_porosity": 0.25, "hppc.levels": 3.0})
    assert design == {"positive_thickness_m": 70e-6, "negative_porosity": 0.25}
    assert protocols == {"hppc": {"levels": 3.0}}


def test_constraint_labels_name_one_bound_each():
    problem = analytic_problem().model_copy(update={"constraints": [
        *analytic_problem().constraints,
        analytic_problem().constraints[0].model_copy(update={"metric": "charged_soc", "min": 0.78, "max": 0.9})]})
    assert constraint_labels(problem) == ["hppc.max_temperature_K <= 329", "hppc.charged_soc >= 0.78",
                                          "hppc.charged_soc <= 0.9"]
