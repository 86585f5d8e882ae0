"""A compiled protocol as cycler instructions: what :mod:`hybrid.surrogate.closed_loop` executes.

Each PyBaMM experiment step of :func:`sim.protocols.compile_protocol` (or a current trace)
becomes a :class:`ControlStep`: hold a current (or a drive profile) until a voltage cut-off or
its duration, or hold a voltage until a current cut-off or its duration. Currents in A,
discharge positive. A :class:`StepPlan` is one design's place in its list of control steps.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pybamm

from sim.errors import ConfigError
from sim.protocols import CompiledProtocol


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
        raise ConfigError(f"protocol step {kind}: the hybrid cannot run it in the loop; allowed: current, "
                          "C-rate, rest and voltage steps")
    scale = capacity_Ah if kind == "CRate" else 1.0
    if isinstance(step.value, pybamm.Interpolant):  # a drive profile
        time_s, values = np.asarray(step.value.x[0], dtype=float), np.asarray(step.value.y, dtype=float) * scale
        return ControlStep("current", float(values[0]), float(step.duration), float(step.period), cutoff_V,
                           profile=(time_s - time_s[0], values))
    return ControlStep("current", float(step.value) * scale, float(step.duration), float(step.period), cutoff_V)


@dataclass
class StepPlan:
    """Where one design is in its protocol as the closed loop executes it: the step, its sample
    times, a CV hold's learning, a cut-off crossing or a physics range limit being bisected."""

    steps: list[ControlStep]
    window: tuple[float, float]                                      # of the corrected voltage
    physics_window: tuple[float, float]                              # where the residual was trained
    index: int = -1
    times: np.ndarray = field(default_factory=lambda: np.empty(0))  # the step's sample times [s]
    sample: int = 0                                                  # the next of them
    start_s: float = 0.0
    held: list[float] = field(default_factory=list)                 # a CV hold's accepted currents
    slope: float | None = None                                       # its d(voltage)/d(current)
    attempts: list[tuple[float, float]] = field(default_factory=list)  # this interval's (current, error)
    ending: bool = False                                             # the interval now solved ends the step
    crossing: tuple[float, list] | None = None                       # (limit, (dt, voltage) tried) being refined
    saturation: list[float] | None = None                           # [valid dt, invalid dt, tries] bisected
    notes: list[str] = field(default_factory=list)                  # steps ended where the physics left its range
    status: str = "ok"
    message: str = ""

    @property
    def step(self) -> ControlStep:
        return self.steps[self.index]

    @property
    def done(self) -> bool:
        return self.index >= len(self.steps) or self.status != "ok"

    def open(self, time_s: float, current_A: float) -> None:
        """Start the step at ``time_s``."""
        step = self.step
        count = max(int(np.ceil(step.duration_s / step.period_s - 1e-9)), 1)
        self.times = time_s + np.minimum(np.arange(1, count + 1) * step.period_s, step.duration_s)
        self.sample, self.start_s, self.held, self.attempts, self.ending = 0, time_s, [], [], False
        self.crossing, self.saturation = None, None

    def toward_cutoff(self, current: float) -> bool:
        """The step drives the cell toward its voltage cut-off (discharging to a lower one or
        charging to an upper one)."""
        step = self.step
        return step.mode == "current" and step.cutoff_V is not None and current != 0.0

    def current_at(self, time_s: float) -> float:
        step = self.step
        if step.profile is None:
            return step.value
        return float(np.interp(time_s - self.start_s, *step.profile))
