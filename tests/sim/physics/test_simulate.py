"""Physics sanity of simulate(): capacity, cut-offs, heating, ageing, hysteresis, reuse."""

import importlib

import numpy as np
import pytest
import pandas as pd

from sim.cells.spec import CellSpec, cell_parameter_values
from sim.errors import SimulationError
from sim.physics.fidelity import Fidelity, Hysteresis
from sim.protocols.base import Ripple
from sim.protocols.steps import HPPC, AgeingCampaign, ConstantCurrent, CurrentTrace, Cycling, Dynamic, Rest, Sequence
from sim.physics.simulate import ModelCache, simulate


@pytest.mark.parametrize("parameter_set", ["OKane2022", "Chen2020", "Prada2013"])
def test_fresh_capacity_at_c10_is_nominal(parameter_set):
    cell = CellSpec(parameter_set=parameter_set)
    trajectory = simulate(cell, ConstantCurrent(c_rate=0.1, until_voltage_V=None or _lower(cell),
                                                period_s=60.0), Fidelity(model="spm"))
    nominal = cell_parameter_values(cell)["Nominal cell capacity [A.h]"]
    capacity = trajectory.cycles["Discharge capacity [A.h]"][0]
    assert trajectory.status == "ok"
    assert abs(capacity / nominal - 1) < 0.03


def _lower(cell: CellSpec) -> float:
    return cell_parameter_values(cell)["Lower voltage cut-off [V]"]


def test_voltage_stays_inside_cut_offs_and_2c_heats_more_than_half_c():
    cell = CellSpec(parameter_set="OKane2022")
    lumped = Fidelity(model="spme", thermal="lumped")
    rises = {}
    for c_rate in (0.5, 2.0):
        trajectory = simulate(cell, Cycling(cycles=1, discharge_c_rate=c_rate, charge_c_rate=c_rate,
                                            period_s=30.0), lumped)
        voltage = trajectory["Voltage [V]"]
        assert voltage.min() >= 2.5 - 1e-3 and voltage.max() <= 4.2 + 1e-3
        rises[c_rate] = trajectory["Cell temperature [K]"].max() - cell.ambient_temperature_K
    assert rises[2.0] > 2 * rises[0.5] > 0


def test_ageing_campaign_loses_lithium_and_capacity_monotonically():
    campaign = AgeingCampaign(cycles=12, diagnostic_every=4, diagnostics=("capacity",),
                              cycling=Cycling(period_s=300.0))
    fidelity = Fidelity(model="spm", sei="solvent-diffusion limited", ageing_acceleration=100)
    trajectory = simulate(CellSpec(), campaign, fidelity)
    assert trajectory.status == "ok"
    lli = trajectory["Loss of lithium inventory [%]"]
    sei = trajectory["X-averaged negative SEI thickness [m]"]
    assert np.all(np.diff(lli) >= -1e-9) and lli[-1] > lli[0]
    assert np.all(np.diff(sei) >= -1e-15)
    checks = trajectory.cycles["Discharge capacity [A.h]"][trajectory.cycles["Tag"] == "capacity"]
    assert len(checks) == 4 and np.all(np.diff(checks) < 0)
    cycles = trajectory.cycles["Discharge capacity [A.h]"][trajectory.cycles["Tag"] == "cycle"]
    assert np.all(np.diff(cycles[1:]) < 0)  # the first cycle starts from the initial full state


def _relaxed_voltage_at_half_soc(fidelity: Fidelity, start_soc: float) -> float:
    """Voltage after a 1 h rest at 50 % SOC reached from above (discharge) or below (charge)."""
    c_rate = 0.5 if start_soc > 0.5 else -0.5
    steps = Sequence(steps=[ConstantCurrent(c_rate=c_rate, duration_s=3600.0 * abs(start_soc - 0.5) / 0.5),
                            Rest(duration_s=3600.0)], period_s=60.0)
    trajectory = simulate(CellSpec(initial_soc=start_soc), steps, fidelity, raise_on_failure=True)
    return float(trajectory["Voltage [V]"][-1])


def test_hysteresis_puts_the_charge_branch_above_the_discharge_branch():
    width = 0.03
    with_hysteresis = Fidelity(hysteresis=Hysteresis(width_V=width))
    gap = _relaxed_voltage_at_half_soc(with_hysteresis, 0.1) - _relaxed_voltage_at_half_soc(with_hysteresis, 0.9)
    plain_gap = _relaxed_voltage_at_half_soc(Fidelity(), 0.1) - _relaxed_voltage_at_half_soc(Fidelity(), 0.9)
    assert abs(plain_gap) < 0.005
    assert gap > 0.7 * width  # relaxed charge branch above relaxed discharge branch by ~the width


def test_reused_model_matches_a_fresh_build():
    cache = ModelCache()
    protocol = Cycling(cycles=1, period_s=60.0)
    fidelity = Fidelity(model="spme")
    first = CellSpec(design={"negative_porosity": 0.25})
    second = CellSpec(design={"negative_porosity": 0.3})
    simulate(first, protocol, fidelity, cache=cache)
    reused = simulate(second, protocol, fidelity, cache=cache)
    assert cache.builds == 1
    fresh = simulate(second, protocol, fidelity, cache=ModelCache())
    np.testing.assert_allclose(reused["Voltage [V]"], fresh["Voltage [V]"], atol=1e-6)
    thicker = simulate(first.with_updates(design={"negative_thickness_m": 90e-6}), protocol, fidelity, cache=cache)
    assert cache.builds == 2 and thicker.status == "ok"  # geometry changed: rebuilt


def test_dynamic_profile_runs_on_the_interpolant_path():
    protocol = Dynamic(duration_s=600.0, peak_c_rate=2.0, seed=3)
    trajectory = simulate(CellSpec(initial_soc=0.8), protocol, Fidelity())
    assert trajectory.status == "ok"
    assert trajectory["Time [s]"][-1] == pytest.approx(600.0, abs=1.0)
    capacity = trajectory.metadata["capacity_Ah"]
    assert trajectory["Current [A]"].max() == pytest.approx(2.0 * capacity, rel=1e-6)


def test_solver_failure_is_data_unless_asked_to_raise():
    broken = CellSpec(overrides={"Negative particle diffusivity [m2.s-1]": 0.0})
    protocol = ConstantCurrent(c_rate=1.0, duration_s=600.0)
    trajectory = simulate(broken, protocol, Fidelity())
    assert trajectory.status == "failed" and trajectory.message
    with pytest.raises(SimulationError):
        simulate(broken, protocol, Fidelity(), raise_on_failure=True)


def test_current_trace_reproduces_the_source_trajectory():
    """The physics counterpart path: the same model driven by a trajectory's sampled current
    and charge counter keeps the charge exact and the voltage within a few mV."""
    source = simulate(CellSpec(), AgeingCampaign(cycles=2, diagnostic_every=2, diagnostics=("capacity", "hppc")),
                      Fidelity())
    trace = CurrentTrace(source["Time [s]"], source["Current [A]"], source["Discharge capacity [A.h]"])
    replay = simulate(CellSpec(), trace, Fidelity(), voltage_cutoffs=False)
    assert replay.status == "ok"
    np.testing.assert_array_equal(replay["Time [s]"], source["Time [s]"])
    np.testing.assert_allclose(replay["Discharge capacity [A.h]"], source["Discharge capacity [A.h]"], atol=1e-6)
    rmse = np.sqrt(np.mean((replay["Voltage [V]"] - source["Voltage [V]"]) ** 2))
    assert rmse < 0.01


def _hppc_trace(rows: int | None = None) -> CurrentTrace:
    source = simulate(CellSpec(), HPPC(levels=2), Fidelity(), raise_on_failure=True)
    return CurrentTrace(*(source[name][:rows] for name in ("Time [s]", "Current [A]", "Discharge capacity [A.h]")))


def test_one_built_model_serves_current_traces_of_any_length():
    """The physics counterpart: a new measured current re-solves without a rebuild, and what a
    reused model gives does not depend on the traces it solved before."""
    cache = ModelCache()
    long, short = _hppc_trace(), _hppc_trace(rows=300)
    simulate(CellSpec(), long, Fidelity(), cache=cache, voltage_cutoffs=False)
    reused = simulate(CellSpec(initial_soc=0.9), short, Fidelity(), cache=cache, voltage_cutoffs=False)
    assert cache.builds == 1 and reused.status == "ok"
    fresh = simulate(CellSpec(initial_soc=0.9), short, Fidelity(), cache=ModelCache(), voltage_cutoffs=False)
    np.testing.assert_array_equal(reused["Time [s]"], short.time_s)
    np.testing.assert_array_equal(reused["Voltage [V]"], fresh["Voltage [V]"])


def test_a_trace_solved_in_chunks_matches_one_solve_within_solver_tolerance(monkeypatch):
    """Chunking restarts the integrator every CHUNK_KNOTS knots: the voltage moves by less than
    the solver's own error (IDAKLU's default rtol 1e-4 leaves ~0.2 mV against a converged solve)."""
    trace = _hppc_trace()
    chunked = simulate(CellSpec(), trace, Fidelity(), cache=ModelCache(), voltage_cutoffs=False)
    monkeypatch.setattr(importlib.import_module("sim.physics.simulate"), "CHUNK_KNOTS", 2 * len(trace.time_s) + 1)
    whole = simulate(CellSpec(), trace, Fidelity(), cache=ModelCache(), voltage_cutoffs=False)
    np.testing.assert_array_equal(chunked["Time [s]"], whole["Time [s]"])
    np.testing.assert_allclose(chunked["Discharge capacity [A.h]"], whole["Discharge capacity [A.h]"], atol=1e-9)
    assert np.abs(chunked["Voltage [V]"] - whole["Voltage [V]"]).max() < 1e-4


def test_ripple_is_point_sampled_into_current_and_voltage():
    protocol = HPPC(levels=1, ripple=Ripple(frequency_hz=1000.3, amplitude_c_rate=0.05))
    clean = simulate(CellSpec(), HPPC(levels=1), Fidelity())
    rippled = simulate(CellSpec(), protocol, Fidelity())
    tone = rippled.metadata["ripple"]
    assert tone["current_amplitude_A"] == pytest.approx(0.05 * rippled.metadata["capacity_Ah"])
    difference = rippled["Current [A]"] - clean["Current [A]"]
    flowing = np.abs(clean["Current [A]"]) > 1e-6
    assert np.all(difference[~flowing] == 0)
    assert np.abs(difference[flowing]).max() == pytest.approx(tone["current_amplitude_A"], rel=0.05)
    assert 0 < tone["resistance_ohm"] < 0.1


def test_a_replayed_current_runs_past_the_voltage_limits_that_stop_an_ordinary_dynamic_protocol(tmp_path):
    # a C/2 charge from 90 % SOC for an hour: the cell reaches its 4.2 V limit long before the end
    time_s = np.arange(0.0, 3601.0, 10.0)
    pd.DataFrame({"time_s": time_s, "current_A": np.full_like(time_s, -2.5)}).to_csv(tmp_path / "i.csv", index=False)
    cell = CellSpec(initial_soc=0.9)
    stopped = simulate(cell, Dynamic(current_csv=tmp_path / "i.csv", peak_c_rate=0.5), Fidelity())
    replay = simulate(cell, Dynamic(current_csv=tmp_path / "i.csv", peak_c_rate=0.5, voltage_cutoffs=False), Fidelity())
    assert stopped["Time [s]"][-1] < 3000.0
    assert replay["Time [s]"][-1] == pytest.approx(3600.0)
    assert replay["Voltage [V]"].max() > 4.2
    # a protocol that keeps its cut-offs dumps as before the field existed (corpus and study fingerprints)
    assert "voltage_cutoffs" not in Dynamic().model_dump() and Dynamic(voltage_cutoffs=False).model_dump()["voltage_cutoffs"] is False
