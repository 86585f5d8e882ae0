"""Facts about the design metrics: they read capacity, energy, pulse power, retention, plating
margin and charge time off a trajectory as defined (with known answers for constant-current and
constant-voltage segments), the densities divide by the mass model, and the voltage RMSE pairs
the phases of two runs of a protocol."""

from __future__ import annotations

import numpy as np
import pytest

from hybrid.surrogate.mass import MassVolume
from hybrid.surrogate.metrics import METRICS, MetricOptions, trajectory_metrics, voltage_rmse_mV


def _trajectory(*segments: tuple[float, float, float, float, float]) -> dict[str, np.ndarray]:
    """Concatenate (duration [s], step [s], current [A], start voltage, end voltage) segments;
    each segment's voltage runs linearly over its samples."""
    time_s, current, voltage, start = [], [], [], 0.0
    for duration, step, amps, v_start, v_end in segments:
        count = int(round(duration / step))
        time_s.append(start + step * np.arange(count))
        current.append(np.full(count, amps))
        voltage.append(np.linspace(v_start, v_end, count))
        start += duration
    columns = {"Time [s]": np.concatenate(time_s), "Current [A]": np.concatenate(current),
               "Voltage [V]": np.concatenate(voltage)}
    columns["Cell temperature [K]"] = 298.15 + 0.01 * np.arange(len(columns["Time [s]"]))
    columns["X-averaged negative electrode surface potential difference [V]"] = np.where(
        columns["Current [A]"] < 0, 0.05, -1.0)  # negative only while discharging: never counted
    return columns


def test_metrics_read_a_trajectory_as_defined():
    # rest, a 10 s 15 A pulse, rest, CC discharge to 2.5 V (5 A), CC charge, CC discharge to 2.5 V
    columns = _trajectory((10, 1, 0.0, 4.1, 4.1), (10, 1, 15.0, 3.95, 3.95), (60, 1, 0.0, 4.05, 4.05),
                          (3600, 60, 5.0, 4.0, 2.5), (600, 60, 0.0, 3.2, 3.3), (3600, 60, -4.0, 3.5, 4.2),
                          (600, 60, 0.0, 4.1, 4.1), (3000, 60, 5.0, 4.0, 2.5), (60, 60, 0.0, 3.0, 3.0))
    columns["X-averaged negative electrode surface potential difference [V]"][-70] = 0.02  # inside the charge
    metrics = trajectory_metrics(columns, capacity_Ah=5.0, window_V=(2.5, 4.2))

    # the first discharge reaches 2.5 V at its last sample, 59 minutes after it started
    assert metrics["discharge_capacity_Ah"] == pytest.approx(5.0 * 59 / 60, rel=1e-9)
    assert metrics["discharge_energy_Wh"] == pytest.approx(5.0 * 59 / 60 * (4.0 + 2.5) / 2, rel=0.005)
    # R = (4.1 - 3.95) / 15 = 10 mOhm; P = 2.5 (4.1 - 2.5) / R
    assert metrics["power_capability_W"] == pytest.approx(2.5 * 1.6 / 0.01, rel=1e-9)
    # only discharges after a charge count: the last one alone, so no retention yet
    assert np.isnan(metrics["capacity_retention_pct"])
    assert metrics["charge_time_min"] == pytest.approx(60.0)
    assert metrics["charged_soc"] == pytest.approx(4.0 / 5.0)
    assert metrics["plating_margin_V"] == pytest.approx(0.02)
    assert metrics["max_charge_voltage_V"] == pytest.approx(4.2)
    assert metrics["max_temperature_K"] == pytest.approx(columns["Cell temperature [K]"].max())
    assert np.isnan(metrics["gravimetric_energy_density_Wh_kg"])  # no mass given


def test_retention_compares_discharges_that_follow_a_charge():
    charge_and_discharge = [(3600, 60, -4.0, 3.5, 4.2), (600, 60, 0.0, 4.1, 4.1)]
    columns = _trajectory((3600, 60, 5.0, 4.0, 2.5), (600, 60, 0.0, 3.2, 3.2),
                          *charge_and_discharge, (3600, 60, 5.0, 4.0, 2.5), (600, 60, 0.0, 3.2, 3.2),
                          *charge_and_discharge, (3000, 60, 5.0, 4.0, 2.5), (60, 60, 0.0, 3.0, 3.0))
    metrics = trajectory_metrics(columns, capacity_Ah=5.0, window_V=(2.5, 4.2))
    assert metrics["capacity_retention_pct"] == pytest.approx(100.0 * 49 / 59, rel=1e-9)


def test_the_charge_metrics_score_the_charge_metric_options_name():
    reference_charge = [(3600, 60, -2.5, 3.5, 4.2), (1800, 60, -0.5, 4.2, 4.2), (600, 60, 0.0, 4.1, 4.1)]
    fast_charge = [(1200, 60, -10.0, 3.5, 4.15), (600, 60, 0.0, 4.0, 4.0)]
    columns = _trajectory((3600, 60, 5.0, 4.0, 2.5), (600, 60, 0.0, 3.2, 3.2), *reference_charge,
                          (3540, 60, 5.0, 4.0, 2.5), (600, 60, 0.0, 3.2, 3.2), *fast_charge,
                          (2400, 60, 5.0, 4.0, 2.5), (600, 60, 0.0, 3.2, 3.2))
    first = trajectory_metrics(columns, capacity_Ah=5.0, window_V=(2.5, 4.2))
    fast = trajectory_metrics(columns, capacity_Ah=5.0, window_V=(2.5, 4.2), options=MetricOptions(charge_index=1))
    assert first["charge_time_min"] == pytest.approx(90.0) and first["max_charge_voltage_V"] == pytest.approx(4.2)
    assert fast["charge_time_min"] == pytest.approx(20.0)
    assert fast["charged_soc"] == pytest.approx(10.0 * 20 / 60 / 5.0)
    assert fast["max_charge_voltage_V"] == pytest.approx(4.15)
    assert fast["capacity_retention_pct"] == first["capacity_retention_pct"]  # not a charge metric


def test_a_cc_charge_ends_where_the_corrected_voltage_reaches_the_limit_the_physics_did_not():
    # 60 min at 4 A; the physics (protocol) voltage stays below 4.2 V, the corrected one reaches
    # 4.2 V half way between the samples at 30 and 31 minutes
    columns = _trajectory((3600, 60, -4.0, 3.5, 4.1), (600, 60, 0.0, 4.0, 4.0))
    columns["Protocol voltage [V]"] = columns["Voltage [V]"].copy()
    columns["Voltage [V]"] = np.where(columns["Time [s]"] < 1800, 3.9, 4.3)
    columns["Voltage [V]"][30] = 4.1
    metrics = trajectory_metrics(columns, capacity_Ah=5.0, window_V=(2.5, 4.2))
    assert metrics["charge_time_min"] == pytest.approx(30.5)
    assert metrics["charged_soc"] == pytest.approx(4.0 * 30.5 / 60 / 5.0)
    # with a CV hold (the protocol voltage sits at the limit) the physics-controlled charge stands
    columns["Protocol voltage [V]"][50:60] = 4.2
    held = trajectory_metrics(columns, capacity_Ah=5.0, window_V=(2.5, 4.2))
    assert held["charge_time_min"] == pytest.approx(60.0)


def test_voltage_rmse_pairs_phases_shifted_by_a_cut_off():
    # the reference's discharge runs a minute longer; then both rest. Every voltage is 10 mV apart
    estimate = _trajectory((600, 60, 0.0, 4.1, 4.1), (3000, 60, 5.0, 4.0, 3.0), (600, 60, 0.0, 3.5, 3.5))
    reference = _trajectory((600, 60, 0.0, 4.09, 4.09), (3060, 60, 5.0, 3.99, 2.99 - 1.0 / 49),
                            (600, 60, 0.0, 3.49, 3.49))
    assert voltage_rmse_mV(estimate, reference, threshold_A=0.1) == pytest.approx(10.0, rel=1e-6)
    # until the discharges' ends diverge: the first rest and the discharge, not the last rest
    reference["Voltage [V]"][-10:] += 1.0
    assert voltage_rmse_mV(estimate, reference, threshold_A=0.1, until_divergence=True) == pytest.approx(10.0)


def test_a_discharge_stopped_by_time_is_not_a_capacity_measurement():
    columns = _trajectory((10, 1, 0.0, 4.1, 4.1), (1800, 60, 5.0, 4.0, 3.7), (600, 60, 0.0, 3.8, 3.8))
    metrics = trajectory_metrics(columns, capacity_Ah=5.0, window_V=(2.5, 4.2))
    assert np.isnan(metrics["discharge_capacity_Ah"])


def _columns(time_s, current, voltage) -> dict[str, np.ndarray]:
    return {"Time [s]": np.asarray(time_s, dtype=float), "Current [A]": np.asarray(current, dtype=float),
            "Voltage [V]": np.asarray(voltage, dtype=float)}


def test_constant_current_constant_voltage_discharge_counts_charge_and_energy_to_the_cut_off():
    # 5 A for 59 one-minute samples (30 at 3.7 V, 29 at 3.3 V), the 60th sample on the 2.5 V
    # cut-off, then a constant-voltage hold at 2.5 V with a tapering current, then rest
    voltage = [3.7] * 30 + [3.3] * 29 + [2.5] * 4 + [3.0] * 5
    current = [5.0] * 60 + [2.0, 1.0, 0.5] + [0.0] * 5
    columns = _columns(60.0 * np.arange(len(voltage)), current, voltage)
    metrics = trajectory_metrics(columns, capacity_Ah=5.0, window_V=(2.5, 4.2))
    # a sample holds its current until the next: the capacity ends where the voltage reaches
    # the cut-off, so the hold after it does not count
    assert metrics["discharge_capacity_Ah"] == pytest.approx(5.0 * 59 / 60, rel=1e-12)
    assert metrics["discharge_energy_Wh"] == pytest.approx(5.0 * (30 * 3.7 + 29 * 3.3) / 60, rel=1e-12)
    assert np.isnan(metrics["charge_time_min"]) and np.isnan(metrics["max_charge_voltage_V"])


def test_constant_current_constant_voltage_charge_counts_the_hold():
    # 4 A for 30 minutes up to 4.2 V, held at 4.2 V for 3 minutes (2, 1, 0.5 A), then rest
    voltage = list(np.linspace(3.5, 4.2, 30)) + [4.2] * 3 + [4.1] * 5
    current = [-4.0] * 30 + [-2.0, -1.0, -0.5] + [0.0] * 5
    columns = _columns(60.0 * np.arange(len(voltage)), current, voltage)
    metrics = trajectory_metrics(columns, capacity_Ah=5.0, window_V=(2.5, 4.2))
    assert metrics["charge_time_min"] == pytest.approx(33.0)
    assert metrics["charged_soc"] == pytest.approx((4.0 * 30 + 2.0 + 1.0 + 0.5) / 60 / 5.0, rel=1e-12)
    assert metrics["max_charge_voltage_V"] == pytest.approx(4.2)
    assert np.isnan(metrics["discharge_capacity_Ah"])  # no discharge


def test_densities_divide_by_the_cell_mass_and_volume():
    columns = _trajectory((10, 1, 0.0, 4.1, 4.1), (10, 1, 15.0, 3.95, 3.95), (60, 1, 0.0, 4.05, 4.05),
                          (3600, 60, 5.0, 4.0, 2.5), (60, 60, 0.0, 3.2, 3.2))
    mass = MassVolume(mass_kg=0.07, volume_m3=2.5e-5, parts_kg={}, stack_volume_m3=2.0e-5)
    metrics = trajectory_metrics(columns, capacity_Ah=5.0, window_V=(2.5, 4.2), mass=mass)
    assert set(metrics) == set(METRICS)
    assert metrics["cell_mass_kg"] == 0.07 and metrics["cell_volume_L"] == pytest.approx(0.025)
    assert metrics["gravimetric_energy_density_Wh_kg"] == pytest.approx(metrics["discharge_energy_Wh"] / 0.07)
    assert metrics["volumetric_energy_density_Wh_L"] == pytest.approx(metrics["discharge_energy_Wh"] / 0.025)
    assert metrics["gravimetric_power_density_W_kg"] == pytest.approx(metrics["power_capability_W"] / 0.07)
