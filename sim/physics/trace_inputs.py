"""A current trace as solver inputs, so one built model serves every trace.

A ``pybamm.Interpolant`` holds its data, so a model driven by one measured current is rebuilt
for every sample. Here the interpolant's knots are vector ``[input]`` parameters instead. A
vector input has a fixed size, and every evaluation of the model copies its inputs (the cost
grows with their size: a whole trace as one input made the solve twice as slow as a rebuild),
so a trace is solved a chunk of ``CHUNK_KNOTS`` knots at a time, the state carried over.
"""

from __future__ import annotations

from collections.abc import Iterator

import casadi
import numpy as np
import pybamm

CHUNK_KNOTS = 256
KNOT_TIMES = "Current trace knot times [s]"
KNOT_VALUES = "Current trace knot values"  # in the trace's unit (A, or C-rate)


class KnotInterpolant(pybamm.Function):
    """Linear interpolation of ``time`` through knots given as vector inputs of one size:
    ``pybamm.Interpolant(knot_times, knot_values, time)`` with the knots as solver inputs."""

    def __init__(self, time: pybamm.Symbol, knot_times: pybamm.Symbol, knot_values: pybamm.Symbol):
        super().__init__(_interpolate, time, knot_times, knot_values, name="knot interpolant")

    def _casadi_evaluate(self, time, knot_times, knot_values):
        # CasADi's linear interpolant takes its grid and values as symbols: a parametric table
        return casadi.MX.interpn_linear([knot_times], knot_values, [time], {"lookup_mode": ["binary"]})

    def _function_jac(self, children_jacs):
        return pybamm.Scalar(0)  # a function of time and inputs only, never of the state

    def create_copy(self, new_children=None, perform_simplifications: bool = True) -> "KnotInterpolant":
        return KnotInterpolant(*self._children_for_copying(new_children))


def _interpolate(time, knot_times, knot_values):
    # PyBaMM's Python evaluation (shape checks); the solver uses the CasADi form above
    return np.interp(time, np.ravel(knot_times), np.ravel(knot_values))


def trace_current(knots: int) -> KnotInterpolant:
    """The current through ``knots`` knots given as inputs, as a function of time."""
    return KnotInterpolant(pybamm.t, pybamm.InputParameter(KNOT_TIMES, expected_size=knots),
                           pybamm.InputParameter(KNOT_VALUES, expected_size=knots))


def trace_chunks(time_s: np.ndarray, values: np.ndarray, knots: int) -> Iterator[tuple[np.ndarray, dict]]:
    """Consecutive chunks of the knots (``time_s`` [s], ``values``), each starting on the last
    knot of the one before, as (the chunk's knot times, its solver inputs)."""
    for first in range(0, max(len(time_s) - 1, 1), knots - 1):
        times, chunk_values = time_s[first: first + knots], values[first: first + knots]
        padding = knots - len(times)
        # past the chunk's end its last value holds on knots 1 s apart, where the solver never goes
        yield times, {KNOT_TIMES: np.append(times, times[-1] + np.arange(1.0, padding + 1.0)),
                      KNOT_VALUES: np.append(chunk_values, np.full(padding, chunk_values[-1]))}
