"""BatchedStepper: many cells' physics advanced together, one compiled call per sample interval.

:class:`sim.physics.stepper.PhysicsStepper` advances one cell with PyBaMM's IDAKLU solver and
pays ~1-2 ms of PyBaMM overhead every sample interval, whatever the batch size: a design
protocol of ~2000 intervals costs ~1 s a design. Here the cells of a batch share one built
model and advance over one interval each in a single call of a compiled CasADi function:

- the discretised model's right-hand side is one CasADi function f(y, p, I), the held current
  an explicit input (not the knot interpolant of the current-trace model), every cell's
  parameters, electrode thicknesses and particle radii included, in p (the geometry through
  PyBaMM's symbolic submeshes, so cells of different designs share one structure);
- an interval is a few equal substeps of a stiffly accurate, L-stable SDIRK scheme whose
  Newton solves use the Jacobian at the substep's start, written out symbolically (sparse QR
  of a 44 x 44 system for SPM), compiled to C and mapped over the cells.

Accuracy, SPM + lumped thermal + SEI (configs/corpus/design.yaml), "sdirk3", 2 substeps,
1 Newton iteration: within ~0.05 mV of IDAKLU at 1C with 60 s intervals and ~0.1 mV on 1 s
pulse trains; within 0.04 mV of a tight CVODES solution at the end of a deep 1C discharge, where
IDAKLU itself (rtol 1e-4) is 0.8 mV off. A 60 s interval as one substep is not enough (1-3 mV:
the particle surface's transient after a change of current). Cost ~10 us a design-interval at
256 cells, including the output columns; see experiments/bench_batched_physics.py.

The fixed-step scheme has no error control: it is checked, not guaranteed. Models whose
right-hand side expands to scalar CasADi operations only: SPM (with OKane2022's spline OCP,
SPMe's right-hand side reads the OCP and does not expand; a DFN has algebraic equations).
"""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from dataclasses import dataclass
from typing import Literal

import casadi
import numpy as np
import pybamm

from sim.cells import GEOMETRIC_PARAMETERS, CellSpec, scaled_parameter
from sim.errors import ConfigError
from sim.physics.fidelity import Fidelity, build_model
from sim.physics.simulate import ModelCache, PreparedCell, prepare_cell
from sim.physics.summary import OUTPUT_VARIABLES

CURRENT_INPUT = "Current [A]"
# the submeshes that carry a geometric parameter as their length
GEOMETRY_DOMAINS = ("negative electrode", "separator", "positive electrode", "negative particle",
                    "positive particle")
# stiffly accurate, L-stable SDIRK tableaux (rows of A; the last row is b)
_G2 = 1.0 - 1.0 / np.sqrt(2.0)
_G3 = 0.435866521508459  # Alexander (1977), order 3
TABLEAUX = {
    "sdirk2": ((_G2,), (1.0 - _G2, _G2)),
    "sdirk3": ((_G3,), ((1.0 - _G3) / 2.0, _G3),
               (-(6 * _G3**2 - 16 * _G3 + 1) / 4.0, (6 * _G3**2 - 20 * _G3 + 5) / 4.0, _G3)),
}
COMPILED = ModelCache(max_size=4)  # compiled step functions by structure and scheme (~4 s to compile)


@dataclass(frozen=True)
class StepScheme:
    """How one sample interval is integrated.

    method: "sdirk2" / "sdirk3" (fixed substeps, see the module docstring) or "cvodes"
        (CasADi's adaptive SUNDIALS integrator, rtol 1e-6; ~30x slower, for comparison).
    substeps: equal substeps per interval (SDIRK).
    newton_iterations: per stage (SDIRK); 1 makes the scheme linearly implicit.
    jit: compile the SDIRK step to C (a C compiler on the path, ~4 s once per structure;
        ~5x faster than CasADi's interpreter). CVODES cannot be compiled.
    """

    method: Literal["sdirk2", "sdirk3", "cvodes"] = "sdirk3"
    substeps: int = 2
    newton_iterations: int = 1
    jit: bool = True

    def __post_init__(self):
        if self.method not in (*TABLEAUX, "cvodes"):
            raise ConfigError(f"StepScheme.method: '{self.method}' unknown; allowed: {', '.join(TABLEAUX)}, cvodes")
        if self.substeps < 1 or self.newton_iterations < 1:
            raise ConfigError(f"StepScheme: substeps ({self.substeps}) and newton_iterations "
                              f"({self.newton_iterations}) must be >= 1")
        if self.method == "cvodes" and self.jit:
            raise ConfigError("StepScheme: method 'cvodes' cannot be compiled; pass jit=False")


@dataclass(frozen=True)
class BatchState:
    """Where every cell is: model states (cells, states) and times [s] (cells,)."""

    y: np.ndarray
    time_s: np.ndarray


@dataclass(frozen=True)
class _Functions:
    """The compiled functions of one structure: the state at t = 0 from the inputs, the row at
    a state, and one interval's step with the row at its end."""

    initial: casadi.Function    # (p) -> y0
    row: casadi.Function        # (y, I, p) -> outputs
    step: casadi.Function       # (y0, dt, I, I_next, p) -> (y1, outputs at y1 with I_next)
    output_names: list[str]


class BatchedStepper:
    """``cells`` (one parameter set and ambient temperature; any design, overrides, scales)
    under ``fidelity``, advanced together one sample interval at a time.

    Discharge current is positive. Columns carry PyBaMM names and SI units like
    :class:`sim.physics.stepper.PhysicsStepper`'s, one value per cell. ``threads`` > 1 evaluates
    the cells in parallel (CasADi's thread map). Nothing stops a fixed-step cell driven past the
    model's range (a particle's surface stoichiometry outside 0..1, where PhysicsStepper raises):
    its rows go on, meaningless, and the other cells are unaffected; CVODES raises RuntimeError.
    """

    def __init__(self, cells: list[CellSpec], fidelity: Fidelity, scheme: StepScheme = StepScheme(),
                 threads: int = 1):
        if not cells:
            raise ConfigError("BatchedStepper: cells is empty; give at least one CellSpec")
        if fidelity.model != "spm":  # the fixed-step scheme is checked on SPM only: SPMe's electrolyte is stiffer
            raise ConfigError(f"BatchedStepper: fidelity model '{fidelity.model}'; allowed: spm (the fixed-step "
                              "scheme is validated on SPM; SPMe with Chen2020 expands but diverges at 10 s steps)")
        _check_shared_structure(cells)
        if any(cell.ocv_correction is not None for cell in cells):
            raise ConfigError("BatchedStepper: cell.ocv_correction is set; allowed: null (the stepper's outputs "
                              "are the model's own; simulate() applies the correction to measured replays)")
        self.cells, self.scheme, self.threads = list(cells), scheme, threads
        self.prepared = [prepare_cell(cell, fidelity) for cell in cells]
        self.input_names = _input_names(self.prepared)
        # (cells, inputs)
        self.inputs = np.array([_input_values(prepared, self.input_names) for prepared in self.prepared])
        key = (fidelity.model_dump_json(), cells[0].parameter_set, str(cells[0].bpx),
               cells[0].ambient_temperature_K, tuple(self.input_names), scheme)
        self.functions: _Functions = COMPILED.get(
            key, lambda: _compile(fidelity, self.prepared[0], self.input_names, scheme))
        self.capacity_Ah = np.array([prepared.capacity_Ah for prepared in self.prepared])
        self._initial_soc = np.array([cell.initial_soc for cell in cells])
        self._ambient_K = np.array([cell.ambient_temperature_K for cell in cells])
        self._mapped: dict[tuple[str, int], Mapped] = {}

    @property
    def windows(self) -> list:
        """Each cell's voltage window (:class:`sim.protocols.VoltageWindow`)."""
        return [prepared.window for prepared in self.prepared]

    def initial_state(self) -> BatchState:
        y0, = self._map("initial")(self.inputs)
        return BatchState(y0, np.zeros(len(self.cells)))

    def outputs_at(self, state: BatchState, current_A: np.ndarray | float,
                   cells: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """The row of every cell at ``state`` with ``current_A`` flowing from that instant on
        (a trajectory's row at a step boundary shows the new step's current). ``cells``: only
        these (indices; ``state`` and the result then hold just them, ``current_A`` all cells)."""
        rows = slice(None) if cells is None else np.asarray(cells)
        values, = self._map("row", rows)(state.y, self._per_cell(current_A, "current_A")[rows], self.inputs[rows])
        return self._columns(values, state.time_s, rows)

    def advance(self, state: BatchState, dt_s: np.ndarray | float, current_A: np.ndarray | float,
                next_current_A: np.ndarray | float | None = None, cells: np.ndarray | None = None,
                ) -> tuple[BatchState, dict[str, np.ndarray]]:
        """Advance cell i by ``dt_s[i]`` [s] holding ``current_A[i]`` [A]; return the new state
        and the rows at the intervals' ends, which show ``next_current_A`` (default: the
        interval's own current, the next not decided yet). ``dt_s`` 0 leaves a cell where it
        is (a design whose protocol ended waits for the others). ``state`` stays valid.
        ``cells``: advance only these (indices): ``state`` and the results hold just them, the
        per-cell arguments all cells (a few cells solved again cost a few cells, not the batch)."""
        rows = slice(None) if cells is None else np.asarray(cells)
        dt_s = self._per_cell(dt_s, "dt_s")[rows]
        invalid = ~(np.isfinite(dt_s) & (dt_s >= 0.0))
        if invalid.any():
            raise ValueError(f"dt_s: sample intervals must be finite and >= 0; got {dt_s[invalid][:3]}")
        current_A = self._per_cell(current_A, "current_A")[rows]
        after = current_A if next_current_A is None else self._per_cell(next_current_A, "next_current_A")[rows]
        y, values = self._map("step", rows)(state.y, dt_s, current_A, after, self.inputs[rows])
        new = BatchState(y, state.time_s + dt_s)
        return new, self._columns(values, new.time_s, rows)

    def subset(self, state: BatchState, cells: np.ndarray) -> BatchState:
        """The state of ``cells`` only (indices), for ``advance(..., cells=cells)``."""
        return BatchState(state.y[cells], state.time_s[cells])

    def _per_cell(self, values: np.ndarray | float, name: str) -> np.ndarray:
        values = np.asarray(values, dtype=float)
        if values.ndim > 1 or values.size not in (1, len(self.cells)):
            raise ValueError(f"{name}: expected one value per cell ({len(self.cells)}), got shape {values.shape}")
        return np.broadcast_to(values, (len(self.cells),))

    def _map(self, name: str, rows: slice | np.ndarray = slice(None)) -> Mapped:
        count = len(self.cells) if isinstance(rows, slice) else len(rows)
        if (name, count) not in self._mapped:
            self._mapped[name, count] = Mapped(getattr(self.functions, name), count, self.threads)
        return self._mapped[name, count]

    def _columns(self, values: np.ndarray, time_s: np.ndarray, rows: slice | np.ndarray = slice(None),
                 ) -> dict[str, np.ndarray]:
        """Named columns of the outputs ``values`` (cells, outputs) of the cells ``rows``."""
        columns = {OUTPUT_VARIABLES[name]: values[:, row] for row, name in enumerate(self.functions.output_names)}
        columns["Time [s]"] = time_s
        columns["Ambient temperature [K]"] = self._ambient_K[rows]
        columns["State of charge"] = (self._initial_soc[rows]
                                      - columns["Discharge capacity [A.h]"] / self.capacity_Ah[rows])
        return columns


class Mapped:
    """A function mapped over the cells, called on numpy arrays without copies: argument and
    result k are (cells, size k) C-ordered arrays, the memory layout of CasADi's (size k, cells)
    (CasADi's own numpy conversion costs ~50 ns a number, more than the step at 256 cells)."""

    def __init__(self, function: casadi.Function, cells: int, threads: int):
        mapped = function.map(cells, "thread", threads) if threads > 1 else function.map(cells, "serial")
        self.buffer, self.evaluate = mapped.buffer()
        self.shapes = [(cells, function.size1_out(index)) for index in range(function.n_out())]

    def __call__(self, *arguments: np.ndarray) -> list[np.ndarray]:
        arguments = [np.ascontiguousarray(argument, dtype=float) for argument in arguments]  # alive until evaluated
        results = [np.empty(shape) for shape in self.shapes]
        for index, argument in enumerate(arguments):
            self.buffer.set_arg(index, memoryview(argument))
        for index, result in enumerate(results):
            self.buffer.set_res(index, memoryview(result))
        self.evaluate()
        return results


def _check_shared_structure(cells: list[CellSpec]) -> None:
    """Raise ConfigError unless the cells share what the built model holds as numbers."""
    first = cells[0]
    for number, cell in enumerate(cells):
        if (cell.parameter_set, cell.bpx, cell.ambient_temperature_K) != (
                first.parameter_set, first.bpx, first.ambient_temperature_K):
            raise ConfigError(f"cells[{number}]: a batch shares one parameter set and ambient temperature; got "
                              f"{cell.parameter_set} at {cell.ambient_temperature_K} K, cells[0] has "
                              f"{first.parameter_set} at {first.ambient_temperature_K} K")


def _input_names(prepared: list[PreparedCell]) -> list[str]:
    """Every solver input any cell has, plus the geometry: one input vector serves them all."""
    names = set(GEOMETRIC_PARAMETERS)
    for cell in prepared:
        names.update(cell.inputs)
    return sorted(names)


def _input_values(prepared: PreparedCell, names: list[str]) -> np.ndarray:
    """``prepared``'s value of every input: its own inputs, 1 for a scale it does not have, its
    parameter set's value for the rest (which must then be a number, not a function)."""
    scale_inputs = set(prepared.scales.values())
    values = []
    for name in names:
        if name in prepared.inputs:
            values.append(prepared.inputs[name])
        elif name.endswith(" scale") and name not in scale_inputs:
            values.append(1.0)
        elif isinstance(prepared.unscaled[name], (int, float)):
            values.append(float(prepared.unscaled[name]))
        else:
            raise ConfigError(f"'{name}': some cells of the batch override it with a number, others keep the "
                              "parameter set's function; batch them separately")
    return np.array(values)


def _compile(fidelity: Fidelity, prepared: PreparedCell, input_names: list[str], scheme: StepScheme) -> _Functions:
    model = _built_model(fidelity, prepared, input_names)
    rhs, outputs, initial, output_names = _model_functions(model, input_names)
    interval = _cvodes_interval(rhs) if scheme.method == "cvodes" else _sdirk_interval(rhs, scheme)
    y, dt = casadi.MX.sym("y", model.len_rhs), casadi.MX.sym("dt")
    current, next_current = casadi.MX.sym("I"), casadi.MX.sym("I_next")
    parameters = casadi.MX.sym("p", len(input_names))
    y1 = interval(y, dt, current, parameters)
    options = {"jit": True, "compiler": "shell", "jit_name": "hybat_step", "jit_cleanup": False,
               "jit_options": {"flags": ["-O2"], "verbose": False, "directory": _jit_directory(), "cleanup": False}} \
        if scheme.jit else {}
    try:
        step = casadi.Function("step", [y, dt, current, next_current, parameters],
                               [y1, outputs(y1, parameters, next_current)], options)
        row = casadi.Function("row", [y, current, parameters], [outputs(y, parameters, current)], options)
    except RuntimeError as error:
        raise ConfigError(f"StepScheme(jit=True): compiling the step failed ({str(error).splitlines()[0]}); "
                          "install a C compiler or pass jit=False (~5x slower)") from None
    return _Functions(initial, row, step, output_names)


@functools.cache
def _jit_directory() -> str:
    """One temporary directory per process for the compiled steps' C sources and libraries
    (CasADi writes them to the working directory otherwise), removed at exit, with them."""
    directory = tempfile.mkdtemp(prefix="hybat_jit_")
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    return directory


def _built_model(fidelity: Fidelity, prepared: PreparedCell, input_names: list[str]) -> pybamm.BaseModel:
    """The discretised model with ``input_names`` and the current as inputs; the geometry's
    submeshes are symbolic so that thicknesses and radii can be inputs too."""
    values = prepared.unscaled.copy()
    scales = {name: name.removesuffix(" scale") for name in input_names if name not in values}
    values.update({name: pybamm.InputParameter(name) for name in input_names if name not in scales})
    values.update({parameter: scaled_parameter(values[parameter], pybamm.InputParameter(scale))
                   for scale, parameter in scales.items()})
    values["Current function [A]"] = pybamm.InputParameter(CURRENT_INPUT)
    model = build_model(fidelity)
    submeshes = dict(model.default_submesh_types)
    submeshes.update({domain: pybamm.SymbolicUniform1DSubMesh for domain in GEOMETRY_DOMAINS if domain in submeshes})
    simulation = pybamm.Simulation(model, parameter_values=values, submesh_types=submeshes)
    simulation.build()
    built = simulation.built_model
    if built.len_alg:
        raise ConfigError(f"fidelity '{fidelity.label}': the model has {built.len_alg} algebraic equations; "
                          "BatchedStepper steps ODE models (spm)")
    return built


def _model_functions(model: pybamm.BaseModel, input_names: list[str]):
    """(rhs f(y, p, I) in SX, outputs g(y, p, I) in MX, y0(p), output names) of a built model."""
    time, state = casadi.MX.sym("t"), casadi.MX.sym("y", model.len_rhs)
    parameters, current = casadi.MX.sym("p", len(input_names)), casadi.MX.sym("I")
    symbols = {name: parameters[index] for index, name in enumerate(input_names)} | {CURRENT_INPUT: current}
    output_names = [name for name in OUTPUT_VARIABLES if name in model.variables and name != "Time [s]"]
    rhs = model.concatenated_rhs.to_casadi(time, state, inputs=symbols)
    outputs = casadi.vertcat(*[model.get_processed_variable(name).to_casadi(time, state, inputs=symbols)
                               for name in output_names])
    if casadi.depends_on(casadi.vertcat(rhs, outputs), time):
        raise ConfigError("BatchedStepper: the model depends on time explicitly; it steps autonomous models")
    initial = model.concatenated_initial_conditions.to_casadi(time, state, inputs=symbols)
    # the step needs the right-hand side as scalar operations (SX); the outputs may keep
    # PyBaMM's cubic-spline tables (e.g. OKane2022's graphite OCP), which only MX evaluates
    try:
        rhs_function = casadi.Function("rhs", [state, parameters, current], [rhs]).expand()
    except RuntimeError:
        raise ConfigError("BatchedStepper: the model's right-hand side reads a cubic-spline table (e.g. an OCP, "
                          "as SPMe's does) that CasADi cannot expand to scalar operations; use spm") from None
    return (rhs_function, casadi.Function("outputs", [state, parameters, current], [outputs]),
            casadi.Function("initial", [parameters], [initial]), output_names)


def _sdirk_interval(rhs: casadi.Function, scheme: StepScheme) -> casadi.Function:
    """y1 = interval(y0, dt, I, p): ``scheme.substeps`` equal SDIRK substeps over dt [s]."""
    state, parameters, current = rhs.sx_in()
    dt = casadi.SX.sym("dt")
    jacobian = casadi.Function("jacobian", [state, parameters, current],
                               [casadi.jacobian(rhs(state, parameters, current), state)])
    y = state
    for _ in range(scheme.substeps):
        y = _sdirk_substep(rhs, jacobian, y, dt / scheme.substeps, parameters, current,
                           TABLEAUX[scheme.method], scheme.newton_iterations)
    return casadi.Function("interval", [state, dt, current, parameters], [y])


def _sdirk_substep(rhs, jacobian, y, h, parameters, current, tableau, iterations: int):
    """One substep of length ``h``: each stage solves Y = known + h*gamma*f(Y) by Newton
    iterations with one factorisation of (1 - h*gamma*J(y)); stiffly accurate, so the last
    stage is the substep's end."""
    gamma = tableau[0][0]
    matrix = casadi.SX.eye(y.numel()) - h * gamma * jacobian(y, parameters, current)
    householder, r, beta, row_permutation, column_permutation = casadi.qr_sparse(matrix, True)
    slopes = []
    for row in tableau:
        known = y + h * sum(weight * slope for weight, slope in zip(row[:-1], slopes))
        stage = known + h * gamma * slopes[-1] if slopes else y  # predictor: the last slope held on
        for _ in range(iterations):
            residual = stage - known - h * gamma * rhs(stage, parameters, current)
            stage = stage - casadi.qr_solve(residual, householder, r, beta, row_permutation, column_permutation)
        slopes.append(rhs(stage, parameters, current))
    return stage


def _cvodes_interval(rhs: casadi.Function) -> casadi.Function:
    """y1 = interval(y0, dt, I, p) by CVODES over the unit interval, time scaled by dt."""
    state, parameters, current = rhs.sx_in()
    dt = casadi.SX.sym("dt")
    dae = {"x": state, "p": casadi.vertcat(parameters, current, dt), "ode": dt * rhs(state, parameters, current)}
    integrator = casadi.integrator("cvodes", "cvodes", dae, 0.0, 1.0, {"reltol": 1e-6, "abstol": 1e-6})
    y0, dt_mx = casadi.MX.sym("y", state.numel()), casadi.MX.sym("dt")
    parameters_mx, current_mx = casadi.MX.sym("p", parameters.numel()), casadi.MX.sym("I")
    y1 = integrator(x0=y0, p=casadi.vertcat(parameters_mx, current_mx, dt_mx))["xf"]
    return casadi.Function("interval", [y0, dt_mx, current_mx, parameters_mx], [y1])
