"""A current trace as solver inputs: the knot interpolant and the chunks a trace is solved in."""

import casadi
import numpy as np
import pybamm

from sim.physics.trace_inputs import KNOT_TIMES, KNOT_VALUES, trace_chunks, trace_current


def test_knot_interpolant_is_linear_interpolation_in_python_and_in_casadi():
    knot_times, knot_values = np.array([0.0, 1.0, 1.5, 4.0]), np.array([2.0, -1.0, 3.0, 3.0])
    inputs = {KNOT_TIMES: knot_times, KNOT_VALUES: knot_values}
    current = trace_current(4)
    t = casadi.MX.sym("t")
    symbols = {name: casadi.MX.sym(name, 4) for name in inputs}
    compiled = casadi.Function("current", [t, *symbols.values()], [current.to_casadi(t, inputs=symbols)])
    for time in (0.0, 0.25, 1.0, 1.2, 2.5, 4.0):
        expected = np.interp(time, knot_times, knot_values)
        assert float(current.evaluate(t=time, inputs=inputs)) == expected
        assert abs(float(compiled(time, knot_times, knot_values)) - expected) < 1e-15


def test_knot_interpolant_does_not_depend_on_the_state():
    current = trace_current(4)
    jacobian = current.jac(pybamm.StateVector(slice(0, 3)))
    assert jacobian.evaluate(t=1.0, inputs={KNOT_TIMES: np.arange(4.0), KNOT_VALUES: np.ones(4)}) == 0


def test_chunks_tile_the_trace_and_pad_to_one_size():
    time_s, values = np.cumsum(np.full(20, 0.5)), np.arange(20.0)
    chunks = list(trace_chunks(time_s, values, knots=8))
    assert [len(times) for times, _ in chunks] == [8, 8, 6]  # 7 segments a chunk, the last 5
    for (before, _), (after, _) in zip(chunks, chunks[1:]):
        assert after[0] == before[-1]  # each chunk starts where the one before ended
    np.testing.assert_array_equal(np.concatenate([chunks[0][0]] + [times[1:] for times, _ in chunks[1:]]), time_s)
    times, inputs = chunks[-1]
    assert all(len(inputs[name]) == 8 for name in (KNOT_TIMES, KNOT_VALUES))
    assert np.all(np.diff(inputs[KNOT_TIMES]) > 0)
    np.testing.assert_array_equal(inputs[KNOT_VALUES][len(times):], values[-1])  # padding holds the last value
