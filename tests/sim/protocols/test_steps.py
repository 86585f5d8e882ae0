"""Protocol specs and their compilation into PyBaMM experiment blocks or a current trace."""

from __future__ import annotations

import numpy as np
import pybamm
import pytest
from pydantic import TypeAdapter, ValidationError

from sim.protocols.steps import (CC_DURATION_MARGIN, CV_MAX_DURATION_S, HPPC, AgeingCampaign, ConstantCurrent,
                                 ConstantVoltage, CurrentTrace, Cycling, Dynamic, Protocol, Rest, Sequence, VoltageWindow,
                                 compile_protocol, zero_order_hold)

WINDOW = VoltageWindow(lower=2.5, upper=4.2)


def _kinds(steps: list) -> list[str]:
    return [type(step).__name__ for step in steps]


def test_hppc_has_one_discharge_and_one_charge_pulse_per_level():
    hppc = HPPC(levels=3, pulse_c_rate=2.0, pulse_s=10.0, charge_pulse_c_rate=1.5)
    compiled = compile_protocol(hppc, WINDOW)
    assert compiled.tags == ["hppc"] and compiled.trace is None
    steps = compiled.blocks[0][1]
    assert len(steps) == 3 * 6  # pulse, rest, charge pulse, rest, SOC step, relaxation
    pulses = [step for step in steps if isinstance(step, pybamm.step.CRate) and step.duration == hppc.pulse_s]
    assert [step.value for step in pulses] == [2.0, -1.5] * 3
    assert all(step.period == hppc.fast_period_s for step in pulses)


def test_hppc_soc_step_discharges_soc_step_of_the_capacity():
    hppc = HPPC(levels=2, soc_step=0.2, step_c_rate=0.5)
    soc_steps = [step for step in compile_protocol(hppc, WINDOW).blocks[0][1]
                 if isinstance(step, pybamm.step.CRate) and step.value == 0.5]
    assert len(soc_steps) == 2
    assert all(step.value * step.duration / 3600.0 == pytest.approx(0.2) for step in soc_steps)


def test_hppc_without_charge_pulse_or_rests_has_three_fewer_steps_per_level():
    hppc = HPPC(levels=2, charge_pulse_c_rate=0.0, pulse_rest_s=0.0)
    assert _kinds(compile_protocol(hppc, WINDOW).blocks[0][1]) == ["CRate", "CRate", "Rest"] * 2


@pytest.mark.parametrize("c_rate", [0.5, 2.0, -1.0])
def test_cc_to_a_cut_off_is_bounded_at_the_margin_times_the_nominal_duration(c_rate):
    step = compile_protocol(ConstantCurrent(c_rate=c_rate, until_voltage_V=3.0), WINDOW).blocks[0][1][0]
    assert CC_DURATION_MARGIN == 1.5
    assert step.duration == pytest.approx(1.5 * 3600.0 / abs(c_rate))
    assert step.value == c_rate and step.termination[0].value == 3.0


def test_cc_with_a_duration_keeps_it_and_has_no_voltage_termination():
    step = compile_protocol(ConstantCurrent(c_rate=1.0, duration_s=120.0, period_s=5.0), WINDOW).blocks[0][1][0]
    assert step.duration == 120.0 and step.period == 5.0 and step.termination == []


@pytest.mark.parametrize("fields, message", [({"c_rate": 0.0, "duration_s": 1.0}, "non-zero"),
                                             ({"c_rate": 1.0}, "until_voltage_V or duration_s"),
                                             ({"c_rate": 11.0, "duration_s": 1.0}, "c_rate")])
def test_constant_current_rejects_a_step_without_current_or_end(fields, message):
    with pytest.raises(ValidationError, match=message):
        ConstantCurrent(**fields)


def test_cccv_cycling_is_discharge_rest_charge_hold_rest_in_the_window():
    compiled = compile_protocol(Cycling(cycles=3, discharge_c_rate=1.0, charge_c_rate=0.5), WINDOW)
    assert compiled.tags == ["cycle"] * 3
    steps = compiled.blocks[0][1]
    assert _kinds(steps) == ["CRate", "Rest", "CRate", "Voltage", "Rest"]
    assert steps[0].termination[0].value == WINDOW.lower and steps[2].termination[0].value == WINDOW.upper
    hold = steps[3]
    assert hold.value == WINDOW.upper and hold.duration == CV_MAX_DURATION_S
    assert hold.termination[0].value == pytest.approx(0.05)  # C/20 cut-off


def test_cycling_starting_with_charge_swaps_the_halves_and_own_limits_override_the_window():
    cycling = Cycling(start="charge", cv_cutoff_c_rate=None, rest_s=0.0, lower_voltage_V=3.0, upper_voltage_V=4.0)
    steps = compile_protocol(cycling, WINDOW).blocks[0][1]
    assert [step.value for step in steps] == [-0.5, 1.0]
    assert [step.termination[0].value for step in steps] == [4.0, 3.0]


def test_sequence_keeps_its_steps_in_order_in_one_block():
    sequence = Sequence(steps=[Rest(duration_s=60.0), ConstantCurrent(c_rate=-1.0, duration_s=30.0),
                               Rest(duration_s=10.0)])
    compiled = compile_protocol(sequence, WINDOW)
    assert compiled.tags == ["sequence"]
    assert [step.duration for step in compiled.blocks[0][1]] == [60.0, 30.0, 10.0]


def test_a_cv_step_of_a_sequence_holds_the_voltage_until_its_current_or_duration():
    sequence = Sequence(steps=[ConstantCurrent(c_rate=-0.5, until_voltage_V=4.2),
                               ConstantVoltage(voltage_V=4.2, until_c_rate=0.05), ConstantVoltage(voltage_V=4.1,
                                                                                                duration_s=600.0)])
    _, hold, timed = compile_protocol(sequence, WINDOW).blocks[0][1]
    assert _kinds([hold, timed]) == ["Voltage", "Voltage"]
    assert (hold.value, hold.duration, hold.termination[0].value) == (4.2, CV_MAX_DURATION_S, pytest.approx(0.05))
    assert (timed.value, timed.duration, timed.termination) == (4.1, 600.0, [])
    with pytest.raises(ValidationError, match="until_c_rate or duration_s"):
        ConstantVoltage(voltage_V=4.2)


def test_ageing_campaign_runs_diagnostics_first_every_k_cycles_and_last():
    campaign = AgeingCampaign(cycles=5, diagnostic_every=2, diagnostics=("capacity", "hppc"))
    tags = compile_protocol(campaign, WINDOW).tags
    diagnostics = ["capacity", "hppc"]
    assert tags == (diagnostics + ["cycle"] * 2 + diagnostics + ["cycle"] * 2 + diagnostics
                    + ["cycle"] + diagnostics)


def test_every_campaign_diagnostic_ends_with_a_full_recharge():
    campaign = AgeingCampaign(cycles=1, diagnostics=("capacity", "dynamic"), dynamic=Dynamic(duration_s=60.0))
    for tag, steps in compile_protocol(campaign, WINDOW).blocks:
        if tag != "cycle":
            assert _kinds(steps[-3:]) == ["CRate", "Voltage", "Rest"] and steps[-3].value < 0


def test_dynamic_is_a_trace_from_zero_scaled_to_the_peak_c_rate():
    compiled = compile_protocol(Dynamic(duration_s=300.0, peak_c_rate=2.5, seed=1), WINDOW)
    assert compiled.blocks == [] and compiled.trace_unit == "C"
    time_s, c_rate = compiled.trace
    assert time_s[0] == 0.0 and time_s[-1] == pytest.approx(300.0)
    assert c_rate.max() == pytest.approx(2.5)


def test_dynamic_from_a_current_csv_scales_the_largest_magnitude_to_the_peak(tmp_path):
    path = tmp_path / "current.csv"
    path.write_text("time_s,current_A\n10,1.0\n11,-4.0\n12,2.0\n")
    time_s, c_rate = Dynamic(current_csv=path, peak_c_rate=2.0).current_c_rate()
    np.testing.assert_allclose(time_s, [0.0, 1.0, 2.0])
    np.testing.assert_allclose(c_rate, [0.5, -2.0, 1.0])


def test_dynamic_refuses_two_sources(tmp_path):
    with pytest.raises(ValidationError, match="not both"):
        Dynamic(speed_csv=tmp_path / "a.csv", current_csv=tmp_path / "b.csv")


def test_zero_order_hold_keeps_the_current_constant_between_samples():
    time_s = np.array([0.0, 10.0, 20.0, 30.0])
    current = np.array([1.0, -2.0, 3.0, 5.0])
    knots_t, knots_i = zero_order_hold(time_s, current)
    assert np.all(np.diff(knots_t) > 0)
    inside = np.array([0.0, 5.0, 9.99, 10.0, 15.0, 19.99, 20.0, 29.99])
    np.testing.assert_array_equal(np.interp(inside, knots_t, knots_i), [1, 1, 1, -2, -2, -2, 3, 3])
    assert knots_t[-1] == 30.0 and knots_i[-1] == 3.0  # the last sample does not start an interval


def test_zero_order_hold_with_a_charge_counter_holds_the_interval_mean():
    time_s = np.array([0.0, 3600.0, 7200.0])
    discharge_Ah = np.array([0.0, 1.5, 1.0])  # 1.5 A for an hour, then -0.5 A for an hour
    knots_t, knots_i = zero_order_hold(time_s, np.array([9.0, 9.0, 9.0]), discharge_Ah)
    np.testing.assert_allclose(np.interp([1800.0, 5400.0], knots_t, knots_i), [1.5, -0.5])
    charge_Ah = np.trapezoid(knots_i, knots_t) / 3600.0
    assert charge_Ah == pytest.approx(discharge_Ah[-1], abs=1e-8)


def test_a_current_trace_compiles_to_an_ampere_trace_and_describes_itself_by_digest():
    trace = CurrentTrace(np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0]))
    compiled = compile_protocol(trace, WINDOW)
    assert compiled.trace_unit == "A" and compiled.trace_tag == "trace"
    description = trace.describe()
    assert description["samples"] == 3 and description["duration_s"] == 2.0
    same = CurrentTrace(np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0]))
    other = CurrentTrace(np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.5]))
    assert same.describe()["sha1"] == description["sha1"] != other.describe()["sha1"]


def test_a_protocol_kind_is_chosen_by_its_kind_field():
    adapter = TypeAdapter(Protocol)
    assert isinstance(adapter.validate_python({"kind": "hppc", "levels": 2}), HPPC)
    with pytest.raises(ValidationError, match="teleport"):
        adapter.validate_python({"kind": "teleport"})
