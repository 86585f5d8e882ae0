"""The hybrid runs the protocol: physics and residual advance together, the cycler acts on the
corrected voltage, and many designs advance in lockstep.

A cycler decides the current from what it measures. Run open loop (physics runs the protocol,
the residual is added afterwards), the surrogate's cut-offs, CV holds and safety limits acted
on the *physics* voltage, so a corrected voltage could sail past 4.2 V on a charge the plant's
cycler would have ended. Here every design's protocol is executed like a cycler, one sample
interval at a time, all designs of a batch together:

- a current step (CC, rest, drive profile) advances interval by interval; where the *corrected*
  voltage crosses the step's cut-off, the interval is solved again up to the crossing
  (interpolated between the two samples) and the step ends;
- a CV hold picks, interval by interval, the held current that puts the corrected voltage at the
  hold's value at the interval's end (secant iterations on physics + residual), and ends when
  that current falls to the hold's cut-off;
- a step already past its cut-off when it starts is skipped, as PyBaMM's experiment skips it;
  a corrected voltage beyond the cell's window by ``SAFETY_MARGIN_V`` ends the protocol
  ("truncated"), as PyBaMM's voltage events do;
- where the physics model leaves its range during a step driven toward its cut-off, before the
  corrected voltage reaches the cut-off, the step ends at the last instant the physics holds
  (bisection on the interval's length). Its range is what the residual was trained on: surface
  stoichiometries in [0, 1] and the physics voltage within its window widened by
  ``PHYSICS_VOLTAGE_MARGIN_V`` (a corpus sample is cut where it leaves that, see
  :mod:`sim.corpus.validity`). There the physics electrode is nearly exhausted, so the cell can
  give little more charge that way, and the residual would be extrapolating. Measured on the
  cell problem, the physics left its range at the end of a 1C capacity check in 122 of 500
  designs (a thin positive electrode), which the loop used to drop as "truncated". Anywhere
  else a physics model out of its range ends the protocol ("truncated").

The physics is driven as in training: there it followed the plant's current, held per sample
interval; here the current the controller decided on the corrected voltage. A row shows the
current flowing from its instant on (PyBaMM's experiment output keeps the value after a step
boundary), and the residual reads it that way, as in training.

One interval of every design is one call of each model: the physics through
:class:`sim.physics.batched.BatchedStepper` (compiled, ~10 us a design-interval) where the
fidelity allows it (SPM), else through one :class:`sim.physics.stepper.PhysicsStepper` per design
(IDAKLU, ~1 ms a design-interval); the residual as its exported one-step CasADi function
(:mod:`hybrid.export.casadi`, equal to the torch model to ~1e-8 V) mapped over the designs, the
same flat state for every model kind.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np

from hybrid.data.columns import VOLTAGE
from hybrid.surrogate.batches import ResidualBatch, physics_batch, scatter
from hybrid.surrogate.control import ControlStep, StepPlan, control_steps
from hybrid.train import TrainedModel
from sim.cells import CellSpec
from sim.corpus import PHYSICS_VOLTAGE_MARGIN_V
from sim.errors import ConfigError
from sim.physics import Fidelity, ModelCache
from sim.protocols import Protocol, compile_protocol

log = logging.getLogger(__name__)

SAFETY_MARGIN_V = 0.05       # beyond the window: the protocol is infeasible, as on a cycler's safety limit
CV_TOLERANCE_V = 5e-4        # a CV hold's corrected voltage within this of its value
CV_ITERATIONS = 4
SATURATION_TRIES = 4         # bisections of an interval in which the physics leaves its range
BATCH_SIZE = 256             # designs advanced together
STOICHIOMETRIES = ("X-averaged negative particle surface stoichiometry",
                   "X-averaged positive particle surface stoichiometry")

class Lockstep:
    """Every design's protocol, one sample interval of all of them per iteration."""

    def __init__(self, physics, residual: ResidualBatch, steps: list[list[ControlStep]]):
        self.physics, self.residual = physics, residual
        self.count = len(steps)
        self.plans = [StepPlan(design_steps, (window.lower - SAFETY_MARGIN_V, window.upper + SAFETY_MARGIN_V),
                            (window.lower - PHYSICS_VOLTAGE_MARGIN_V, window.upper + PHYSICS_VOLTAGE_MARGIN_V))
                      for design_steps, window in zip(steps, physics.windows)]
        self.state = physics.initial_state()
        self.time_s = np.zeros(self.count)
        self.memory = residual.initial_state()            # after the last row
        self.memory_before = residual.initial_state()     # before it (a step boundary reads it again)
        self.time_before = np.zeros(self.count)
        self.current = np.zeros(self.count)               # of the last interval
        self.voltage = np.full(self.count, np.nan)        # corrected, at the last row
        self.rows: list[list[np.ndarray]] = [[] for _ in range(self.count)]
        self.names: list[str] | None = None

    def run(self) -> None:
        self._open(np.ones(self.count, dtype=bool))
        while True:
            active = np.array([not plan.done for plan in self.plans])
            if not active.any():
                return
            self._interval(active)

    # --- a step's first row -----------------------------------------------------------------

    def _open(self, opening: np.ndarray) -> None:
        """Move the ``opening`` designs to their next step that is not already past its cut-off,
        and show its first current on the row at this instant."""
        first = np.array([not rows for rows in self.rows])
        cells = np.flatnonzero(opening)
        while len(cells):
            current = self.current.copy()
            for d in cells:
                plan = self.plans[d]
                plan.index += 1
                if not plan.done and plan.step.mode == "current":
                    current[d] = plan.current_at(self.time_s[d])
            cells = np.array([d for d in cells if not self.plans[d].done], dtype=int)
            if not len(cells):
                return
            physics = self.physics.outputs_at(self.physics.subset(self.state, cells), current, cells)
            before = np.where(first[cells, None], 0.0, self.memory_before[cells])
            time_step = np.where(first[cells], 0.0, self.time_s[cells] - self.time_before[cells])
            memory, corrected = self.residual.advance(before, physics, time_step, cells)
            skipped = ~first[cells] & self._past_cutoff(cells, corrected[VOLTAGE], current[cells])
            taken = np.flatnonzero(~skipped)
            for j in taken:
                d = cells[j]
                self._keep(d, j, physics, corrected, replace=not first[d])
                self.plans[d].open(self.time_s[d], current[d])
            self.memory = scatter(self.memory, cells[taken], memory[taken])
            self.current[cells[taken]] = current[cells[taken]]
            self.voltage[cells[taken]] = corrected[VOLTAGE][taken]
            cells = cells[skipped]

    def _past_cutoff(self, cells: np.ndarray, voltage: np.ndarray, current: np.ndarray) -> np.ndarray:
        """Per design of ``cells``: its step's cut-off is already past at its first row."""
        past = np.zeros(len(cells), dtype=bool)
        for j, d in enumerate(cells):
            step = self.plans[d].step
            if step.mode == "current" and step.cutoff_V is not None:
                past[j] = voltage[j] <= step.cutoff_V if current[j] > 0 else (
                    current[j] < 0 and voltage[j] >= step.cutoff_V)
        return past

    # --- one interval -------------------------------------------------------------------------

    def _interval(self, active: np.ndarray) -> None:
        """One interval of every active design; designs whose interval must be solved again
        (a cut-off crossed, a CV hold off its voltage) are solved again alone."""
        dt, current, after = self._proposals(active)
        cells = np.flatnonzero(active)
        for _ in range(CV_ITERATIONS + 2):
            state, physics = self.physics.advance(self.physics.subset(self.state, cells), dt, current, after, cells)
            memory, corrected = self.residual.advance(self.memory[cells], physics, dt[cells], cells)
            retry = np.zeros(len(cells), dtype=bool)
            for j, d in enumerate(cells):
                change = self._review(d, j, dt[d], current[d], physics, corrected)
                if change is not None:
                    retry[j] = True
                    dt[d], current[d], after[d] = change
            self._accept(cells, np.flatnonzero(~retry), state, memory, physics, corrected, dt, current)
            cells = cells[retry]
            if not len(cells):
                break
        ending = np.array([not plan.done and plan.ending for plan in self.plans]) & active
        if ending.any():
            self._open(ending)

    def _proposals(self, active: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Each active design's next interval: (length [s], held current [A], current after it)."""
        dt, current, after = np.zeros(self.count), self.current.copy(), self.current.copy()
        for d in np.flatnonzero(active):
            plan = self.plans[d]
            dt[d] = plan.times[plan.sample] - self.time_s[d]
            if plan.step.mode == "voltage":
                held = plan.held
                current[d] = held[-1] * held[-1] / held[-2] if len(held) >= 2 and held[-2] != 0 else self.current[d]
                after[d] = current[d]
            else:
                current[d] = plan.current_at(self.time_s[d])
                last = plan.sample + 1 >= len(plan.times)
                after[d] = current[d] if last else plan.current_at(plan.times[plan.sample])
        return dt, current, after

    def _review(self, d: int, j: int, dt: float, current: float, physics: dict, corrected: dict,
                ) -> tuple[float, float, float] | None:
        """None to accept design ``d``'s interval (row ``j`` of the columns), else the
        (dt, current, after) to solve it again."""
        plan, voltage = self.plans[d], corrected[VOLTAGE][j]
        valid = (plan.physics_window[0] <= physics[VOLTAGE][j] <= plan.physics_window[1]
                 and all(0.0 <= physics[name][j] <= 1.0 for name in STOICHIOMETRIES if name in physics))
        if plan.saturation is not None or (not valid and plan.toward_cutoff(current)):
            return self._bisect_saturation(d, plan, dt, current, valid)
        if not valid:
            plan.status, plan.message = "truncated", f"the physics model left its range at t = {self.time_s[d]:.0f} s"
            plan.ending = False  # the interval's row is not kept
            return None
        if plan.step.mode == "voltage":
            return self._review_hold(plan, dt, current, voltage - plan.step.value)
        if plan.crossing is not None:
            return self._refine_crossing(plan, dt, current, voltage)
        outside = not plan.window[0] <= voltage <= plan.window[1]
        step = plan.step
        past = step.cutoff_V is not None and ((current > 0 and voltage <= step.cutoff_V)
                                              or (current < 0 and voltage >= step.cutoff_V))
        if past or outside:
            limit = step.cutoff_V if past else min(plan.window, key=lambda v: abs(v - voltage))
            plan.crossing = (limit, [(0.0, self.voltage[d])])
            if outside and not past:
                plan.status = "truncated"
                plan.message = (f"the corrected voltage {voltage:.3f} V left the window [{plan.window[0]:.2f}, "
                                f"{plan.window[1]:.2f}] V near t = {self.time_s[d] + dt:.0f} s")
            return self._refine_crossing(plan, dt, current, voltage)
        plan.sample += 1
        plan.ending = plan.sample >= len(plan.times)
        return None

    def _bisect_saturation(self, d: int, plan: StepPlan, dt: float, current: float,
                           valid: bool) -> tuple[float, float, float] | None:
        """Where within the interval the physics leaves its range (module docstring): bisect the
        interval's length SATURATION_TRIES times, then end the step at the longest valid one
        (solved once more if the last try was out of range); truncated when none is valid."""
        if plan.saturation is None:
            plan.saturation = [0.0, dt, 0]
        low, high, tries = plan.saturation
        if tries > 0:
            low, high = (dt, high) if valid else (low, dt)
        if tries < SATURATION_TRIES:
            plan.saturation = [low, high, tries + 1]
            return 0.5 * (low + high), current, current
        if valid and dt == low:  # the longest valid interval, solved: the step ends with it
            plan.saturation, plan.ending = None, True
            plan.notes.append(f"t = {self.time_s[d] + dt:.0f} s")
            return None
        if low > 0.0:
            plan.saturation = [low, high, tries]
            return low, current, current
        plan.saturation = None
        plan.status, plan.message = "truncated", f"the physics model left its range at t = {self.time_s[d]:.0f} s"
        plan.ending = False
        return None

    @staticmethod
    def _refine_crossing(plan: StepPlan, dt: float, current: float, voltage: float) -> tuple[float, float, float] | None:
        """Where within the interval the corrected voltage reaches the crossed limit: regula falsi
        on the interval's length, to CV_TOLERANCE_V or CV_ITERATIONS solves; then the step ends."""
        limit, points = plan.crossing
        points.append((dt, voltage))
        plan.ending = True
        if abs(voltage - limit) <= CV_TOLERANCE_V or len(points) > CV_ITERATIONS:
            plan.crossing = None
            return None
        side = np.sign(points[0][1] - limit)
        if all(np.sign(p[1] - limit) == side for p in points):  # the last row was already past it
            plan.crossing = None
            return None
        before = max((p for p in points if np.sign(p[1] - limit) == side), key=lambda p: p[0])
        after = min((p for p in points if np.sign(p[1] - limit) != side), key=lambda p: p[0])
        change = after[1] - before[1]
        fraction = 0.5 if change == 0 else float(np.clip((limit - before[1]) / change, 0.0, 1.0))
        return max(before[0] + fraction * (after[0] - before[0]), 1e-3), current, current

    def _review_hold(self, plan: StepPlan, dt: float, current: float, error: float) -> tuple[float, float, float] | None:
        plan.attempts.append((current, error))
        if abs(error) > CV_TOLERANCE_V and len(plan.attempts) < CV_ITERATIONS:
            (i0, e0), (i1, e1) = (plan.attempts[-2], plan.attempts[-1]) if len(plan.attempts) > 1 else \
                ((np.nan, np.nan), plan.attempts[-1])
            if np.isfinite(i0) and i1 != i0:
                plan.slope = (e1 - e0) / (i1 - i0)
            slope = plan.slope if plan.slope is not None and plan.slope < 0 else -0.02  # V/A: discharge lowers it
            guess = current - error / slope
            return dt, guess, guess
        plan.held.append(current)
        plan.attempts = []
        plan.sample += 1
        cutoff = plan.step.cutoff_A
        plan.ending = plan.sample >= len(plan.times) or (cutoff is not None and abs(current) <= cutoff)
        return None

    # --- rows ---------------------------------------------------------------------------------

    def _accept(self, cells: np.ndarray, rows: np.ndarray, state, memory: np.ndarray, physics: dict,
                corrected: dict, dt: np.ndarray, current: np.ndarray) -> None:
        """Keep rows ``rows`` of the columns of ``cells`` (their designs' intervals accepted)."""
        usable = np.array([j for j in rows if (self.plans[cells[j]].status == "ok" or self.plans[cells[j]].ending)
                           and np.isfinite(physics[VOLTAGE][j])], dtype=int)
        if not len(usable):
            return
        designs = cells[usable]
        for j, d in zip(usable, designs):
            self._keep(d, j, physics, corrected, replace=False)
        self.state = scatter(self.state, designs, self.physics.subset(state, usable))
        self.memory_before = scatter(self.memory_before, designs, self.memory[designs])
        self.time_before[designs] = self.time_s[designs]
        self.memory = scatter(self.memory, designs, memory[usable])
        self.time_s[designs] = self.time_s[designs] + dt[designs]
        self.current[designs] = current[designs]
        self.voltage[designs] = corrected[VOLTAGE][usable]

    def _keep(self, d: int, j: int, physics: dict, corrected: dict, replace: bool) -> None:
        """Design ``d``'s row: row ``j`` of the columns (appended, or replacing its last row)."""
        if self.names is None:  # the physics columns the residual leaves alone, then the corrected ones
            self.names = [name for name in physics if name not in corrected] + list(corrected)
        row = np.array([(corrected[name] if name in corrected else physics[name])[j] for name in self.names])
        if replace:
            self.rows[d][-1] = row
        else:
            self.rows[d].append(row)

    def end_state(self, d: int) -> tuple[Any, np.ndarray, float]:
        """Where design ``d`` ended: its physics state, the residual's state before its last row
        and that row's time step [s] (a next step's first row replaces that row)."""
        return (self.physics.subset(self.state, np.array([d])), self.memory_before[d],
                float(self.time_s[d] - self.time_before[d]))

    def columns(self, d: int) -> dict[str, np.ndarray]:
        table = np.array(self.rows[d])
        return {name: table[:, k] for k, name in enumerate(self.names)}


def run_hybrid(cells: list[CellSpec], protocols: list[Protocol], fidelity: Fidelity, trained: TrainedModel,
               designs: list[dict[str, float]], cache: ModelCache | None = None) -> list[dict[str, Any]]:
    """Each cell's protocol run by the hybrid (``fidelity`` physics + ``trained`` residual), the
    cells in lockstep: the result dicts of :func:`hybrid.surrogate.models.simulate_columns`,
    "Voltage [V]" corrected. A batch whose physics cannot be built gives failed results (data)."""
    started = time.perf_counter()
    try:
        physics = physics_batch(cells, fidelity, cache)
        steps = [control_steps(compile_protocol(protocol, window), capacity)
                 for protocol, window, capacity in zip(protocols, physics.windows, physics.capacity_Ah)]
        loop = Lockstep(physics, ResidualBatch(trained, designs), steps)
        loop.run()
    except ConfigError:
        raise
    except Exception as error:  # a failed batch is data, not a crashed search
        message = f"{type(error).__name__}: {str(error).strip().splitlines()[0] if str(error).strip() else ''}"
        log.warning("hybrid batch failed: %s", message)
        return [_failed(message, (time.perf_counter() - started) / len(cells)) for _ in cells]
    wall = (time.perf_counter() - started) / len(cells)
    results = []
    for d, (plan, window) in enumerate(zip(loop.plans, physics.windows)):
        message = plan.message or f"ran {len(plan.steps)} step(s) in the loop"
        if plan.notes:
            message += ("; step(s) ended where the physics model left its range before the cut-off: "
                        + ", ".join(plan.notes))
        results.append({"status": plan.status, "message": message, "columns": loop.columns(d),
                        "capacity_Ah": float(physics.capacity_Ah[d]), "window_V": (window.lower, window.upper),
                        "wall_s": wall})
    return results


def _failed(message: str, wall_s: float) -> dict[str, Any]:
    return {"status": "failed", "message": message, "columns": {}, "capacity_Ah": float("nan"),
            "window_V": (float("nan"), float("nan")), "wall_s": wall_s}


def closed_loop_columns(cell: CellSpec, protocol: Protocol, fidelity: Fidelity, trained: TrainedModel,
                        design: dict[str, float], cache: ModelCache | None = None) -> dict[str, Any]:
    """One design's :func:`run_hybrid` result."""
    return run_hybrid([cell], [protocol], fidelity, trained, [design], cache)[0]
