"""The optimal-charge NLP on the smoke run (SPM physics): its constraint Jacobian equals central
finite differences of the same CasADi rollout, and IPOPT's profile keeps the voltage and plating
limits when replayed interval by interval."""

from __future__ import annotations

import casadi
import numpy as np
import pytest

from hybrid.data.columns import VOLTAGE
from hybrid.design.gradient import ChargeOptions, HybridCell, charge_nlp, charge_start, cut_at_target, solve_charge
from hybrid.surrogate import HybridSurrogate
from hybrid.surrogate.metrics import NEGATIVE_POTENTIAL

INTERVALS = 5
OPTIONS = ChargeOptions(period_s=60.0, max_c_rate=4.0)


@pytest.fixture(scope="module")
def cell_and_start(smoke_run_dir):
    cell = HybridCell(HybridSurrogate(smoke_run_dir))
    return cell, charge_start(cell, OPTIONS)


def test_constraint_jacobian_matches_finite_differences(cell_and_start):
    cell, start = cell_and_start
    nlp = charge_nlp(cell, start, INTERVALS, OPTIONS).nlp
    constraints = casadi.Function("g", [nlp["x"]], [nlp["g"]])
    jacobian = casadi.Function("constraint_jacobian", [nlp["x"]], [casadi.jacobian(nlp["g"], nlp["x"])])
    c_rates, step = np.array([1.0, 2.5, 3.0, 2.0, 1.5]), 1e-5
    exact = np.asarray(jacobian(c_rates))  # (2 (K+1), K)
    differences = np.column_stack([
        (np.asarray(constraints(c_rates + step * unit)) - np.asarray(constraints(c_rates - step * unit))).ravel()
        / (2 * step) for unit in np.eye(INTERVALS)])
    assert np.abs(exact).max() > 1e-3  # the rows do depend on the currents
    np.testing.assert_allclose(exact, differences, rtol=1e-4, atol=1e-6)
    # causality: a row never depends on a later interval's current (beyond the one it shows)
    voltage_rows = exact[: INTERVALS + 1]
    assert np.all(np.triu(voltage_rows[:INTERVALS], 1) == 0.0)


def test_solved_profile_keeps_its_constraints_on_replay(cell_and_start):
    cell, start = cell_and_start
    solve = solve_charge(cell, start, INTERVALS, OPTIONS)
    assert solve.feasible, solve.status
    assert 0.0 < solve.charged_soc <= INTERVALS * OPTIONS.period_s * OPTIONS.max_c_rate / 3600 + 1e-9
    currents = -solve.c_rates * cell.capacity_Ah
    memory, row = cell.reread(start.y, start.memory_before, start.time_step_s, currents[0])
    rows, y = [row], start.y
    for k in range(INTERVALS):  # the profile replayed numerically, one interval at a time
        y, memory, row = cell.advance(y, memory, OPTIONS.period_s, currents[k], currents[min(k + 1, INTERVALS - 1)])
        rows.append(row)
    voltage = np.array([float(row[VOLTAGE]) for row in rows])
    plating = np.array([float(row[NEGATIVE_POTENTIAL]) for row in rows])
    assert voltage.max() <= OPTIONS.max_voltage_V + 1e-5
    assert plating.min() >= OPTIONS.min_plating_margin_V - 1e-5
    np.testing.assert_allclose([voltage.max(), plating.min()], [solve.max_voltage_V, solve.plating_margin_V],
                               atol=1e-9)


def test_cut_at_target_ends_the_profile_where_it_reaches_the_target():
    c_rates = np.array([4.0, 4.0, 2.0, 2.0])  # 60 s intervals: 0.0667 + 0.0667 + 0.0333 + 0.0333
    options = ChargeOptions(target_soc=0.15)
    cut, last_s = cut_at_target(c_rates, options)
    assert len(cut) == 3 and last_s == pytest.approx((0.15 - 2 * 4.0 / 60) * 3600 / 2.0)
