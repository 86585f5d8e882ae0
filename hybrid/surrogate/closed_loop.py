"""The hybrid runs the protocol: physics and residual advance together, the cycler acts on the
corrected voltage.

A cycler decides the current from what it measures. Run open loop (physics runs the protocol,
the residual is added afterwards), the surrogate's cut-offs, CV holds and safety limits acted
on the *physics* voltage, so a corrected voltage could sail past 4.2 V on a charge the plant's
cycler would have ended. Here the protocol is executed step by step like a cycler:

- a current step (CC, rest, drive profile) is solved a stretch of samples at a time
  (:class:`sim.physics.stepper.PhysicsStepper`), the residual model advances over the same rows,
  and where the *corrected* voltage crosses the step's cut-off the stretch is solved again up to
  the crossing (interpolated between samples);
- a CV hold picks, interval by interval, the held current that puts the corrected voltage at the
  hold's value at the interval's end (secant iterations on the physics + residual), and ends
  when that current falls below the hold's cut-off;
- every step also stops the protocol when the corrected voltage leaves the cell's window by more
  than ``SAFETY_MARGIN_V`` (as PyBaMM's experiment stops on its voltage events).

The physics is driven as in training: the counterpart of a corpus sample follows the plant's
current (held per sample interval, the current-trace model); here it follows the current the
controller decided on the corrected voltage. A row at a step boundary shows the new step's
current (PyBaMM's experiment output keeps the value after the boundary), and the residual reads
it that way, as in training.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pybamm
import torch

from hybrid.data import (
    AMBIENT,
    CURRENT,
    DESIGN_PREFIX,
    PHYSICS_SOC,
    PHYSICS_TEMPERATURE,
    PHYSICS_VOLTAGE,
    TEMPERATURE,
    TIME,
    TIME_STEP,
    VOLTAGE,
    Record,
    decode_outputs,
    normalise_features,
)
from hybrid.surrogate.metrics import PROTOCOL_VOLTAGE
from hybrid.train import TrainedModel, torch_threads
from sim.cells import CellSpec
from sim.corpus import PHYSICS_COLUMNS, WORKER_CACHE
from sim.errors import ConfigError
from sim.physics import Fidelity, ModelCache
from sim.physics.stepper import PhysicsStepper, StepperState
from sim.protocols import CompiledProtocol, Protocol, compile_protocol

SOC = "State of charge"
SAFETY_MARGIN_V = 0.05       # beyond the window: the protocol is infeasible, as on a cycler's safety limit
STRETCH_SAMPLES = 64         # samples solved at once before the cut-off is checked
CV_TOLERANCE_V = 5e-4        # a CV hold's corrected voltage within this of its value
CV_ITERATIONS = 4


@dataclass(frozen=True)
class ControlStep:
    """One instruction to the cycler. ``mode`` "current": hold ``value`` [A] (discharge
    positive; ``profile`` (time [s], current [A]) for a drive profile) until ``cutoff_V`` or
    ``duration_s``; "voltage": hold ``value`` [V] until |current| <= ``cutoff_A`` or
    ``duration_s``."""

    mode: Literal["current", "voltage"]
    value: float
    duration_s: float
    period_s: float
    cutoff_V: float | None = None
    cutoff_A: float | None = None
    profile: tuple[np.ndarray, np.ndarray] | None = None


def control_steps(compiled: CompiledProtocol, capacity_Ah: float) -> list[ControlStep]:
    """The compiled protocol as cycler instructions, in order (currents in A)."""
    if compiled.trace is not None:
        time_s, values = compiled.trace
        current = values * capacity_Ah if compiled.trace_unit == "C" else values
        return [ControlStep("current", float(current[0]), float(time_s[-1] - time_s[0]), 1.0,
                            profile=(time_s - time_s[0], current))]
    return [_control_step(step, capacity_Ah) for _, steps in compiled.blocks for step in steps]


def _control_step(step: pybamm.step.BaseStep, capacity_Ah: float) -> ControlStep:
    kind = type(step).__name__
    cutoff_V = next((float(t.value) for t in step.termination if type(t).__name__ == "VoltageTermination"), None)
    cutoff_A = next((float(t.value) * (capacity_Ah if type(t).__name__ == "CRateTermination" else 1.0)
                     for t in step.termination if type(t).__name__ in ("CRateTermination", "CurrentTermination")),
                    None)
    if kind == "Voltage":
        return ControlStep("voltage", float(step.value), float(step.duration), float(step.period),
                           cutoff_A=cutoff_A)
    if kind not in ("CRate", "Current", "Rest"):
        raise NotImplementedError(f"protocol step {kind}: the hybrid-in-the-loop runs current, C-rate, rest and "
                                  "voltage steps")
    scale = capacity_Ah if kind == "CRate" else 1.0
    if isinstance(step.value, pybamm.Interpolant):  # a drive profile
        time_s, values = np.asarray(step.value.x[0], dtype=float), np.asarray(step.value.y, dtype=float) * scale
        return ControlStep("current", float(values[0]), float(step.duration), float(step.period), cutoff_V,
                           profile=(time_s - time_s[0], values))
    return ControlStep("current", float(step.value) * scale, float(step.duration), float(step.period), cutoff_V)


class HybridStepper:
    """The residual model advanced a few rows at a time from a carried state."""

    def __init__(self, trained: TrainedModel, design: dict[str, float], capacity_Ah: float):
        self.model, self.normalisation = trained.model, trained.normalisation
        self.design = {DESIGN_PREFIX + name: value for name, value in design.items()}
        self.capacity_Ah = capacity_Ah

    @torch.no_grad()
    def advance(self, state: Any, physics: dict[str, np.ndarray], previous_time_s: float,
                ) -> tuple[Any, dict[str, np.ndarray]]:
        """(state after the rows, corrected columns) for physics rows (``physics`` columns)."""
        record = self._record(physics)
        raw = np.column_stack([np.diff(physics[TIME], prepend=previous_time_s) if name == TIME_STEP
                               else record.column(name) for name in self.normalisation["features"]])
        inputs = torch.from_numpy(normalise_features(raw, self.normalisation))[None]
        with torch_threads(1):  # tiny models: one thread (see TrainConfig.threads)
            outputs, state = self.model(inputs, state)
        voltage, soc, temperature = decode_outputs(outputs[0].double().numpy(), record, self.normalisation)
        corrected = {VOLTAGE: voltage, PHYSICS_VOLTAGE: physics[VOLTAGE], PROTOCOL_VOLTAGE: voltage,
                     SOC: soc if soc is not None else physics[SOC]}
        if temperature is not None:
            corrected.update({TEMPERATURE: temperature, PHYSICS_TEMPERATURE: physics[TEMPERATURE]})
        return state, corrected

    def _record(self, physics: dict[str, np.ndarray]) -> Record:
        columns = {TIME: physics[TIME], CURRENT: physics[CURRENT], AMBIENT: physics[AMBIENT]}
        columns.update({renamed: physics[name] for name, renamed in PHYSICS_COLUMNS.items() if name in physics})
        columns.setdefault(PHYSICS_SOC, physics[SOC])
        return Record(0, columns, self.design, float(physics[AMBIENT][0]), self.capacity_Ah, {})


class _Crossing(Exception):
    """The corrected voltage left the window in a step: the protocol cannot go on."""


@dataclass
class _Rows:
    """Physics rows with the residual model run over them: corrected columns, the state after
    the last row and the state before it (a step boundary reads the last row again)."""

    physics: dict[str, np.ndarray]
    corrected: dict[str, np.ndarray]
    state: Any
    state_before_last: Any
    time_before_last: float


class ClosedLoop:
    """One cell's protocol run by the hybrid (physics + residual) as a cycler would run it.

    The latest rows stay open (``self.last``) until the next stretch: when a step starts, its
    row at the same instant replaces the last of them with its own current.
    """

    def __init__(self, physics: PhysicsStepper, hybrid: HybridStepper):
        self.physics, self.hybrid = physics, hybrid
        window = physics.prepared.window
        self.safety = (window.lower - SAFETY_MARGIN_V, window.upper + SAFETY_MARGIN_V)
        self.done: list[dict[str, np.ndarray]] = []  # rows before the open one, per stretch
        self.phys: StepperState = physics.initial_state()
        self.last: _Rows | None = None
        self.current_A = 0.0  # the current of the last interval

    def run(self, steps: list[ControlStep]) -> tuple[str, str]:
        """Run every step; (status "ok" or "truncated", message)."""
        for number, step in enumerate(steps):
            if not self._start(step):
                continue  # its cut-off is already past: skipped, as PyBaMM's experiment skips it
            try:
                self._hold_voltage(step) if step.mode == "voltage" else self._apply_current(step)
            except _Crossing as crossing:
                return "truncated", f"stopped in step {number + 1}/{len(steps)}: {crossing}"
            except pybamm.SolverError as error:
                return "truncated", (f"stopped in step {number + 1}/{len(steps)}: the physics solver failed: "
                                     f"{str(error).strip().splitlines()[0]}")
        return "ok", f"ran {len(steps)} step(s) in the loop"

    def columns(self) -> dict[str, np.ndarray]:
        parts = self.done + ([self._row(self.last, slice(None))] if self.last is not None else [])
        return {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}

    # --- rows -------------------------------------------------------------------------------

    def _trial(self, physics: dict[str, np.ndarray], state: Any, previous_time_s: float) -> _Rows:
        """The residual model over ``physics`` rows from ``state`` (nothing kept)."""
        if len(physics[TIME]) == 1:
            after, corrected = self.hybrid.advance(state, physics, previous_time_s)
            return _Rows(physics, corrected, after, state, previous_time_s)
        head = {name: values[:-1] for name, values in physics.items()}
        tail = {name: values[-1:] for name, values in physics.items()}
        middle, corrected_head = self.hybrid.advance(state, head, previous_time_s)
        after, corrected_tail = self.hybrid.advance(middle, tail, float(head[TIME][-1]))
        corrected = {name: np.concatenate([corrected_head[name], corrected_tail[name]]) for name in corrected_tail}
        return _Rows(physics, corrected, after, middle, float(head[TIME][-1]))

    def _accept(self, rows: _Rows, phys: StepperState, held: np.ndarray) -> None:
        if self.last is not None:
            self.done.append(self._row(self.last, slice(None)))
        self.last = rows
        self.phys, self.current_A = phys, float(held[-1])

    @staticmethod
    def _row(rows: _Rows, index: slice) -> dict[str, np.ndarray]:
        return {name: values[index] for name, values in (rows.physics | rows.corrected).items()}

    def _start(self, step: ControlStep) -> bool:
        """Open the step: the row at its start shows its first current, read by the residual
        from the state before the row it replaces. False (nothing changed) when the corrected
        voltage with that current is already past the step's cut-off."""
        current = self.current_A if step.mode == "voltage" else float(_current_at(step, np.zeros(1))[0])
        row = self.physics.outputs_at(self.phys, current)
        if self.last is None:
            opened = self._trial(row, None, float(row[TIME][0]))
        else:
            opened = self._trial(row, self.last.state_before_last, self.last.time_before_last)
        if self.last is not None and step.mode == "current" and step.cutoff_V is not None:
            crossing = self._first_crossing(step, opened.corrected[VOLTAGE], np.array([current]))
            if crossing is not None and crossing[1] == "cutoff":
                return False
        if self.last is not None and len(self.last.physics[TIME]) > 1:  # keep the rows before the replaced one
            self.done.append(self._row(self.last, slice(0, -1)))
        self.last, self.current_A = opened, current
        return True

    # --- current steps ----------------------------------------------------------------------

    def _apply_current(self, step: ControlStep) -> None:
        start = self.phys.time_s
        times = _sample_times(start, step.duration_s, step.period_s)
        currents = _current_at(step, np.append(0.0, times[:-1] - start))  # each interval holds its start value
        for first in range(0, len(times), STRETCH_SAMPLES):
            stretch, held = times[first: first + STRETCH_SAMPLES], currents[first: first + STRETCH_SAMPLES]
            following = currents[first + STRETCH_SAMPLES] if first + STRETCH_SAMPLES < len(times) else None
            phys, physics = self.physics.advance(self.phys, stretch, held, following)
            rows = self._trial(physics, self.last.state, self.phys.time_s)
            crossing = self._first_crossing(step, rows.corrected[VOLTAGE], held)
            if crossing is None:
                self._accept(rows, phys, held)
                continue
            index, reason = crossing
            stretch = np.append(stretch[:index], self._crossing_time(stretch, rows.corrected[VOLTAGE], index, step))
            phys, physics = self.physics.advance(self.phys, stretch, held[: index + 1])
            self._accept(self._trial(physics, self.last.state, self.phys.time_s), phys, held[: index + 1])
            if reason == "safety":
                raise _Crossing(f"the corrected voltage {rows.corrected[VOLTAGE][index]:.3f} V left the window "
                                f"[{self.safety[0]:.2f}, {self.safety[1]:.2f}] V at t = {stretch[-1]:.0f} s")
            return

    def _first_crossing(self, step: ControlStep, voltage: np.ndarray, held: np.ndarray) -> tuple[int, str] | None:
        """(row, "cutoff" or "safety") of the first row past the step's cut-off or the window."""
        outside = (voltage < self.safety[0]) | (voltage > self.safety[1])
        past = np.zeros(len(voltage), dtype=bool)
        if step.cutoff_V is not None:
            past = np.where(held > 0, voltage <= step.cutoff_V, (held < 0) & (voltage >= step.cutoff_V))
        hits = np.flatnonzero(past | outside)
        if not len(hits):
            return None
        return int(hits[0]), ("cutoff" if past[hits[0]] else "safety")

    def _crossing_time(self, times: np.ndarray, voltage: np.ndarray, index: int, step: ControlStep) -> float:
        """When the corrected voltage reached the cut-off (or the window), linear between samples."""
        before_t = times[index - 1] if index else self.phys.time_s
        before_v = voltage[index - 1] if index else float(self.last.corrected[VOLTAGE][-1])
        inside = self.safety[0] <= voltage[index] <= self.safety[1]
        limit = step.cutoff_V if inside else min(self.safety, key=lambda v: abs(v - voltage[index]))
        change = voltage[index] - before_v
        fraction = 1.0 if change == 0 else float(np.clip((limit - before_v) / change, 0.0, 1.0))
        return float(max(before_t + fraction * (times[index] - before_t), before_t + 1e-3))

    # --- CV holds ---------------------------------------------------------------------------

    def _hold_voltage(self, step: ControlStep) -> None:
        slope = None  # d(corrected voltage)/d(current) over one interval, from the last secant
        held: list[float] = []
        for end in _sample_times(self.phys.time_s, step.duration_s, step.period_s):
            # a held current decays about geometrically: the first guess continues the last ratio
            guess = held[-1] * held[-1] / held[-2] if len(held) >= 2 and held[-2] != 0 else self.current_A
            current, slope, (phys, rows) = self._current_for_voltage(end, step.value, slope, guess)
            self._accept(rows, phys, np.array([current]))
            held.append(current)
            if step.cutoff_A is not None and abs(current) <= step.cutoff_A:
                return

    def _current_for_voltage(self, end: float, target_V: float, slope: float | None, guess: float):
        """The held current that puts the corrected voltage at ``target_V`` at ``end``
        (secant iterations from ``guess``), the slope learnt and the (physics state, rows) of
        that current."""
        guesses, errors, trials = [guess], [], []
        for _ in range(CV_ITERATIONS):
            phys, physics = self.physics.advance(self.phys, np.array([end]), np.array([guesses[-1]]))
            rows = self._trial(physics, self.last.state, self.phys.time_s)
            errors.append(float(rows.corrected[VOLTAGE][-1]) - target_V)
            trials.append((phys, rows))
            if abs(errors[-1]) <= CV_TOLERANCE_V:
                break
            if len(errors) >= 2 and guesses[-1] != guesses[-2]:
                slope = (errors[-1] - errors[-2]) / (guesses[-1] - guesses[-2])
            usable = slope if slope is not None and slope < 0 else -0.02  # V/A: more discharge, lower voltage
            guesses.append(guesses[-1] - errors[-1] / usable)
        best = int(np.argmin(np.abs(errors)))
        return guesses[best], slope, trials[best]


def _sample_times(start: float, duration_s: float, period_s: float) -> np.ndarray:
    """Sample instants after ``start`` every ``period_s`` up to ``start + duration_s`` (included)."""
    count = max(int(np.ceil(duration_s / period_s - 1e-9)), 1)
    times = start + np.minimum(np.arange(1, count + 1) * period_s, duration_s)
    return times


def _current_at(step: ControlStep, elapsed_s: np.ndarray) -> np.ndarray:
    """The step's current [A] at ``elapsed_s`` into it (a profile: linear between its points)."""
    if step.profile is None:
        return np.full(len(elapsed_s), step.value)
    return np.interp(elapsed_s, *step.profile)


def closed_loop_columns(cell: CellSpec, protocol: Protocol, fidelity: Fidelity, trained: TrainedModel,
                        design: dict[str, float], cache: ModelCache | None = None) -> dict[str, Any]:
    """``protocol`` on ``cell`` run by the hybrid (``fidelity`` physics + ``trained`` residual):
    the result dict of :func:`hybrid.surrogate.models.simulate_columns`, "Voltage [V]" corrected.
    A physics model that cannot be built or started gives status "failed" (data, not a crash)."""
    started = time.perf_counter()
    try:
        physics = PhysicsStepper(cell, fidelity, cache or WORKER_CACHE)
        loop = ClosedLoop(physics, HybridStepper(trained, design, physics.capacity_Ah))
        status, message = loop.run(control_steps(compile_protocol(protocol, physics.prepared.window),
                                                 physics.capacity_Ah))
        columns = loop.columns()
    except ConfigError:
        raise
    except Exception as error:  # a failed design is data, not a crashed search
        message = f"{type(error).__name__}: {str(error).strip().splitlines()[0] if str(error).strip() else ''}"
        return {"status": "failed", "message": message, "columns": {}, "capacity_Ah": float("nan"),
                "window_V": (float("nan"), float("nan")), "wall_s": time.perf_counter() - started}
    window = physics.prepared.window
    return {"status": status, "message": message, "columns": columns, "capacity_Ah": physics.capacity_Ah,
            "window_V": (window.lower, window.upper), "wall_s": time.perf_counter() - started}
