import numpy as np
import pytest

from sim.cells.spec import CellSpec
from sim.physics.fidelity import Fidelity
from sim.physics.simulate import simulate
from sim.physics.stepper import PhysicsStepper
from sim.protocols.steps import CurrentTrace

TIMES = np.arange(10.0, 1201.0, 10.0)
CURRENT = np.where(TIMES <= 600.0, 5.0, np.where(TIMES <= 900.0, 0.0, -2.5))  # interval k ends at TIMES[k]


@pytest.fixture(scope="module")
def replay():
    """The same held current through the current-trace path of simulate()."""
    trace = CurrentTrace(np.append(0.0, TIMES), np.append(CURRENT, CURRENT[-1]))
    return simulate(CellSpec(), trace, Fidelity(), voltage_cutoffs=False, raise_on_failure=True).columns


def test_stretches_follow_the_current_trace_path_row_for_row(replay):
    stepper = PhysicsStepper(CellSpec(), Fidelity())
    state, rows = stepper.initial_state(), []
    for first in range(0, len(TIMES), 25):  # stretches that do not line up with the current changes
        after = CURRENT[first + 25] if first + 25 < len(TIMES) else None
        state, columns = stepper.advance(state, TIMES[first: first + 25], CURRENT[first: first + 25], after)
        rows.append(columns)
    for name in ("Voltage [V]", "Current [A]", "Discharge capacity [A.h]", "Cell temperature [K]"):
        values = np.concatenate([columns[name] for columns in rows])
        np.testing.assert_allclose(values, replay[name][1:], atol=2e-4, err_msg=name)  # solver tolerance


def test_a_row_shows_the_current_that_flows_from_its_instant_on(replay):
    stepper = PhysicsStepper(CellSpec(), Fidelity())
    state, loaded = stepper.advance(stepper.initial_state(), TIMES[:60], CURRENT[:60])  # next not decided
    assert loaded["Current [A]"][-1] == CURRENT[59]
    boundary = stepper.outputs_at(state, CURRENT[60])  # the same instant, the next current decided
    assert boundary["Voltage [V]"][0] == pytest.approx(replay["Voltage [V]"][60], abs=2e-4)
    assert abs(loaded["Voltage [V]"][-1] - boundary["Voltage [V]"][0]) > 0.02  # 5 A off: the ohmic jump
    first = stepper.outputs_at(stepper.initial_state(), CURRENT[0])
    assert first["Voltage [V]"][0] == pytest.approx(replay["Voltage [V]"][0], abs=1e-9)


def test_a_state_can_be_advanced_again_differently():
    stepper = PhysicsStepper(CellSpec(), Fidelity())
    start, _ = stepper.advance(stepper.initial_state(), TIMES[:30], CURRENT[:30])
    _, first = stepper.advance(start, TIMES[30:40], np.full(10, 5.0))
    _, other = stepper.advance(start, TIMES[30:40], np.full(10, 1.0))
    _, repeat = stepper.advance(start, TIMES[30:40], np.full(10, 5.0))
    np.testing.assert_array_equal(first["Voltage [V]"], repeat["Voltage [V]"])
    assert np.all(other["Voltage [V]"] > first["Voltage [V]"])  # less discharge current, higher voltage
    assert first["State of charge"][-1] < other["State of charge"][-1]
