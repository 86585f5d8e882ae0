"""BatchedStepper against PhysicsStepper (IDAKLU): rows, per-cell inputs, per-cell intervals."""

from pathlib import Path

import numpy as np
import pytest

from sim.cells.spec import CellSpec
from sim.config import load_config
from sim.corpus import CorpusSpec
from sim.errors import ConfigError
from sim.physics.batched import BatchedStepper
from sim.physics.stepper import PhysicsStepper

FIDELITY = load_config(Path(__file__).parents[3] / "configs" / "corpus" / "design.yaml", CorpusSpec).physics
THICK = {"negative_thickness_m": 100e-6, "positive_thickness_m": 85e-6, "negative_porosity": 0.3,
         "positive_porosity": 0.28}
THIN = {"negative_thickness_m": 60e-6, "positive_thickness_m": 55e-6, "negative_porosity": 0.2,
        "positive_porosity": 0.4}


def _protocols(capacity_Ah: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """(interval end times [s], held currents [A]) per cell: 1C discharge at 60 s intervals,
    2C pulses (10 s on, 40 s rest) at 1 s intervals, 1C charge at 60 s intervals."""
    discharge = np.arange(60.0, 3001.0, 60.0)
    pulses = np.arange(1.0, 201.0, 1.0)
    charge = np.arange(60.0, 2401.0, 60.0)
    return [(discharge, np.full(len(discharge), capacity_Ah[0])),
            (pulses, np.where((pulses - 1.0) % 50.0 < 10.0, 2.0 * capacity_Ah[1], 0.0)),
            (charge, np.full(len(charge), -capacity_Ah[2]))]


def test_rows_follow_idaklu_within_half_a_millivolt():
    cells = [CellSpec(initial_soc=1.0), CellSpec(design=THICK, initial_soc=0.8), CellSpec(design=THIN, initial_soc=0.2)]
    batch = BatchedStepper(cells, FIDELITY)
    protocols = _protocols(batch.capacity_Ah)
    longest = max(len(times) for times, _ in protocols)
    # interval k of every cell in one call; a cell whose protocol ended waits (dt 0)
    dt = np.zeros((longest, 3))
    current = np.zeros((longest + 1, 3))
    for cell, (times, held) in enumerate(protocols):
        dt[: len(times), cell] = np.diff(times, prepend=0.0)
        current[: len(times), cell] = held
        current[len(times):, cell] = held[-1]  # rows past the end keep the last current, as PhysicsStepper's
    state, rows = batch.initial_state(), [batch.outputs_at(batch.initial_state(), current[0])]
    for k in range(longest):
        state, columns = batch.advance(state, dt[k], current[k], next_current_A=current[k + 1])
        rows.append(columns)
    voltage = np.array([columns["Voltage [V]"] for columns in rows])  # (rows, cells)
    for cell, (times, held) in enumerate(protocols):
        stepper = PhysicsStepper(cells[cell], FIDELITY)
        first = stepper.outputs_at(stepper.initial_state(), held[0])
        _, reference = stepper.advance(stepper.initial_state(), times, held)
        expected = np.append(first["Voltage [V]"], reference["Voltage [V]"])
        error = np.abs(voltage[: len(times) + 1, cell] - expected).max()
        assert error < 5e-4, f"cell {cell}: {error * 1e3:.3f} mV from IDAKLU"  # measured 0.05-0.11 mV
    assert state.time_s == pytest.approx([times[-1] for times, _ in protocols])


def test_cells_advanced_together_equal_each_advanced_alone():
    cells = [CellSpec(design=THICK, initial_soc=0.9), CellSpec(design=THIN, initial_soc=0.5)]
    together = BatchedStepper(cells, FIDELITY)
    alone = [BatchedStepper([cell], FIDELITY) for cell in cells]
    state = together.initial_state()
    states = [stepper.initial_state() for stepper in alone]
    for current in ([5.0, -2.0], [0.0, 3.0], [4.0, 4.0]):
        state, columns = together.advance(state, [60.0, 10.0], current)
        for cell, stepper in enumerate(alone):
            states[cell], own = stepper.advance(states[cell], [60.0, 10.0][cell], current[cell])
            np.testing.assert_allclose(state.y[cell], states[cell].y[0], rtol=1e-12)
            assert columns["Voltage [V]"][cell] == pytest.approx(own["Voltage [V]"][0], abs=1e-12)
    assert abs(columns["Voltage [V]"][0] - columns["Voltage [V]"][1]) > 0.01  # different cells


def test_each_cell_keeps_its_own_interval():
    batch = BatchedStepper([CellSpec(design=THICK), CellSpec(design=THICK)], FIDELITY)
    start, _ = batch.advance(batch.initial_state(), 300.0, 5.0)
    once, _ = batch.advance(start, [60.0, 30.0], 5.0)
    halves, columns = batch.advance(once, [0.0, 30.0], 5.0)
    assert halves.time_s == pytest.approx([360.0, 360.0])
    np.testing.assert_array_equal(halves.y[0], once.y[0])  # dt 0: the cell stays where it is
    charge = columns["Discharge capacity [A.h]"]
    assert charge == pytest.approx([5.0 * 360.0 / 3600.0] * 2, rel=1e-12)  # exact for a held current
    assert abs(columns["Voltage [V]"][0] - columns["Voltage [V]"][1]) < 1e-4  # one 60 s interval ~ two 30 s


def test_cells_of_different_structure_are_refused():
    with pytest.raises(ConfigError, match="ambient temperature"):
        BatchedStepper([CellSpec(), CellSpec(ambient_temperature_K=273.15)], FIDELITY)
