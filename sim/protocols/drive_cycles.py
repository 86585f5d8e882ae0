"""Drive-cycle-like dynamic cell-current profiles made locally, without downloads.

The pipeline is ``stochastic_speed_trace`` (vehicle speed [m/s] vs time [s]) ->
``speed_to_cell_current`` (longitudinal vehicle model -> cell current [A]), joined by
``dynamic_current_profile``. Users with measured data can load a speed trace or a cell
current profile from CSV with :mod:`sim.protocols.profile_csv`.

A speed trace is a sequence of micro-trips: idle, accelerate to a random cruise speed,
cruise with small smooth noise (optionally changing speed a few times), decelerate to a
stop. Speed changes follow a half-cosine ramp and cruise noise is a sum of raised-cosine
waves, both with zero acceleration at their ends, so speed and acceleration stay
continuous and jerk stays bounded. The style parameters are tuned so that the
traces resemble the public certification cycles in their summary statistics:

- ``urban``: like the EPA UDDS (1369 s, mean 31.5 km/h = 8.8 m/s, max 91.2 km/h = 25.3 m/s,
  peak acceleration 1.48 m/s^2, about 18 % idle).
- ``highway``: like the EPA HWFET (765 s, mean 77.7 km/h = 21.6 m/s, max 96.4 km/h,
  no stops between start and end), with cruise speeds of 20-33 m/s and one short stop
  per 10-25 min trip.
- ``mixed``: each micro-trip is urban (probability 0.9) or highway (0.1); highway trips
  last about seven times longer, so a long trace spends a little over half its time in
  town, a rough stand-in for the WLTC class 3 (1800 s, mean 46.5 km/h = 12.9 m/s,
  max 131.3 km/h = 36.5 m/s). A short mixed trace may hold no highway trip at all.

Sign convention: cell current is positive on discharge, as in PyBaMM.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim.errors import ConfigError

GRAVITY_MPS2 = 9.81
KMH_TO_MPS = 1.0 / 3.6

# Cruise noise: number of raised-cosine modes, their summed acceleration bound [m/s^2]
# and the range of their wave periods [s] (slow drifts, as a driver holding a speed).
_NOISE_MODES = 2
_NOISE_ACCEL_LIMIT_MPS2 = 0.3
_NOISE_PERIOD_RANGE_S = (15.0, 60.0)
# Jerk bound of the speed ramps [m/s^3], a common passenger-comfort limit; it only
# lengthens small speed changes, whose drawn acceleration would be reached too abruptly.
_RAMP_JERK_LIMIT_MPS3 = 2.0
# Avoids zero-length segments when two drawn cruise speeds (nearly) coincide.
_MIN_SEGMENT_S = 1.0


def _require(name: str, value: object, condition: bool, allowed: str) -> None:
    """Raise ConfigError naming the argument ``name`` and its ``value`` unless ``condition``."""
    if not condition:
        raise ConfigError(f"{name} = {value!r}: {allowed}")


@dataclass(frozen=True)
class Vehicle:
    """Longitudinal model of a compact battery-electric car on a flat road.

    Default values describe a typical compact EV, not one specific car:

    - ``mass_kg`` = 1500: kerb mass plus a driver of compact EVs (about 1400-1700 kg).
    - ``drag_coefficient`` = 0.29 and ``frontal_area_m2`` = 2.2: typical compact cars
      (Cd 0.24-0.32, frontal area 2.0-2.4 m^2).
    - ``rolling_resistance`` = 0.01: passenger-car tyres on asphalt (0.008-0.012; e.g.
      Guzzella & Sciarretta, *Vehicle Propulsion Systems*, 3rd ed., 2013, ch. 2).
    - ``drivetrain_efficiency`` = 0.9: battery-to-wheel efficiency of inverter, motor and
      single-speed gearbox (about 0.85-0.95).
    - ``regen_fraction`` = 0.6: share of the braking power at the wheels that goes to the
      motor rather than the friction brakes.
    - ``auxiliary_power_W`` = 300: electronics, pumps and light climate load.
    - ``air_density_kgpm3`` = 1.2: air near sea level at about 20 degC.
    - ``cells_in_series`` = 96 and ``cells_in_parallel`` = 30: the common ~355 V
      architecture (96s, as in the Nissan Leaf and Tesla Model 3) with 30 cylindrical
      cells of about 3-5 Ah in parallel, i.e. a pack of roughly 40-50 kWh.
    """

    mass_kg: float = 1500.0
    drag_coefficient: float = 0.29
    frontal_area_m2: float = 2.2
    rolling_resistance: float = 0.01
    drivetrain_efficiency: float = 0.9
    regen_fraction: float = 0.6
    auxiliary_power_W: float = 300.0
    air_density_kgpm3: float = 1.2
    cells_in_series: int = 96
    cells_in_parallel: int = 30

    def __post_init__(self) -> None:
        for name in ("mass_kg", "air_density_kgpm3"):
            _require(name, getattr(self, name), getattr(self, name) > 0, "must be > 0")
        for name in ("drag_coefficient", "frontal_area_m2", "rolling_resistance", "auxiliary_power_W"):
            _require(name, getattr(self, name), getattr(self, name) >= 0, "must be >= 0")
        efficiency = self.drivetrain_efficiency
        _require("drivetrain_efficiency", efficiency, 0 < efficiency <= 1, "must be in (0, 1]")
        _require("regen_fraction", self.regen_fraction, 0 <= self.regen_fraction <= 1, "must be in [0, 1]")
        for name in ("cells_in_series", "cells_in_parallel"):
            count = getattr(self, name)
            _require(name, count, isinstance(count, int) and count >= 1, "must be an integer >= 1")


@dataclass(frozen=True)
class TripStyle:
    """Random ranges (low, high) that shape the micro-trips of one driving style.

    Speeds in m/s, durations in s, accelerations (peak of each ramp, positive) in m/s^2;
    ``speed_levels`` is the inclusive range of cruise speeds visited per trip.
    """

    cruise_speed_mps: tuple[float, float]
    cruise_duration_s: tuple[float, float]
    idle_duration_s: tuple[float, float]
    speed_levels: tuple[int, int]
    acceleration_mps2: tuple[float, float]
    deceleration_mps2: tuple[float, float]
    noise_amplitude_mps: float


URBAN = TripStyle(
    cruise_speed_mps=(6.0, 22.0),
    cruise_duration_s=(10.0, 60.0),
    idle_duration_s=(5.0, 40.0),
    speed_levels=(1, 2),
    acceleration_mps2=(0.8, 1.5),
    deceleration_mps2=(0.8, 1.5),
    noise_amplitude_mps=0.6,
)
HIGHWAY = TripStyle(
    cruise_speed_mps=(20.0, 33.0),
    cruise_duration_s=(60.0, 240.0),
    idle_duration_s=(5.0, 20.0),
    speed_levels=(3, 6),
    acceleration_mps2=(0.4, 1.0),
    deceleration_mps2=(0.4, 1.2),
    noise_amplitude_mps=1.0,
)
# Each micro-trip draws one (trip style, probability) pair of the named style.
STYLES: dict[str, tuple[tuple[TripStyle, float], ...]] = {
    "urban": ((URBAN, 1.0),),
    "highway": ((HIGHWAY, 1.0),),
    "mixed": ((URBAN, 0.9), (HIGHWAY, 0.1)),
}


@dataclass(frozen=True)
class _Segment:
    """One piece of a speed trace: a half-cosine ramp plus raised-cosine noise waves."""

    duration_s: float
    start_speed_mps: float
    end_speed_mps: float
    noise_amplitudes_mps: tuple[float, ...] = (0.0,) * _NOISE_MODES
    noise_waves: tuple[int, ...] = (1,) * _NOISE_MODES


def stochastic_speed_trace(
    duration_s: float,
    period_s: float,
    seed: int | np.random.Generator,
    *,
    style: str = "urban",
) -> tuple[np.ndarray, np.ndarray]:
    """Random drive-cycle-like vehicle speed trace.

    Args:
        duration_s: length of the trace [s], > 0; the trace is cut there, possibly mid-trip.
        period_s: sampling period [s], in (0, duration_s].
        seed: integer seed or numpy Generator; a given integer always gives the same trace.
        style: ``'urban'`` (UDDS-like), ``'highway'`` (HWFET-like) or ``'mixed'``.

    Returns:
        ``(time_s, speed_mps)``, both of shape (n,), time from 0 in steps of ``period_s``,
        speed >= 0, |acceleration| <= 1.5 m/s^2 (largest ramp peak), continuous
        acceleration and |jerk| <= 2 m/s^3.
    """
    if style not in STYLES:
        raise ConfigError(f"style = {style!r}: unknown driving style; allowed: {', '.join(STYLES)}")
    time_s = _time_grid(duration_s, period_s)
    rng = np.random.default_rng(seed)
    trip_styles, probabilities = zip(*STYLES[style])
    segments: list[_Segment] = []
    elapsed_s = 0.0
    # Strictly past the end, so every sample falls inside a segment.
    while elapsed_s <= duration_s:
        trip = _micro_trip(rng, trip_styles[rng.choice(len(trip_styles), p=probabilities)])
        segments.extend(trip)
        elapsed_s += sum(segment.duration_s for segment in trip)
    return time_s, _evaluate_segments(segments, time_s)


def speed_to_cell_current(
    time_s: np.ndarray,
    speed_mps: np.ndarray,
    vehicle: Vehicle,
    *,
    cell_voltage_V: float = 3.7,
) -> np.ndarray:
    """Cell current [A] (positive on discharge) that drives ``vehicle`` along a speed trace.

    Wheel power = (inertia + aerodynamic drag + rolling resistance) force x speed on a flat
    road. Traction draws wheel power / drivetrain efficiency from the pack; braking returns
    wheel power x regen fraction x drivetrain efficiency; auxiliaries always draw. Pack
    power is split over ``cells_in_series`` cells at ``cell_voltage_V`` each and
    ``cells_in_parallel`` strings.

    Args:
        time_s: strictly increasing sample times [s], shape (n,), n >= 2.
        speed_mps: vehicle speed [m/s] >= 0, shape (n,).
        vehicle: the vehicle and pack layout.
        cell_voltage_V: constant cell voltage [V] used to turn power into current, > 0.

    Returns:
        Cell current [A], shape (n,).
    """
    time_s, speed_mps = _validate_trace(time_s, speed_mps)
    _require("cell_voltage_V", cell_voltage_V, cell_voltage_V > 0, "must be > 0")
    wheel_power_W = _wheel_power(time_s, speed_mps, vehicle)
    efficiency = vehicle.drivetrain_efficiency
    battery_power_W = np.where(
        wheel_power_W > 0,
        wheel_power_W / efficiency,
        wheel_power_W * vehicle.regen_fraction * efficiency,
    )
    battery_power_W = battery_power_W + vehicle.auxiliary_power_W
    pack_current_A = battery_power_W / (vehicle.cells_in_series * cell_voltage_V)
    return pack_current_A / vehicle.cells_in_parallel


def dynamic_current_profile(
    duration_s: float,
    period_s: float,
    seed: int | np.random.Generator,
    *,
    style: str = "urban",
    peak_current_A: float | None = None,
    vehicle: Vehicle = Vehicle(),
) -> tuple[np.ndarray, np.ndarray]:
    """Random drive-cycle-like cell current profile.

    Args:
        duration_s, period_s, seed, style: as for :func:`stochastic_speed_trace`.
        peak_current_A: if given (> 0), the profile is scaled so that max |I| equals it [A],
            which lets a corpus set its peak C-rate; otherwise the vehicle model sets it.
        vehicle: the vehicle and pack layout.

    Returns:
        ``(time_s, current_A)``, both of shape (n,), current positive on discharge.
    """
    time_s, speed_mps = stochastic_speed_trace(duration_s, period_s, seed, style=style)
    current_A = speed_to_cell_current(time_s, speed_mps, vehicle)
    if peak_current_A is None:
        return time_s, current_A
    _require("peak_current_A", peak_current_A, peak_current_A > 0, "must be > 0")
    peak_model_A = np.max(np.abs(current_A))
    if peak_model_A == 0:
        raise ConfigError(
            f"peak_current_A = {peak_current_A!r}: the profile is zero everywhere (no driving and no "
            "auxiliary power) and cannot be scaled; use a longer duration or auxiliary_power_W > 0"
        )
    return time_s, current_A * (peak_current_A / peak_model_A)


def _time_grid(duration_s: float, period_s: float) -> np.ndarray:
    """Sample times [s] from 0 to at most ``duration_s`` in steps of ``period_s``."""
    _require("duration_s", duration_s, duration_s > 0, "must be > 0")
    _require("period_s", period_s, 0 < period_s <= duration_s, f"must be in (0, duration_s = {duration_s}]")
    # The small tolerance keeps the end point when duration_s / period_s is an integer.
    sample_count = int(np.floor(duration_s / period_s + 1e-9)) + 1
    return np.arange(sample_count) * period_s


def _uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    """One uniform draw in ``bounds``."""
    return float(rng.uniform(*bounds))


def _micro_trip(rng: np.random.Generator, style: TripStyle) -> list[_Segment]:
    """Idle, accelerate, cruise at one or more speeds, decelerate to a stop."""
    segments = [_Segment(_uniform(rng, style.idle_duration_s), 0.0, 0.0)]
    level_count = int(rng.integers(style.speed_levels[0], style.speed_levels[1] + 1))
    speed_mps = 0.0
    for _ in range(level_count):
        cruise_speed_mps = _uniform(rng, style.cruise_speed_mps)
        segments.append(_ramp(rng, speed_mps, cruise_speed_mps, style))
        segments.append(_cruise(rng, cruise_speed_mps, _uniform(rng, style.cruise_duration_s), style))
        speed_mps = cruise_speed_mps
    segments.append(_ramp(rng, speed_mps, 0.0, style))
    return segments


def _ramp(rng: np.random.Generator, start_mps: float, end_mps: float, style: TripStyle) -> _Segment:
    """Half-cosine speed change with peak acceleration drawn from the style, jerk-limited."""
    bounds = style.acceleration_mps2 if end_mps > start_mps else style.deceleration_mps2
    peak_accel_mps2 = _uniform(rng, bounds)
    change_mps = abs(end_mps - start_mps)
    # v = v0 + (v1 - v0) (1 - cos(pi t / T)) / 2 has peak acceleration |dv| pi / (2 T)
    # and peak jerk |dv| pi^2 / (2 T^2).
    accel_duration_s = change_mps * np.pi / (2 * peak_accel_mps2)
    jerk_duration_s = np.pi * np.sqrt(change_mps / (2 * _RAMP_JERK_LIMIT_MPS3))
    duration_s = max(accel_duration_s, jerk_duration_s, _MIN_SEGMENT_S)
    return _Segment(duration_s, start_mps, end_mps)


def _cruise(rng: np.random.Generator, speed_mps: float, duration_s: float, style: TripStyle) -> _Segment:
    """Constant speed plus noise waves with zero value and slope at both ends."""
    waves = tuple(max(1, round(duration_s / _uniform(rng, _NOISE_PERIOD_RANGE_S))) for _ in range(_NOISE_MODES))
    # Each mode gets an equal share of the amplitude budget (at most a quarter of the
    # speed, so speed stays > 0) and of the acceleration bound; a mode
    # A (1 - cos(2 pi n t / T)) / 2 has peak acceleration |A| pi n / T.
    budget_mps = min(style.noise_amplitude_mps, 0.25 * speed_mps) / _NOISE_MODES
    amplitudes = []
    for count in waves:
        bound_mps = min(budget_mps, _NOISE_ACCEL_LIMIT_MPS2 * duration_s / (np.pi * count * _NOISE_MODES))
        amplitudes.append(_uniform(rng, (-bound_mps, bound_mps)))
    return _Segment(duration_s, speed_mps, speed_mps, tuple(amplitudes), waves)


def _evaluate_segments(segments: list[_Segment], time_s: np.ndarray) -> np.ndarray:
    """Speed [m/s] of the concatenated ``segments`` at ``time_s`` (all inside them)."""
    durations = np.array([segment.duration_s for segment in segments])
    starts = np.array([segment.start_speed_mps for segment in segments])
    ends = np.array([segment.end_speed_mps for segment in segments])
    amplitudes = np.array([segment.noise_amplitudes_mps for segment in segments])  # (segments, modes)
    waves = np.array([segment.noise_waves for segment in segments])  # (segments, modes)
    boundaries = np.cumsum(durations)
    index = np.searchsorted(boundaries, time_s, side="right")
    phase = (time_s - (boundaries[index] - durations[index])) / durations[index]  # in [0, 1)
    ramp = starts[index] + (ends[index] - starts[index]) * (1 - np.cos(np.pi * phase)) / 2
    raised_cosines = (1 - np.cos(2 * np.pi * waves[index] * phase[:, None])) / 2  # (n, modes)
    noise = np.sum(amplitudes[index] * raised_cosines, axis=1)
    # Rounding can leave a ramp's end at -1e-16 m/s; speed is never negative.
    return np.maximum(ramp + noise, 0.0)


def _validate_trace(time_s: np.ndarray, speed_mps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return float arrays; raise ConfigError unless they form a valid speed trace."""
    time_s = np.asarray(time_s, dtype=float)
    speed_mps = np.asarray(speed_mps, dtype=float)
    if time_s.ndim != 1 or time_s.size < 2:
        raise ConfigError(f"time_s: got shape {time_s.shape}; expected a 1-D array of at least 2 samples")
    if speed_mps.shape != time_s.shape:
        raise ConfigError(f"speed_mps: got shape {speed_mps.shape}; expected the shape of time_s {time_s.shape}")
    if not (np.all(np.isfinite(time_s)) and np.all(np.diff(time_s) > 0)):
        raise ConfigError("time_s: expected finite, strictly increasing sample times")
    if not (np.all(np.isfinite(speed_mps)) and np.all(speed_mps >= 0)):
        raise ConfigError(f"speed_mps: got minimum {np.min(speed_mps)}; expected finite speeds >= 0")
    return time_s, speed_mps


def _wheel_power(time_s: np.ndarray, speed_mps: np.ndarray, vehicle: Vehicle) -> np.ndarray:
    """Power [W] at the wheels (negative while braking) on a flat road, shape (n,)."""
    acceleration_mps2 = np.gradient(speed_mps, time_s)
    inertia_N = vehicle.mass_kg * acceleration_mps2
    aero_N = 0.5 * vehicle.air_density_kgpm3 * vehicle.drag_coefficient * vehicle.frontal_area_m2 * speed_mps**2
    rolling_N = vehicle.rolling_resistance * vehicle.mass_kg * GRAVITY_MPS2
    return (inertia_N + aero_N + rolling_N) * speed_mps
