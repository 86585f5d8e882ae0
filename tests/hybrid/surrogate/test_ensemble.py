"""Facts about a deep ensemble in the surrogate: its metrics are the members' mean and its spread
their standard deviation, a member that stops early is outvoted by a majority that finishes,
and the surrogate of an ensemble equals its members run alone, averaged."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hybrid.surrogate.ensemble import Z_90, Scored, combine_members
from hybrid.surrogate.models import DesignEvaluation, HybridSurrogate
from sim.protocols.steps import HPPC


def _member(status: str, energy: float) -> Scored:
    result = {"status": status, "message": f"{status} member", "columns": {"Time [s]": np.zeros(2)},
              "capacity_Ah": 5.0, "window_V": (2.5, 4.2), "wall_s": 0.1}
    return Scored(result, {"discharge_energy_Wh": energy, "charge_time_min": math.nan})


def test_members_combine_into_their_mean_and_sample_spread():
    result, mean, spread = combine_members([_member("ok", e) for e in (10.0, 11.0, 12.0)])
    assert result["status"] == "ok"
    assert mean["discharge_energy_Wh"] == pytest.approx(11.0)
    assert spread["discharge_energy_Wh"] == pytest.approx(1.0)  # sample sd of 10, 11, 12
    assert math.isnan(mean["charge_time_min"]) and math.isnan(spread["charge_time_min"])


def test_a_majority_that_finishes_outvotes_a_member_that_stops_early():
    result, mean, _ = combine_members([_member("ok", 10.0), _member("truncated", 5.0), _member("ok", 12.0)])
    assert result["status"] == "ok" and "1 of 3 ensemble members stopped early" in result["message"]
    assert mean["discharge_energy_Wh"] == pytest.approx(11.0)  # scored on the members that finished
    result, _, _ = combine_members([_member("truncated", 10.0), _member("truncated", 5.0), _member("ok", 12.0)])
    assert result["status"] == "truncated" and "2 of 3" in result["message"]


def test_one_model_has_no_spread_and_a_point_interval():
    result, mean, spread = combine_members([_member("ok", 10.0)])
    assert spread == {} and mean["discharge_energy_Wh"] == 10.0
    evaluation = DesignEvaluation({}, "ok", "", {}, {"discharge_energy_Wh": 10.0})
    assert evaluation.interval("discharge_energy_Wh") == (10.0, 10.0)
    evaluation.spread = {"discharge_energy_Wh": 2.0}
    assert evaluation.interval("discharge_energy_Wh", scale=1.5, floor=0.0) == pytest.approx(
        (10.0 - Z_90 * 3.0, 10.0 + Z_90 * 3.0))


def test_the_ensemble_surrogate_is_the_mean_of_its_members_run_alone(smoke_run_dir):
    designs, protocol = [{"negative_porosity": 0.22}, {"negative_porosity": 0.28}], HPPC(levels=2, soc_step=0.2,
                                                                                         relax_s=300)
    ensemble = HybridSurrogate(smoke_run_dir)
    assert [member.name for member in ensemble.ensemble] == ["gru", "gru-m1"]
    together = ensemble.evaluate(designs, protocol)
    first = HybridSurrogate(smoke_run_dir)
    first.ensemble = first.ensemble[:1]  # "gru" names the ensemble; its first member alone
    alone = [first.evaluate(designs, protocol), HybridSurrogate(smoke_run_dir, model="gru-m1").evaluate(designs, protocol)]
    for d, evaluation in enumerate(together):
        members = np.array([run[d].metrics["power_capability_W"] for run in alone])
        assert evaluation.metrics["power_capability_W"] == pytest.approx(members.mean(), rel=1e-9)
        assert evaluation.spread["power_capability_W"] == pytest.approx(members.std(ddof=1), rel=1e-9)
        assert evaluation.spread["power_capability_W"] > 0
        np.testing.assert_array_equal(evaluation.columns["Voltage [V]"], alone[0][d].columns["Voltage [V]"])
