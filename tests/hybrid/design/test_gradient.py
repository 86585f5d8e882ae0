"""The optimal-charge NLP on the smoke run (SPM physics): its constraint Jacobian equals central
finite differences of the same CasADi rollout, and IPOPT's profile, replayed as a protocol by the
surrogate's closed loop (the cycler acting on the corrected voltage), charges what it planned
within its limits."""

from __future__ import annotations

import casadi
import numpy as np
import pytest

from hybrid.design.gradient import ChargeOptions, HybridCell, charge_metrics, charge_nlp, charge_protocol, \
    charge_start, cut_at_target, solve_charge
from hybrid.surrogate import HybridSurrogate

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
    # causality: row 0 shows current 0; the loaded row at the end of interval k depends on
    # currents up to k, the boundary row there (row 2k + 2) on the next one too
    voltage_rows = exact[: 2 * INTERVALS]
    latest = [0] + [k + (row % 2 == 0) for row in range(1, 2 * INTERVALS) for k in [(row - 1) // 2]]
    for row, last in enumerate(latest):
        assert np.all(voltage_rows[row, last + 1:] == 0.0), row


def test_solved_profile_replayed_by_the_closed_loop_charges_what_it_planned(cell_and_start, smoke_run_dir):
    cell, start = cell_and_start
    solve = solve_charge(cell, start, INTERVALS, OPTIONS)
    assert solve.feasible, solve.status
    assert solve.max_voltage_V <= OPTIONS.max_voltage_V + 1e-5
    assert solve.plating_margin_V >= OPTIONS.min_plating_margin_V - 1e-5
    surrogate = HybridSurrogate(smoke_run_dir)
    replay, = surrogate.evaluate([{}], charge_protocol(solve.c_rates, OPTIONS.period_s, OPTIONS))
    figures = charge_metrics(replay.columns, replay.capacity_Ah)
    # no step was cut short by the cycler's 4.2 V limit: the loaded voltage was constrained too
    assert figures["charged_soc"] == pytest.approx(solve.charged_soc, abs=2e-3)
    assert figures["max_charge_voltage_V"] <= OPTIONS.max_voltage_V + 2e-3


def test_cut_at_target_ends_the_profile_where_it_reaches_the_target():
    c_rates = np.array([4.0, 4.0, 2.0, 2.0])  # 60 s intervals: 0.0667 + 0.0667 + 0.0333 + 0.0333
    options = ChargeOptions(target_soc=0.15)
    cut, last_s = cut_at_target(c_rates, options)
    assert len(cut) == 3 and last_s == pytest.approx((0.15 - 2 * 4.0 / 60) * 3600 / 2.0)
