"""A compiled protocol as cycler instructions: what :mod:`hybrid.surrogate.closed_loop` executes.

Each PyBaMM experiment step of :func:`sim.protocols.compile_protocol` (or a current trace)
becomes a :class:`ControlStep`: hold a current (or a drive profile) until a voltage cut-off or
its duration, or hold a voltage until a current cut-off or its duration. Currents in A,
discharge positive.
"""

from __future__ import annotations

from dataclasses import dataclass
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
