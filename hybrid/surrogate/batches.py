"""The two models of the hybrid, every design of a batch at once, for
:mod:`hybrid.surrogate.closed_loop`.

- :class:`ResidualBatch`: the run's residual model as its exported one-step CasADi function
  (:mod:`hybrid.export.casadi`, equal to the torch model to ~1e-8 V) mapped over the designs,
  one flat state per design for every model kind;
- :func:`physics_batch`: the physics as :class:`sim.physics.batched.BatchedStepper` (compiled,
  SPM) where the fidelity allows it, else :class:`SteppersInLockstep` (one IDAKLU
  :class:`sim.physics.stepper.PhysicsStepper` per design behind the same interface).

Both evaluate a subset of the batch on request, so designs whose interval is solved again cost
only themselves.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pybamm

from hybrid.data.columns import DESIGN_PREFIX, PHYSICS_SOC, PHYSICS_TEMPERATURE, PHYSICS_VOLTAGE, SOC_RESIDUAL, \
    TEMPERATURE, TEMPERATURE_RESIDUAL, TIME_STEP, VOLTAGE, VOLTAGE_RESIDUAL
from hybrid.export.casadi import NEXT_STATE, STATE, casadi_step
from hybrid.surrogate.metrics import PROTOCOL_VOLTAGE
from hybrid.train import TrainedModel
from sim.cells import CellSpec
from sim.corpus import PHYSICS_COLUMNS, WORKER_CACHE
from sim.errors import ConfigError
from sim.physics import Fidelity, ModelCache
from sim.physics.batched import BatchedStepper, BatchState, Mapped, StepScheme
from sim.physics.stepper import PhysicsStepper

log = logging.getLogger(__name__)

SOC = "State of charge"


class ResidualBatch:
    """The run's residual model over many designs: its one-step CasADi function mapped over
    them, states (designs, n). ``advance`` reads the physics rows and returns the corrected ones."""

    def __init__(self, trained: TrainedModel, designs: list[dict[str, float]]):
        self.function = casadi_step(trained)
        self.features = [name for name in self.function.name_in() if name != STATE]
        self.outputs = [name for name in self.function.name_out() if name != NEXT_STATE]
        self.count = len(designs)
        self._mapped: dict[int, Mapped] = {}
        self.design = {DESIGN_PREFIX + name: np.array([design.get(name, np.nan) for design in designs])
                       for name in {name for design in designs for name in design}}
        self.physics_name = {renamed: name for name, renamed in PHYSICS_COLUMNS.items()} | {PHYSICS_SOC: SOC}

    def initial_state(self) -> np.ndarray:
        return np.zeros((self.count, self.function.size1_in(STATE)))

    def advance(self, state: np.ndarray, physics: dict[str, np.ndarray], time_step_s: np.ndarray,
                designs: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """(next states, corrected columns) after one row of each of ``designs`` (indices; the
        states, rows and time steps are theirs)."""
        arguments = [self._feature(name, physics, time_step_s, designs) for name in self.features]
        if len(designs) not in self._mapped:
            self._mapped[len(designs)] = Mapped(self.function, len(designs), threads=1)
        *values, next_state = self._mapped[len(designs)](*(argument[:, None] for argument in arguments), state)
        outputs = {name: value[:, 0] for name, value in zip(self.outputs, values)}
        voltage = physics[VOLTAGE] + outputs[VOLTAGE_RESIDUAL]
        corrected = {VOLTAGE: voltage, PHYSICS_VOLTAGE: physics[VOLTAGE], PROTOCOL_VOLTAGE: voltage,
                     SOC: physics[SOC] + outputs[SOC_RESIDUAL] if SOC_RESIDUAL in outputs else physics[SOC]}
        if TEMPERATURE_RESIDUAL in outputs:
            corrected[TEMPERATURE] = physics[TEMPERATURE] + outputs[TEMPERATURE_RESIDUAL]
            corrected[PHYSICS_TEMPERATURE] = physics[TEMPERATURE]
        return next_state, corrected

    def _feature(self, name: str, physics: dict[str, np.ndarray], time_step_s: np.ndarray,
                 designs: np.ndarray) -> np.ndarray:
        if name == TIME_STEP:
            return time_step_s
        if name in self.design:
            return self.design[name][designs]
        return physics[self.physics_name.get(name, name)]  # Current, Ambient, Physics ... columns


class SteppersInLockstep:
    """The BatchedStepper interface over one PhysicsStepper (IDAKLU) per cell, for fidelities the
    compiled stepper cannot take (SPMe, DFN). A cell the solver cannot follow gives NaN rows."""

    def __init__(self, cells: list[CellSpec], fidelity: Fidelity, cache: ModelCache | None = None):
        self.steppers = [PhysicsStepper(cell, fidelity, cache or WORKER_CACHE) for cell in cells]
        self.capacity_Ah = np.array([stepper.capacity_Ah for stepper in self.steppers])
        self.windows = [stepper.prepared.window for stepper in self.steppers]

    def initial_state(self) -> list:
        return [stepper.initial_state() for stepper in self.steppers]

    def subset(self, state: list, cells: np.ndarray) -> list:
        return [state[cell] for cell in cells]

    def outputs_at(self, state: list, current_A: np.ndarray, cells: np.ndarray) -> dict[str, np.ndarray]:
        return _stack([self.steppers[cell].outputs_at(cell_state, current_A[cell])
                       for cell, cell_state in zip(cells, state)])

    def advance(self, state: list, dt_s: np.ndarray, current_A: np.ndarray, next_current_A: np.ndarray,
                cells: np.ndarray) -> tuple[list, dict[str, np.ndarray]]:
        """``state`` and the results: the cells ``cells`` only; the other arguments all cells."""
        new_state, rows = [], []
        for cell, cell_state in zip(cells, state):
            stepper, current = self.steppers[cell], current_A[cell]
            try:
                cell_state, row = stepper.advance(cell_state, np.array([cell_state.time_s + dt_s[cell]]),
                                                  np.array([current]), next_current_A[cell])
            except pybamm.SolverError:  # the design's run ends there: its rows are NaN
                row = {name: np.full(1, np.nan) for name in stepper.outputs_at(cell_state, current)}
            new_state.append(cell_state)
            rows.append(row)
        return new_state, _stack(rows)


def _stack(rows: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {name: np.concatenate([row[name] for row in rows]) for name in rows[0]}


def physics_batch(cells: list[CellSpec], fidelity: Fidelity, cache: ModelCache | None = None):
    """The compiled BatchedStepper where the fidelity allows it, else PhysicsSteppers in lockstep."""
    for scheme in (StepScheme(), StepScheme(jit=False)):
        try:
            return BatchedStepper(cells, fidelity, scheme)
        except ConfigError as error:
            log.info("BatchedStepper (%s): %s", "compiled" if scheme.jit else "interpreted", error)
    return SteppersInLockstep(cells, fidelity, cache)


def scatter(full: Any, cells: np.ndarray, part: Any) -> Any:
    """``full`` (physics states of either backend, or an array over designs) with the entries of
    ``cells`` replaced by ``part`` (theirs, in that order)."""
    if isinstance(full, BatchState):
        y, time_s = full.y.copy(), full.time_s.copy()
        y[cells], time_s[cells] = part.y, part.time_s
        return BatchState(y, time_s)
    if isinstance(full, np.ndarray):
        full = full.copy()
        full[cells] = part
        return full
    full = list(full)
    for cell, value in zip(cells, part):
        full[cell] = value
    return full
