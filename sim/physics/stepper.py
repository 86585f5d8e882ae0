"""PhysicsStepper: one cell's physics model driven by a current decided as it goes.

:func:`sim.physics.simulate` runs a whole protocol at once: the protocol's cut-offs act on the
model's own voltage. A controller that decides the current from something else (a hybrid's
corrected voltage, see :mod:`hybrid.surrogate.closed_loop`) needs the model one stretch at a
time, with the freedom to go back: :meth:`PhysicsStepper.advance` solves from a
:class:`StepperState` over a few sample intervals, each holding its own current, and returns the
new state and the outputs at the sample times; the old state stays valid, so a stretch that
overshot a cut-off is solved again, shorter, from where it began.

It is the model a physics counterpart follows a measured current with (the current-trace
model of :mod:`sim.physics.simulate`, its knots as solver inputs, voltage limits off): the
physics is driven the same way in training and in use. Outputs are the columns of
:data:`sim.physics.summary.OUTPUT_VARIABLES`, evaluated by one CasADi function of the state
(PyBaMM's own post-processing costs ~9 ms a call, ten times the solve of a stretch).
"""

from __future__ import annotations

from dataclasses import dataclass

import casadi
import numpy as np
import pybamm

from sim.cells import CellSpec
from sim.errors import ConfigError
from sim.physics.fidelity import Fidelity
from sim.physics.simulate import (
    DEFAULT_CACHE,
    ModelCache,
    PreparedCell,
    _build,
    _cache_key,
    _model_protocol,
    prepare_cell,
)
from sim.physics.summary import OUTPUT_VARIABLES
from sim.physics.trace_inputs import CHUNK_KNOTS, trace_chunks
from sim.protocols import CompiledProtocol

# a held current becomes two knots per change; stretches longer than this are solved in parts
MAX_INTERVALS = (CHUNK_KNOTS - 1) // 2


@dataclass(frozen=True)
class StepperState:
    """Where the physics is: the solver state to continue from and its time [s]."""

    solution: pybamm.Solution
    time_s: float


class PhysicsStepper:
    """``cell``'s physics model (``fidelity``) under a current given sample interval by interval.

    Discharge current is positive. ``columns`` of :meth:`advance` carry PyBaMM names and SI
    units like a Trajectory's, plus "State of charge" from the charge throughput.
    """

    def __init__(self, cell: CellSpec, fidelity: Fidelity, cache: ModelCache | None = None):
        if cell.ocv_correction is not None:
            raise ConfigError("PhysicsStepper: cell.ocv_correction is set; allowed: null (the stepper's outputs "
                              "are the model's own; simulate() applies the correction to measured replays)")
        self.cell = cell
        self.prepared: PreparedCell = prepare_cell(cell, fidelity)
        compiled = CompiledProtocol(trace=(np.array([0.0, 1.0]), np.zeros(2)), trace_unit="A")
        key = _cache_key(cell, _model_protocol({}, compiled), fidelity, self.prepared) + (False,)
        self.simulation = (cache or DEFAULT_CACHE).get(
            key, lambda: _build(fidelity, self.prepared, compiled, voltage_cutoffs=False))
        self._outputs: _OutputFunction | None = None

    @property
    def capacity_Ah(self) -> float:
        return self.prepared.capacity_Ah

    def initial_state(self) -> StepperState:
        return StepperState(pybamm.EmptySolution(t=0.0), 0.0)

    def outputs_at(self, state: StepperState, current_A: float) -> dict[str, np.ndarray]:
        """The outputs (one row) at ``state`` with ``current_A`` flowing from that instant: a
        trajectory's row at a step boundary shows the new step's current, as PyBaMM's
        experiment output does (it keeps the value after the boundary)."""
        inputs = self.prepared.inputs | self._knot_inputs(state.time_s + np.array([0.0, 1.0]),
                                                          np.array([current_A, current_A]))
        if isinstance(state.solution, pybamm.EmptySolution):
            self.simulation.build()
            model = self.simulation.built_model
            y = model.concatenated_initial_conditions.evaluate(0.0, None, inputs=inputs)
        else:
            model, y = state.solution.all_models[-1], state.solution.all_ys[-1][:, -1:]
        columns = self._output_function(model, inputs)(np.array([state.time_s]), np.reshape(y, (-1, 1)), inputs)
        return self._with_time(columns, np.array([state.time_s]))

    def advance(self, state: StepperState, times_s: np.ndarray, current_A: np.ndarray,
                next_current_A: float | None = None) -> tuple[StepperState, dict[str, np.ndarray]]:
        """Solve from ``state`` to ``times_s[-1]``, interval k (ending at ``times_s[k]``) holding
        ``current_A[k]``; return the state at the end and the outputs at ``times_s``.

        A row shows the current that flows from its instant on, as a trajectory's rows do (the
        current-trace path and PyBaMM's experiment output): row k the current of interval k+1,
        the last row ``next_current_A`` (default: the last interval's, where the next is not
        decided yet; see :meth:`outputs_at`). Raises pybamm.SolverError where the model cannot
        follow (e.g. a particle emptied).
        """
        times_s, current_A = np.asarray(times_s, dtype=float), np.asarray(current_A, dtype=float)
        after = np.append(current_A[1:], current_A[-1] if next_current_A is None else next_current_A)
        parts = []
        for first in range(0, len(times_s), MAX_INTERVALS):
            part = slice(first, first + MAX_INTERVALS)
            state, columns = self._advance_part(state, times_s[part], current_A[part], float(after[part][-1]))
            parts.append(columns)
        return state, {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}

    def _advance_part(self, state: StepperState, times_s: np.ndarray, current_A: np.ndarray,
                      next_current_A: float) -> tuple[StepperState, dict[str, np.ndarray]]:
        relative = np.append(0.0, times_s - state.time_s)
        knot_times, knot_values = _held_knots(relative, current_A)
        knot_values[-1] = next_current_A  # reached in the last micro-ramp: the end row shows it
        # the model's clock runs on from the state's time (a step's t_eval counts from its start)
        inputs = self.prepared.inputs | self._knot_inputs(state.time_s + knot_times, knot_values)
        solution = self.simulation.step(relative[-1], t_eval=knot_times, t_interp=relative[1:],
                                        starting_solution=state.solution, inputs=inputs, save=False)
        # the solver also reports its stops (the knots): keep the columns at the sample times
        solved = solution.all_ts[-1]
        columns_at = np.abs(solved[None, :] - (state.time_s + relative[1:])[:, None]).argmin(axis=1)
        states = solution.all_ys[-1][:, columns_at]
        columns = self._output_function(solution.all_models[-1], inputs)(times_s, states, inputs)
        return StepperState(solution.last_state, float(times_s[-1])), self._with_time(columns, times_s)

    @staticmethod
    def _knot_inputs(knot_times: np.ndarray, knot_values: np.ndarray) -> dict[str, np.ndarray]:
        _, knot_inputs = next(trace_chunks(knot_times, knot_values, CHUNK_KNOTS))
        return knot_inputs

    def _output_function(self, model: pybamm.BaseModel, inputs: dict) -> _OutputFunction:
        if self._outputs is None:
            self._outputs = _OutputFunction(model, inputs)
        return self._outputs

    def _with_time(self, columns: dict[str, np.ndarray], times_s: np.ndarray) -> dict[str, np.ndarray]:
        columns["Time [s]"] = times_s
        columns["Ambient temperature [K]"] = np.full(len(times_s), self.cell.ambient_temperature_K)
        columns["State of charge"] = self.cell.initial_soc - columns["Discharge capacity [A.h]"] / self.capacity_Ah
        return columns


def _held_knots(relative: np.ndarray, current_A: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Knots of a linear interpolant holding ``current_A[k]`` over (relative[k], relative[k+1]],
    one pair per change of current (a constant stretch is two knots, whatever its length)."""
    changes = np.flatnonzero(np.diff(current_A) != 0.0) + 1
    starts = np.append(0, changes)
    ends = np.append(changes, len(current_A))
    ramp = 1e-6 * np.minimum(1.0, np.diff(relative)).min()
    knot_times = np.column_stack([relative[starts], relative[ends] - ramp]).reshape(-1)
    knot_times[-1] = relative[-1]
    return knot_times, np.repeat(current_A[starts], 2)


class _OutputFunction:
    """The output columns of a built model as one CasADi function of (time, state, inputs),
    mapped over the sample times."""

    def __init__(self, model: pybamm.BaseModel, inputs: dict[str, float | np.ndarray]):
        time = casadi.MX.sym("t")
        state = casadi.MX.sym("y", model.len_rhs_and_alg)
        symbols = {name: casadi.MX.sym(name, np.size(value)) for name, value in inputs.items()}
        self.names = [name for name in OUTPUT_VARIABLES if name in model.variables and name != "Time [s]"]
        expressions = [model.get_processed_variable(name).to_casadi(time, state, inputs=symbols)
                       for name in self.names]
        self.input_names = list(symbols)
        self.function = casadi.Function("outputs", [time, state, *symbols.values()],
                                        [casadi.vertcat(*expressions)])  # the knot lookup cannot expand to SX
        self._mapped: dict[int, casadi.Function] = {}

    def __call__(self, times: np.ndarray, states: np.ndarray, inputs: dict) -> dict[str, np.ndarray]:
        mapped = self._mapped.get(len(times)) or self._mapped.setdefault(len(times), self.function.map(len(times)))
        values = np.asarray(mapped(times[None, :], states, *(np.reshape(inputs[name], (-1, 1))
                                                             for name in self.input_names)))
        return {OUTPUT_VARIABLES[name]: values[row] for row, name in enumerate(self.names)}
