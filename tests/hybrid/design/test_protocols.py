"""Facts about protocols with variables: the fast charge charges to its target and stops at the
voltage limit, is the protocol the design corpus trains on, and any protocol's numbers can be
set as variables (integers rounded, unknown names refused)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hybrid.design.problem import DesignProblem, load_problem
from hybrid.design.protocols import protocol_variable_names, protocol_with_values
from sim.protocols import FastCharge
from sim.config import load_config
from sim.corpus.generate import CorpusSpec
from sim.errors import ConfigError
from sim.protocols.steps import HPPC, Sequence

ROOT = Path(__file__).resolve().parents[3]
DESIGNS = ROOT / "configs" / "design"
DESIGN_CORPUS = ROOT / "configs" / "corpus" / "design.yaml"


def test_fast_charge_stages_charge_to_the_target_and_stop_at_the_voltage_limit():
    protocol = FastCharge(c_rates=[3.0, 2.0, 1.0], switch_socs=[0.3, 0.6], target_soc=0.8, cycles=2)
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


def test_reference_tests_measure_full_capacity_before_and_after_the_fast_cycles():
    protocol = FastCharge(c_rates=[3.0, 1.0], switch_socs=[0.5], cycles=2, reference_tests=True)
    kinds = [(step.kind, getattr(step, "c_rate", None)) for step in protocol.to_sequence().steps]
    reference = [("cc", -0.5), ("cv", None), ("rest", None), ("cc", 1.0), ("rest", None)]
    fast_cycle = [("cc", -3.0), ("cc", -1.0), ("rest", None), ("cc", 1.0), ("rest", None)]
    assert kinds == [("cc", 1.0), ("rest", None), *reference, *fast_cycle, *fast_cycle, *reference[:-1]]
    cv = protocol.to_sequence().steps[3]
    assert (cv.voltage_V, cv.until_c_rate) == (4.2, 0.05)
    problem = load_problem(DESIGNS / "smoke.yaml").model_dump()
    problem["protocols"] = {"charge": {"kind": "fast_charge", "c_rates": [2.0], "reference_tests": True}}
    problem["variables"] = {"charge.c_rate_1": {"low": 1.0, "high": 3.0}}
    problem["objectives"], problem["constraints"] = [{"metric": "charge_time_min", "direction": "minimize"}], []
    with pytest.raises(ValueError, match="metric_options.charge_index: 1"):
        DesignProblem.model_validate(problem)
    assert DesignProblem.model_validate({**problem, "metric_options": {"charge_index": 1}})


def test_design_corpus_trains_on_the_fast_charge_protocol_the_problem_optimises():
    spec = load_config(DESIGN_CORPUS, CorpusSpec)
    tests = [choice.protocol for choice in spec.protocols if isinstance(choice.protocol, FastCharge)]
    problem = load_problem(DESIGNS / "fast_charge.yaml")
    template = problem.protocols["charge"]
    assert len(tests) == 8
    for test in tests:  # the problem's protocol at its variables' values: nothing else differs
        names = [name.split(".", 1)[1] for name in problem.variables]
        values = {name: (test.c_rates if name.startswith("c_rate") else test.switch_socs)[int(name[-1]) - 1]
                  for name in names}
        assert template.with_values(values) == test


def test_any_protocol_offers_its_numbers_as_variables():
    hppc = HPPC(levels=2)
    assert "levels" in protocol_variable_names(hppc) and "kind" not in protocol_variable_names(hppc)
    assert protocol_with_values(hppc, {"levels": 3.4}, "protocols.hppc").levels == 3  # an integer field rounds
    assert protocol_with_values(hppc, {}, "protocols.hppc") is hppc
    with pytest.raises(ConfigError, match="protocols.hppc: variable 'bogus' unknown; allowed:"):
        protocol_with_values(hppc, {"bogus": 1.0}, "protocols.hppc")
