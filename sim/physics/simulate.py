"""simulate(): one cell + protocol + fidelity -> Trajectory.

Build once, solve many: a :class:`ModelCache` keeps built PyBaMM simulations keyed by what
changes the model's structure (fidelity, parameter set, geometry, ambient temperature, an
experiment's steps, a current trace's unit). Everything else about the cell (porosities,
active fractions, overrides, capacity, initial concentrations) and a current trace's knots go
in as ``[input]`` parameters, so a new cell or a new measured current re-solves without a
rebuild.
"""

from __future__ import annotations

import json
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import pybamm

from sim.cells import GEOMETRIC_PARAMETERS, CellSpec, base_parameter_values, cell_parameter_values, \
    electrode_balance, resolved_parameters, scaled_parameter
from sim.errors import ConfigError, SimulationError
from sim.physics.fidelity import Fidelity, build_model, complete_parameters
from sim.protocols import CompiledProtocol, CurrentTrace, Protocol, VoltageWindow, compile_protocol
from sim.physics.summary import cycle_boundaries, cycle_summary, output_columns
from sim.physics.trace_inputs import CHUNK_KNOTS, trace_chunks, trace_current
from sim.physics.trajectory import Trajectory

log = logging.getLogger(__name__)

CAPACITY_INPUT = "Nominal cell capacity [A.h]"
INITIAL_CONCENTRATIONS = ("Initial concentration in negative electrode [mol.m-3]",
                          "Initial concentration in positive electrode [mol.m-3]")


@dataclass
class PreparedCell:
    """Numeric parameters of one cell, split into structural values and solver inputs."""

    values: pybamm.ParameterValues      # fully numeric, completed for the fidelity
    unscaled: pybamm.ParameterValues    # the same before cell.scales, for building
    inputs: dict[str, float]            # solver inputs (non-geometric parameters and scales)
    scales: dict[str, str]              # scaled parameter -> name of its scale input
    capacity_Ah: float
    window: VoltageWindow


class ModelCache:
    """Built PyBaMM simulations, least recently used evicted first."""

    def __init__(self, max_size: int = 8):
        self.max_size = max_size
        self._simulations: OrderedDict[tuple, pybamm.Simulation] = OrderedDict()
        self.builds = 0

    def get(self, key: tuple, build) -> pybamm.Simulation:
        if key in self._simulations:
            self._simulations.move_to_end(key)
            return self._simulations[key]
        simulation = build()
        self.builds += 1
        self._simulations[key] = simulation
        if len(self._simulations) > self.max_size:
            self._simulations.popitem(last=False)
        return simulation

    def clear(self) -> None:
        self._simulations.clear()


DEFAULT_CACHE = ModelCache()


def prepare_cell(cell: CellSpec, fidelity: Fidelity) -> PreparedCell:
    """Numeric parameters, solver inputs, capacity and voltage window of ``cell``."""
    completed = complete_parameters(base_parameter_values(cell), fidelity)
    values = cell_parameter_values(cell, base=completed)
    balance = electrode_balance(cell, values)
    capacity = balance.capacity_Ah
    window = VoltageWindow(values["Lower voltage cut-off [V]"], values["Upper voltage cut-off [V]"])
    x_negative, y_positive = balance.stoichiometries(cell.initial_soc)
    inputs = {name: float(value) for name, value in resolved_parameters(cell, completed).items()
              if name not in GEOMETRIC_PARAMETERS}
    inputs[CAPACITY_INPUT] = capacity
    inputs[INITIAL_CONCENTRATIONS[0]] = float(
        x_negative * values["Maximum concentration in negative electrode [mol.m-3]"])
    inputs[INITIAL_CONCENTRATIONS[1]] = float(
        y_positive * values["Maximum concentration in positive electrode [mol.m-3]"])
    scales = {name: f"{name} scale" for name in cell.scales}
    inputs.update({scales[name]: float(factor) for name, factor in cell.scales.items()})
    unscaled = cell_parameter_values(cell, base=completed, apply_scales=False)
    return PreparedCell(values, unscaled, inputs, scales, capacity, window)


def simulate(cell: CellSpec, protocol: Protocol | CurrentTrace, fidelity: Fidelity = Fidelity(), *,
             raise_on_failure: bool = False, cache: ModelCache | None = None,
             voltage_cutoffs: bool = True) -> Trajectory:
    """Simulate ``cell`` under ``protocol`` with the PyBaMM model ``fidelity`` describes.

    Returns a Trajectory (numpy columns with PyBaMM names and SI units, per-cycle summary,
    status, message). A failed build or solve returns a failed Trajectory with the reason,
    or raises SimulationError when ``raise_on_failure``. Invalid specs raise ConfigError.
    ``voltage_cutoffs=False`` lets a current trace run past the model's voltage limits: a
    physics counterpart follows the reference's current to the end, wherever its voltage goes.
    A ``Dynamic`` protocol with ``voltage_cutoffs: false`` (a measured replay) does the same.
    """
    cache = cache or DEFAULT_CACHE
    voltage_cutoffs = voltage_cutoffs and getattr(protocol, "voltage_cutoffs", True)
    started = time.perf_counter()
    metadata = {"cell": cell.model_dump(mode="json"), "protocol": describe_protocol(protocol),
                "fidelity": fidelity.model_dump(mode="json")}
    try:
        prepared = prepare_cell(cell, fidelity)
        compiled = compile_protocol(protocol, prepared.window)
        _check_ocv_correction(cell, compiled, voltage_cutoffs)
        key = _cache_key(cell, _model_protocol(metadata["protocol"], compiled), fidelity, prepared) + (voltage_cutoffs,)
        simulation = cache.get(key, lambda: _build(fidelity, prepared, compiled, voltage_cutoffs))
        solution = _solve(simulation, protocol, compiled, prepared.inputs)
        trajectory = _to_trajectory(solution, compiled, cell, prepared, protocol)
    except ConfigError:
        raise
    except Exception as error:  # a failed sample is data, not a crashed batch
        message = f"{type(error).__name__}: {str(error).strip().splitlines()[0] if str(error).strip() else ''}"
        if raise_on_failure:
            raise SimulationError(message) from error
        log.warning("simulation failed: %s", message)
        return Trajectory.failed(message, {**metadata, "wall_s": time.perf_counter() - started})
    trajectory.metadata = {**metadata, **trajectory.metadata, "wall_s": time.perf_counter() - started}
    if raise_on_failure and trajectory.status != "ok":
        raise SimulationError(trajectory.message)
    return trajectory


def _check_ocv_correction(cell: CellSpec, compiled: CompiledProtocol, voltage_cutoffs: bool) -> None:
    """ConfigError unless a cell with an OCV correction runs a current replay without voltage
    cut-offs: the correction is added to the output, so the solver's voltage limits and
    constant-voltage steps would not see it."""
    if cell.ocv_correction is not None and (voltage_cutoffs or compiled.trace is None):
        raise ConfigError("cell.ocv_correction: it corrects the output voltage only, which the solver's voltage "
                          "limits do not see; allowed: current replays without voltage cut-offs (measured "
                          "replays, voltage_cutoffs: false), or ocv_correction: null")


def describe_protocol(protocol: Protocol | CurrentTrace) -> dict:
    """A JSON-able description of the protocol (a digest for current traces)."""
    if isinstance(protocol, CurrentTrace):
        return protocol.describe()
    return protocol.model_dump(mode="json")


def _model_protocol(description: dict, compiled: CompiledProtocol) -> dict:
    """What of the protocol the built model depends on: an experiment's steps, but of a
    current trace only its unit and chunk size (its knots are solver inputs)."""
    if compiled.trace is None:
        return description
    return {"trace_unit": compiled.trace_unit, "chunk_knots": CHUNK_KNOTS}


def _cache_key(cell: CellSpec, protocol: dict, fidelity: Fidelity, prepared: PreparedCell) -> tuple:
    geometry = tuple(sorted((name, value) for name, value in cell.named_parameters().items()
                            if name in GEOMETRIC_PARAMETERS))
    return (fidelity.model_dump_json(), cell.parameter_set, str(cell.bpx), geometry,
            cell.ambient_temperature_K, tuple(sorted(prepared.inputs)), json.dumps(protocol, sort_keys=True))


def _build(fidelity: Fidelity, prepared: PreparedCell, compiled: CompiledProtocol,
           voltage_cutoffs: bool = True) -> pybamm.Simulation:
    """A PyBaMM Simulation with the cell's non-geometric parameters as inputs."""
    values = prepared.unscaled.copy()
    scale_inputs = set(prepared.scales.values())
    values.update({name: "[input]" for name in prepared.inputs if name not in scale_inputs})
    values.update({name: scaled_parameter(values[name], pybamm.InputParameter(input_name))
                   for name, input_name in prepared.scales.items()})
    solver = pybamm.IDAKLUSolver()
    if compiled.trace is not None:
        # linear interpolation: between samples the current ramps, so sampled steps keep their charge
        current_function = trace_current(CHUNK_KNOTS)
        if compiled.trace_unit == "C":
            current_function = current_function * pybamm.InputParameter(CAPACITY_INPUT)
        values["Current function [A]"] = current_function
        model = build_model(fidelity)
        if not voltage_cutoffs:
            model.events = [event for event in model.events if "voltage" not in event.name.lower()]
        return pybamm.Simulation(model, parameter_values=values, solver=solver)
    return pybamm.Simulation(build_model(fidelity), parameter_values=values,
                             experiment=compiled.experiment(), solver=solver)


def _solve(simulation: pybamm.Simulation, protocol: Protocol | CurrentTrace, compiled: CompiledProtocol,
           inputs: dict) -> pybamm.Solution:
    if compiled.trace is None:
        return simulation.solve(inputs=inputs)
    # a held current stops at every knot: an adaptive step grown during a long rest would
    # otherwise step over a 1 s pulse or smear the ends of the holds
    return _solve_trace(simulation, compiled.trace, _output_times(protocol, compiled), inputs,
                        stop_at_knots=isinstance(protocol, CurrentTrace))


def _output_times(protocol: Protocol | CurrentTrace, compiled: CompiledProtocol) -> np.ndarray | None:
    """The times [s] a trace's solution is reported at: a current trace's samples, a profile's
    knots; None for an experiment (reported at its own output periods)."""
    if isinstance(protocol, CurrentTrace):
        return protocol.time_s
    return None if compiled.trace is None else compiled.trace[0]


def _solve_trace(simulation: pybamm.Simulation, trace: tuple[np.ndarray, np.ndarray], output_times: np.ndarray,
                 inputs: dict, stop_at_knots: bool) -> pybamm.Solution:
    """Step through the trace (knot times [s], values) a chunk of knots at a time, the knots
    as inputs of the one built model and the state carried over; outputs at ``output_times``."""
    solution, solved_until = pybamm.EmptySolution(t=trace[0][0]), -np.inf
    for times, knot_inputs in trace_chunks(*trace, CHUNK_KNOTS):
        relative = times - times[0]  # a step counts time from where the last one ended
        outputs = output_times[(output_times > solved_until) & (output_times <= times[-1])]
        solution = simulation.step(relative[-1], t_eval=relative if stop_at_knots else relative[[0, -1]],
                                   t_interp=outputs - times[0], starting_solution=solution,
                                   inputs=inputs | knot_inputs)
        if solution.termination != "final time":  # a voltage cut-off ended it
            break
        solved_until = times[-1]
    return solution


def _to_trajectory(solution: pybamm.Solution, compiled: CompiledProtocol, cell: CellSpec,
                   prepared: PreparedCell, protocol: Protocol) -> Trajectory:
    columns = output_columns(solution, cell, prepared.capacity_Ah, _output_times(protocol, compiled))
    if isinstance(protocol, CurrentTrace) and protocol.boundaries:
        boundaries = list(protocol.boundaries)
        tags = [tag for tag, _, _ in boundaries]
    else:
        tags = compiled.tags if compiled.blocks else [compiled.trace_tag]
        boundaries = cycle_boundaries(solution, tags)
    cycles = cycle_summary(columns, boundaries)
    status, message = _status(solution, planned=len(tags), done=len(cycles["Tag"]))
    metadata = {"capacity_Ah": prepared.capacity_Ah, "voltage_window_V": [prepared.window.lower,
                                                                         prepared.window.upper]}
    if protocol.ripple is not None:
        metadata["ripple"] = add_ripple(columns, protocol.ripple.frequency_hz,
                                        protocol.ripple.amplitude_c_rate * prepared.capacity_Ah,
                                        protocol.ripple.phase_rad)
    return Trajectory(columns, cycles, status, message, metadata)


def _status(solution: pybamm.Solution, planned: int, done: int) -> tuple[str, str]:
    """'ok' when every cycle ran and ended on the protocol's own terms, else 'truncated'
    with PyBaMM's reason (a model limit such as the minimum voltage was hit first)."""
    termination = str(solution.termination)
    if done == planned and (termination == "final time" or "[experiment]" in termination):
        return "ok", f"solved {done} cycle(s)"
    end = float(solution.t[-1])
    return "truncated", f"stopped in cycle {done}/{planned} at t = {end:.0f} s: {termination}"


def add_ripple(columns: dict[str, np.ndarray], frequency_hz: float, amplitude_A: float,
               phase_rad: float = 0.0) -> dict:
    """Add converter ripple to the current and its ohmic echo to the voltage, in place.

    The ripple is far above the cell's electrochemical bandwidth, so it leaves the slow states
    alone and the voltage answers through the instantaneous resistance, measured here as
    |dV/dI| across the trajectory's largest current step. Values are taken at the sample
    instants, as an ideal sampler without an anti-aliasing filter sees them. Returns the tones
    (frequency, amplitude, phase) so a sensor model can re-sample them properly.
    """
    time_s, current, voltage = columns["Time [s]"], columns["Current [A]"], columns["Voltage [V]"]
    jumps = np.abs(np.diff(current))
    if len(jumps) == 0 or jumps.max() <= 0:
        raise ConfigError("protocol.ripple: the protocol has no current step to measure the "
                          "cell's instantaneous resistance; ripple needs a current-carrying protocol")
    step = int(np.argmax(jumps))
    resistance = abs((voltage[step + 1] - voltage[step]) / (current[step + 1] - current[step]))
    flowing = np.abs(current) > 1e-6  # the converter idles while the cell rests
    tone = np.sin(2 * np.pi * frequency_hz * time_s + phase_rad) * flowing
    columns["Current [A]"] = current + amplitude_A * tone
    columns["Voltage [V]"] = voltage - resistance * amplitude_A * tone
    return {"frequency_hz": frequency_hz, "current_amplitude_A": amplitude_A,
            "voltage_amplitude_V": resistance * amplitude_A, "phase_rad": phase_rad,
            "resistance_ohm": resistance}
