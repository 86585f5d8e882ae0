"""Facts about the locally generated drive cycles and the vehicle model."""

from __future__ import annotations

import numpy as np
import pytest

from sim.protocols.drive_cycles import (
    GRAVITY_MPS2,
    STYLES,
    Vehicle,
    dynamic_current_profile,
    speed_to_cell_current,
    stochastic_speed_trace,
)
from sim.errors import ConfigError

SEEDS = range(5)
HOUR_S = 3600.0


def pack_power_W(current_A: np.ndarray, vehicle: Vehicle, cell_voltage_V: float = 3.7) -> np.ndarray:
    """Battery pack power [W] from cell current [A] at a constant cell voltage."""
    return current_A * vehicle.cells_in_parallel * vehicle.cells_in_series * cell_voltage_V


def road_load_N(vehicle: Vehicle, speed_mps: np.ndarray | float) -> np.ndarray | float:
    """Aerodynamic drag plus rolling resistance [N], written out by hand."""
    aero_N = 0.5 * vehicle.air_density_kgpm3 * vehicle.drag_coefficient * vehicle.frontal_area_m2 * speed_mps**2
    return aero_N + vehicle.rolling_resistance * vehicle.mass_kg * GRAVITY_MPS2


# --- speed traces ---------------------------------------------------------------------


@pytest.mark.parametrize("style", list(STYLES))
def test_trace_is_deterministic_per_seed_and_differs_across_seeds(style: str) -> None:
    time_a, speed_a = stochastic_speed_trace(1200.0, 1.0, 7, style=style)
    time_b, speed_b = stochastic_speed_trace(1200.0, 1.0, 7, style=style)
    _, speed_other = stochastic_speed_trace(1200.0, 1.0, 8, style=style)
    np.testing.assert_array_equal(time_a, time_b)
    np.testing.assert_array_equal(speed_a, speed_b)
    assert not np.allclose(speed_a, speed_other)


def test_generator_seed_is_accepted_and_reproducible() -> None:
    _, from_generator = stochastic_speed_trace(600.0, 1.0, np.random.default_rng(3))
    _, from_int = stochastic_speed_trace(600.0, 1.0, 3)
    np.testing.assert_array_equal(from_generator, from_int)


def test_time_grid_spans_duration_at_period() -> None:
    time_s, speed_mps = stochastic_speed_trace(100.0, 0.5, 0)
    assert time_s.shape == speed_mps.shape == (201,)
    assert time_s[0] == 0.0 and time_s[-1] == pytest.approx(100.0)
    np.testing.assert_allclose(np.diff(time_s), 0.5)


@pytest.mark.parametrize("period_s", [0.1, 1.0, 5.0])
@pytest.mark.parametrize("style", list(STYLES))
def test_speed_non_negative_and_acceleration_bounded(style: str, period_s: float) -> None:
    for seed in SEEDS:
        time_s, speed_mps = stochastic_speed_trace(HOUR_S, period_s, seed, style=style)
        acceleration_mps2 = np.diff(speed_mps) / np.diff(time_s)
        assert speed_mps.min() >= 0.0
        # Bounded acceleration on any grid also means no jumps in speed.
        assert np.abs(acceleration_mps2).max() <= 3.0


@pytest.mark.parametrize("style", list(STYLES))
def test_acceleration_is_continuous_with_bounded_jerk(style: str) -> None:
    for seed in SEEDS:
        _, speed_mps = stochastic_speed_trace(HOUR_S, 0.1, seed, style=style)
        jerk_mps3 = np.diff(speed_mps, 2) / 0.1**2
        # A jump in acceleration of 0.1 m/s^2 would show here as a jerk of 1 / 0.1 = 10 m/s^3.
        assert np.abs(jerk_mps3).max() <= 2.0 * 1.01


@pytest.mark.parametrize("seed", SEEDS)
def test_urban_has_stops_and_udds_like_mean_speed(seed: int) -> None:
    _, speed_mps = stochastic_speed_trace(HOUR_S, 1.0, seed, style="urban")
    idle_fraction = np.mean(speed_mps < 0.1)
    assert 0.10 <= idle_fraction <= 0.40
    assert 5.0 <= speed_mps.mean() <= 15.0
    assert speed_mps.max() <= 25.0


@pytest.mark.parametrize("seed", SEEDS)
def test_highway_is_faster_with_few_stops(seed: int) -> None:
    _, urban_mps = stochastic_speed_trace(HOUR_S, 1.0, seed, style="urban")
    _, highway_mps = stochastic_speed_trace(HOUR_S, 1.0, seed, style="highway")
    assert 18.0 <= highway_mps.mean() <= 30.0
    assert highway_mps.mean() > urban_mps.mean() + 8.0
    assert np.mean(highway_mps < 0.1) < 0.06
    assert highway_mps.max() <= 36.0


def test_mixed_mean_speed_lies_between_urban_and_highway() -> None:
    mean_mps = {
        style: np.mean([stochastic_speed_trace(HOUR_S, 1.0, seed, style=style)[1].mean() for seed in SEEDS])
        for style in STYLES
    }
    assert mean_mps["urban"] < mean_mps["mixed"] < mean_mps["highway"]


@pytest.mark.parametrize(
    ("arguments", "style", "name"),
    [
        ((0.0, 1.0), "urban", "duration_s"),
        ((100.0, 0.0), "urban", "period_s"),
        ((100.0, 200.0), "urban", "period_s"),
        ((100.0, 1.0), "rural", "style"),
    ],
)
def test_bad_trace_arguments_raise_config_error_naming_them(arguments: tuple, style: str, name: str) -> None:
    with pytest.raises(ConfigError, match=name):
        stochastic_speed_trace(*arguments, 0, style=style)


# --- vehicle model --------------------------------------------------------------------


def test_cruise_energy_equals_road_losses_over_efficiency() -> None:
    vehicle = Vehicle()
    time_s = np.arange(0.0, 600.0 + 1e-9, 1.0)
    speed_mps = np.full_like(time_s, 25.0)
    current_A = speed_to_cell_current(time_s, speed_mps, vehicle)
    traction_energy_J = np.trapezoid(pack_power_W(current_A, vehicle) - vehicle.auxiliary_power_W, time_s)
    # Hand computation at 25 m/s: aero 0.5*1.2*0.29*2.2*25^2 = 239.25 N,
    # rolling 0.01*1500*9.81 = 147.15 N, 386.4 N * 25 m/s / 0.9 * 600 s = 6.44 MJ.
    expected_J = 386.4 * 25.0 / 0.9 * 600.0
    assert traction_energy_J == pytest.approx(expected_J, rel=0.01)


def test_acceleration_energy_equals_kinetic_energy_plus_losses_over_efficiency() -> None:
    vehicle = Vehicle(auxiliary_power_W=0.0)
    acceleration_mps2, duration_s = 2.0, 10.0
    time_s = np.linspace(0.0, duration_s, 1001)
    speed_mps = acceleration_mps2 * time_s
    current_A = speed_to_cell_current(time_s, speed_mps, vehicle)
    battery_energy_J = np.trapezoid(pack_power_W(current_A, vehicle), time_s)
    final_speed_mps = acceleration_mps2 * duration_s
    kinetic_J = 0.5 * vehicle.mass_kg * final_speed_mps**2
    # Integrals of F(v) v dt with v = a t, done by hand.
    aero_J = 0.5 * 1.2 * 0.29 * 2.2 * acceleration_mps2**3 * duration_s**4 / 4
    rolling_J = 0.01 * 1500 * GRAVITY_MPS2 * acceleration_mps2 * duration_s**2 / 2
    expected_J = (kinetic_J + aero_J + rolling_J) / vehicle.drivetrain_efficiency
    assert battery_energy_J == pytest.approx(expected_J, rel=0.01)


def test_braking_regenerates_a_negative_current() -> None:
    vehicle = Vehicle()
    time_s = np.linspace(0.0, 10.0, 101)
    speed_mps = 20.0 - 2.0 * time_s  # 2 m/s^2 braking from 20 m/s to rest
    current_A = speed_to_cell_current(time_s, speed_mps, vehicle)
    braking = speed_mps > 2.0
    assert np.all(current_A[braking] < 0)
    # Recovered power is wheel power x regen fraction x efficiency, minus the auxiliaries.
    wheel_W = (vehicle.mass_kg * -2.0 + road_load_N(vehicle, speed_mps)) * speed_mps
    expected_W = wheel_W * vehicle.regen_fraction * vehicle.drivetrain_efficiency + vehicle.auxiliary_power_W
    np.testing.assert_allclose(pack_power_W(current_A, vehicle)[braking], expected_W[braking], rtol=1e-9)


def test_no_regen_means_no_charging_current() -> None:
    time_s, speed_mps = stochastic_speed_trace(1200.0, 1.0, 2)
    current_A = speed_to_cell_current(time_s, speed_mps, Vehicle(regen_fraction=0.0))
    assert current_A.min() >= 0.0
    assert current_A.min() == pytest.approx(300.0 / (96 * 3.7 * 30))


def test_idle_draws_only_auxiliary_current() -> None:
    time_s = np.arange(10.0)
    current_A = speed_to_cell_current(time_s, np.zeros(10), Vehicle(), cell_voltage_V=4.0)
    np.testing.assert_allclose(current_A, 300.0 / (96 * 4.0) / 30)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("mass_kg", 0.0),
        ("drivetrain_efficiency", 1.2),
        ("regen_fraction", -0.1),
        ("cells_in_series", 0),
        ("cells_in_parallel", 2.5),
    ],
)
def test_invalid_vehicle_raises_config_error_naming_the_field(field: str, value: float) -> None:
    with pytest.raises(ConfigError, match=field):
        Vehicle(**{field: value})


def test_invalid_trace_raises_config_error() -> None:
    with pytest.raises(ConfigError, match="time_s"):
        speed_to_cell_current(np.array([0.0, 2.0, 1.0]), np.zeros(3), Vehicle())
    with pytest.raises(ConfigError, match="speed_mps"):
        speed_to_cell_current(np.arange(3.0), np.array([0.0, -1.0, 0.0]), Vehicle())


# --- current profiles -----------------------------------------------------------------


@pytest.mark.parametrize("style", list(STYLES))
def test_peak_scaling_gives_exactly_the_requested_peak(style: str) -> None:
    _, unscaled_A = dynamic_current_profile(1800.0, 1.0, 4, style=style)
    _, scaled_A = dynamic_current_profile(1800.0, 1.0, 4, style=style, peak_current_A=10.0)
    assert np.abs(scaled_A).max() == pytest.approx(10.0, rel=1e-12)
    # Scaling keeps the shape: one constant factor.
    np.testing.assert_allclose(scaled_A / unscaled_A, 10.0 / np.abs(unscaled_A).max())


def test_profile_has_discharge_and_regen_at_realistic_c_rates() -> None:
    _, current_A = dynamic_current_profile(HOUR_S, 1.0, 0, style="urban")
    # Default pack cells of 3-5 Ah: peaks of order 1C, net discharge over the cycle.
    assert 1.0 < current_A.max() < 10.0
    assert current_A.min() < 0.0
    assert current_A.mean() > 0.0


def test_non_positive_peak_raises_config_error() -> None:
    with pytest.raises(ConfigError, match="peak_current_A"):
        dynamic_current_profile(100.0, 1.0, 0, peak_current_A=0.0)
