"""The hybrid in the loop, checked with residuals whose answer is known: a plant that reads a
constant offset above the physics model, and a residual model that knows it."""

import numpy as np
import pytest
import torch

from hybrid.data import CURRENT, PHYSICS_VOLTAGE, VOLTAGE_RESIDUAL
from hybrid.models import ResidualRNN, ResidualRNNConfig
from hybrid.surrogate.closed_loop import closed_loop_columns
from hybrid.surrogate.control import control_steps
from hybrid.surrogate.metrics import MetricOptions, trajectory_metrics
from hybrid.train import TrainedModel
from sim.cells import CellSpec
from sim.physics import Fidelity, simulate
from sim.protocols import HPPC, ConstantCurrent, ConstantVoltage, Cycling, FastCharge, Rest, Sequence, compile_protocol
from sim.protocols.steps import VoltageWindow

PERIOD_S = 10.0


def constant_hybrid(offset_V: float) -> TrainedModel:
    """A GRU residual whose weights are zero and whose head says 1: with target_std = offset,
    the residual is the offset at every row."""
    model = ResidualRNN(ResidualRNNConfig(input_size=2, output_size=1, hidden_size=2, layers=1))
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.zero_()
        model.head.bias.fill_(1.0)
    normalisation = {"family": "hybrid", "features": [CURRENT, PHYSICS_VOLTAGE], "feature_mean": [0.0, 0.0],
                     "feature_std": [1.0, 1.0], "targets": [VOLTAGE_RESIDUAL], "target_mean": [0.0],
                     "target_std": [offset_V]}
    return TrainedModel("constant", model.eval(), normalisation, {}, [], 0)


def run(cell, protocol, offset_V):
    return closed_loop_columns(cell, protocol, Fidelity(), constant_hybrid(offset_V), {})


CASES = [(c_rate, offset) for c_rate in (0.5, 1.0, 2.0) for offset in (0.03, -0.03)]


def test_the_surrogate_stops_where_the_plant_stops_and_the_physics_does_not():
    """Discharges to 3.3 V and charges to 4.1 V; the plant reads ``offset`` above the physics,
    so it reaches a cut-off where the physics reaches the cut-off minus the offset."""
    surrogate_hits = physics_hits = 0
    for c_rate, offset in CASES:
        for start_soc, signed, cutoff in ((0.9, c_rate, 3.3), (0.2, -c_rate, 4.1)):
            cell = CellSpec(initial_soc=start_soc)
            plant = simulate(cell, ConstantCurrent(c_rate=signed, until_voltage_V=cutoff - offset,
                                                   period_s=PERIOD_S), Fidelity(), raise_on_failure=True)
            physics = simulate(cell, ConstantCurrent(c_rate=signed, until_voltage_V=cutoff, period_s=PERIOD_S),
                               Fidelity(), raise_on_failure=True)
            loop = run(cell, ConstantCurrent(c_rate=signed, until_voltage_V=cutoff, period_s=PERIOD_S), offset)
            stop = {name: columns["Time [s]"][-1] for name, columns in
                    (("plant", plant.columns), ("physics", physics.columns), ("loop", loop["columns"]))}
            surrogate_hits += abs(stop["loop"] - stop["plant"]) <= PERIOD_S
            physics_hits += abs(stop["physics"] - stop["plant"]) <= PERIOD_S
            assert loop["status"] == "ok"
            assert loop["columns"]["Voltage [V]"][-1] == pytest.approx(cutoff, abs=2e-3)
    assert surrogate_hits == 2 * len(CASES)
    assert physics_hits == 0


def test_a_cv_hold_holds_the_corrected_voltage_and_ends_on_its_current():
    cell = CellSpec(initial_soc=0.3)
    protocol = Cycling(cycles=1, start="charge", charge_c_rate=1.0, cv_cutoff_c_rate=0.05, rest_s=60.0,
                       period_s=30.0)
    loop = run(cell, protocol, offset_V=0.03)
    columns, capacity = loop["columns"], loop["capacity_Ah"]
    assert loop["status"] == "ok"
    charging = columns["Current [A]"] < 0
    hold = charging & (np.abs(columns["Current [A]"]) < 0.98 * capacity)  # below the CC current: the CV part
    assert hold.sum() > 10
    np.testing.assert_allclose(columns["Voltage [V]"][hold], 4.2, atol=1e-3)
    np.testing.assert_allclose(columns["Physics voltage [V]"][hold], 4.2 - 0.03, atol=1e-3)
    assert columns["Voltage [V]"][charging].max() < 4.2 + 1e-3
    # it ended on its cut-off current (the row at its end instant shows the rest's zero current)
    assert abs(columns["Current [A]"][np.flatnonzero(hold)[-1]]) == pytest.approx(0.05 * capacity, rel=0.05)


def test_a_step_already_past_its_cut_off_is_skipped_and_the_window_stops_the_protocol():
    cell = CellSpec(initial_soc=1.0)
    # the HPPC's charge pulse at full charge: the corrected voltage is above 4.2 V at its first instant
    loop = run(cell, HPPC(levels=1, relax_s=60.0), offset_V=0.02)
    assert loop["status"] == "ok"
    assert loop["columns"]["Current [A]"].min() == 0.0  # no charge current ever flowed
    # a residual that puts the cell 0.3 V above the window: a cycler's safety limit ends the test
    stopped = run(CellSpec(initial_soc=0.9), Rest(duration_s=600.0), offset_V=0.3)
    assert stopped["status"] == "truncated"
    assert "left the window" in stopped["message"]


def test_control_steps_read_the_compiled_protocol_in_amperes():
    protocol = Cycling(cycles=1, discharge_c_rate=2.0, charge_c_rate=0.5, cv_cutoff_c_rate=0.05, rest_s=0.0)
    steps = control_steps(compile_protocol(protocol, VoltageWindow(2.5, 4.2)), capacity_Ah=5.0)
    assert [(step.mode, step.value, step.cutoff_V, step.cutoff_A) for step in steps] == [
        ("current", 10.0, 2.5, None), ("current", -2.5, 4.2, None), ("voltage", 4.2, None, 0.25)]


def test_a_cv_step_of_a_sequence_is_the_cycling_hold():
    sequence = Sequence(steps=[ConstantCurrent(c_rate=-0.5, until_voltage_V=4.2),
                               ConstantVoltage(voltage_V=4.2, until_c_rate=0.05)])
    steps = control_steps(compile_protocol(sequence, VoltageWindow(2.5, 4.2)), capacity_Ah=5.0)
    assert [(step.mode, step.value, step.cutoff_V, step.cutoff_A) for step in steps] == [
        ("current", -2.5, 4.2, None), ("voltage", 4.2, None, 0.25)]


def test_a_fast_charge_between_reference_tests_scores_the_fast_charge_and_full_capacities():
    protocol = FastCharge(c_rates=[1.0], cycles=1, rest_s=60.0, reference_tests=True)
    loop = run(CellSpec(initial_soc=0.5), protocol, offset_V=0.01)
    assert loop["status"] == "ok"
    metrics = trajectory_metrics(loop["columns"], capacity_Ah=loop["capacity_Ah"], window_V=(2.5, 4.2),
                                 options=MetricOptions(charge_index=1))
    # 1C for at most 48 min (80 %), unless the limit comes first; the charge is the current's integral
    assert 40.0 < metrics["charge_time_min"] <= 48.0
    assert metrics["charged_soc"] == pytest.approx(metrics["charge_time_min"] / 60.0, rel=0.01)
    reference = trajectory_metrics(loop["columns"], capacity_Ah=loop["capacity_Ah"], window_V=(2.5, 4.2))
    assert reference["charge_time_min"] > 120.0  # the first charge is the reference test's, C/2 and a CV hold
    assert 99.0 < metrics["capacity_retention_pct"] <= 100.5  # two full capacities of a cell that hardly ages


def test_a_fidelity_the_compiled_stepper_cannot_take_runs_on_idaklu_steppers_the_same_way():
    cell, offset, fidelity = CellSpec(initial_soc=0.9), 0.03, Fidelity(model="spme")
    protocol = ConstantCurrent(c_rate=1.0, until_voltage_V=3.4, period_s=PERIOD_S)
    plant = simulate(cell, ConstantCurrent(c_rate=1.0, until_voltage_V=3.4 - offset, period_s=PERIOD_S), fidelity,
                     raise_on_failure=True)
    loop = closed_loop_columns(cell, protocol, fidelity, constant_hybrid(offset), {})
    assert loop["status"] == "ok"
    assert abs(loop["columns"]["Time [s]"][-1] - plant.columns["Time [s]"][-1]) <= PERIOD_S
    assert loop["columns"]["Voltage [V]"][-1] == pytest.approx(3.4, abs=1e-3)


def test_a_step_ends_where_the_physics_leaves_its_range_before_the_corrected_cut_off():
    """The plant reads 0.8 V below the physics: its 4.2 V charge cut-off lies where the physics
    voltage is 5.0 V, far beyond the 4.2 + 0.3 V the residual was trained on. The charge ends
    where the physics voltage reaches 4.5 V (not "truncated"), and the protocol goes on to its rest."""
    protocol = Sequence.model_validate({"steps": [{"kind": "cc", "c_rate": -1.0, "until_voltage_V": 4.2},
                                                  {"kind": "rest", "duration_s": 600.0}], "period_s": 60.0})
    loop = run(CellSpec(initial_soc=0.85), protocol, offset_V=-0.8)
    assert loop["status"] == "ok" and "left its range before the cut-off" in loop["message"]
    columns = loop["columns"]
    charging = columns[CURRENT] < 0
    end = columns["Time [s]"][charging][-1]
    assert columns["Time [s]"][-1] == pytest.approx(end + 600.0, abs=61.0)  # the rest ran
    physics_at_end = columns["Voltage [V]"][charging][-1] + 0.8
    assert 4.45 < physics_at_end <= 4.5 + 1e-9  # the last instant inside the trained range
