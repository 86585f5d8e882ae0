"""A classical equivalent-circuit model (ECM): OCV(SOC) + R0 + two RC pairs + one-state hysteresis.

The baseline a battery management system would run (Plett's "enhanced self-correcting" cell
model without its instantaneous hysteresis term), with discharge current positive::

    soc[k] = soc[k-1] - i[k] dt[k] / (3600 Q)
    v_j[k] = a_j[k] v_j[k-1] + (1 - a_j[k]) i[k],     a_j = exp(-dt / tau_j)      (unit-gain RC, j = 1, 2)
    h[k]   = b[k] h[k-1] - (1 - b[k]) sign(i[k]),      b = exp(-gamma |i| dt / (3600 Q))
    V[k]   = OCV(soc[k]) + offset + M h[k] - R0 i[k] - R1 v_1[k] - R2 v_2[k]

Each current sample is held over the interval that ends at it (the grid need not be uniform).
``h`` runs from -1 (discharge branch) to +1 (charge branch); a record that starts after a full
charge starts at +1.

Given the time constants, the hysteresis rate and the capacity, the voltage is linear in (offset, M, R0, R1,
R2), so :func:`fit_ecm` solves those by bounded linear least squares inside a scipy
least-squares search over (log tau_1, log tau_2, log gamma, log capacity factor) (variable projection): a
nonlinear fit that needs no starting guesses for the resistances. :func:`interpolate_parameters`
carries parameters fitted at a few temperatures to another one (by default Arrhenius in the
resistances and time constants).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields

import numpy as np
from scipy.optimize import least_squares, lsq_linear

from hybrid.evaluate import rmse_mV
from sim.errors import ConfigError, DataError

# Search bounds of the nonlinear parameters: fast and slow RC time constants [s] (the fast
# pair covers ohmic-like transients up to minutes, the slow one diffusion up to hours) and the
# hysteresis rate (dimensionless, per unit of SOC swept).
TAU1_BOUNDS_S = (1.0, 300.0)
TAU2_BOUNDS_S = (300.0, 20000.0)
GAMMA_BOUNDS = (1.0, 2000.0)
# The fitted capacity as a factor on each record's given capacity: a dynamic test that stops
# short of empty, or a slow OCV test at another rate, sees a few per cent more or less charge.
CAPACITY_FACTOR_BOUNDS = (0.9, 1.1)
OFFSET_BOUND_V = 0.2


@dataclass(frozen=True)
class OCVCurve:
    """Open-circuit voltage [V] against state of charge (0..1), increasing SOC; linear in between,
    held at the end values outside."""

    soc: np.ndarray
    voltage_V: np.ndarray

    def __post_init__(self) -> None:
        soc, voltage = np.asarray(self.soc, float), np.asarray(self.voltage_V, float)
        if soc.ndim != 1 or soc.shape != voltage.shape or len(soc) < 2:
            raise DataError(f"OCVCurve: soc {soc.shape} and voltage_V {voltage.shape} must be 1-D, equal, >= 2 points")
        if np.any(np.diff(soc) <= 0) or not np.all(np.isfinite(voltage)):
            raise DataError("OCVCurve: soc must increase strictly and voltages be finite")

    def __call__(self, soc: np.ndarray) -> np.ndarray:
        return np.interp(soc, self.soc, self.voltage_V)

    @classmethod
    def from_branches(cls, discharge_soc: np.ndarray, discharge_V: np.ndarray, charge_soc: np.ndarray,
                      charge_V: np.ndarray, points: int = 201) -> OCVCurve:
        """The mean of a slow discharge and a slow charge branch (each V against SOC, any order):
        at a low rate the resistive drop and the hysteresis are opposite on the two branches and
        cancel in the mean. Each branch is held at its end values where it does not reach."""
        grid = np.linspace(0.0, 1.0, points)
        branches = [_monotone_branch(np.asarray(soc, float), np.asarray(voltage, float), grid)
                    for soc, voltage in ((discharge_soc, discharge_V), (charge_soc, charge_V))]
        return cls(grid, 0.5 * (branches[0] + branches[1]))


def _monotone_branch(soc: np.ndarray, voltage: np.ndarray, grid: np.ndarray) -> np.ndarray:
    order = np.argsort(soc, kind="stable")
    soc, voltage = soc[order], voltage[order]
    unique, first = np.unique(soc, return_index=True)
    return np.interp(grid, unique, voltage[first])


@dataclass(frozen=True)
class ECMParameters:
    """One temperature's ECM: capacity [Ah], resistances [Ohm], time constants [s], hysteresis
    magnitude M [V] and rate gamma [-], and an offset [V] added to the OCV curve."""

    capacity_Ah: float
    r0_ohm: float
    r1_ohm: float
    tau1_s: float
    r2_ohm: float
    tau2_s: float
    hysteresis_V: float
    hysteresis_rate: float
    ocv_offset_V: float = 0.0

    def to_dict(self) -> dict[str, float]:
        return {name: float(value) for name, value in asdict(self).items()}


@dataclass(frozen=True)
class ECMOutput:
    """Voltage [V] and SOC (0..1) of an ECM run, both (rows,)."""

    voltage_V: np.ndarray
    soc: np.ndarray


def _time_steps(time_s: np.ndarray, current_A: np.ndarray) -> np.ndarray:
    time_s, current_A = np.asarray(time_s, float), np.asarray(current_A, float)
    if time_s.ndim != 1 or time_s.shape != current_A.shape or len(time_s) < 2:
        raise DataError(f"ECM: time_s {time_s.shape} and current_A {current_A.shape} must be 1-D, equal, >= 2 rows")
    steps = np.diff(time_s, prepend=time_s[0])
    if np.any(steps[1:] <= 0) or not np.all(np.isfinite(current_A)):
        raise DataError("ECM: time must increase strictly and the current be finite")
    return steps


def _relax(decay: np.ndarray, target: np.ndarray, start: float) -> np.ndarray:
    """x[k] = decay[k] x[k-1] + (1 - decay[k]) target[k], x[-1] = start; (rows,)."""
    out = np.empty(len(decay))
    state = float(start)
    for k, (a, u) in enumerate(zip(decay.tolist(), target.tolist())):
        state = a * state + (1.0 - a) * u
        out[k] = state
    return out


def coulomb_soc(time_s: np.ndarray, current_A: np.ndarray, capacity_Ah: float, initial_soc: float = 1.0) -> np.ndarray:
    """SOC (rows,) by coulomb counting of the held current from ``initial_soc``."""
    steps = _time_steps(time_s, current_A)
    return initial_soc - np.cumsum(np.asarray(current_A, float) * steps) / (3600.0 * capacity_Ah)


def _rc_state(steps: np.ndarray, current_A: np.ndarray, tau_s: float) -> np.ndarray:
    return _relax(np.exp(-steps / tau_s), current_A, 0.0)


def _hysteresis_state(steps: np.ndarray, current_A: np.ndarray, rate: float, capacity_Ah: float,
                      initial: float) -> np.ndarray:
    decay = np.exp(-rate * np.abs(current_A) * steps / (3600.0 * capacity_Ah))
    return _relax(decay, -np.sign(current_A), initial)


def simulate_ecm(time_s: np.ndarray, current_A: np.ndarray, ocv: OCVCurve, parameters: ECMParameters, *,
                 initial_soc: float = 1.0, initial_hysteresis: float = 1.0) -> ECMOutput:
    """Run the ECM over a current record (discharge positive, A) on the grid ``time_s`` [s]."""
    steps = _time_steps(time_s, current_A)
    current = np.asarray(current_A, float)
    soc = coulomb_soc(time_s, current, parameters.capacity_Ah, initial_soc)
    voltage = (ocv(soc) + parameters.ocv_offset_V
               + parameters.hysteresis_V * _hysteresis_state(steps, current, parameters.hysteresis_rate,
                                                            parameters.capacity_Ah, initial_hysteresis)
               - parameters.r0_ohm * current
               - parameters.r1_ohm * _rc_state(steps, current, parameters.tau1_s)
               - parameters.r2_ohm * _rc_state(steps, current, parameters.tau2_s))
    return ECMOutput(voltage, soc)


@dataclass(frozen=True)
class ECMRecord:
    """A record to fit on: time [s], current [A] (discharge positive), voltage [V], the
    record's nominal capacity [Ah] (the start of the capacity fit), and its initial SOC and
    hysteresis state (known, not fitted)."""

    time_s: np.ndarray
    current_A: np.ndarray
    voltage_V: np.ndarray
    capacity_Ah: float
    initial_soc: float = 1.0
    initial_hysteresis: float = 1.0


@dataclass(frozen=True)
class ECMFit:
    """Fitted parameters and the fit's RMSE [mV] over the records and its evaluation count."""

    parameters: ECMParameters
    rmse_mV: float
    evaluations: int


def fit_ecm(records: Sequence[ECMRecord], ocv: OCVCurve, *, fit_capacity: bool = True,
            max_evaluations: int = 80) -> ECMFit:
    """Fit one temperature's ECM to ``records`` by variable projection (see the module
    docstring). All parameters are shared by the records; the capacity is the mean of their
    capacities times a fitted factor within CAPACITY_FACTOR_BOUNDS (``fit_capacity``), else
    that mean."""
    if not records:
        raise ConfigError("fit_ecm: records is empty; allowed: at least one record")
    for record in records:
        _time_steps(record.time_s, record.current_A)
        if np.shape(record.voltage_V) != np.shape(record.time_s) or not np.all(np.isfinite(record.voltage_V)):
            raise DataError("fit_ecm: each record's voltage_V must be finite and as long as its time_s")
    capacity = float(np.mean([record.capacity_Ah for record in records]))
    limits = [TAU1_BOUNDS_S, TAU2_BOUNDS_S, GAMMA_BOUNDS] + ([CAPACITY_FACTOR_BOUNDS] if fit_capacity else [])
    bounds = np.log(np.array(limits)).T  # (2, nonlinear parameters)

    def residuals(log_values: np.ndarray) -> np.ndarray:
        return _project(records, ocv, np.exp(log_values))[1]

    start = np.log([20.0, 2000.0, 100.0] + ([1.0] if fit_capacity else []))
    # a coarse scan of the hysteresis rate first: the cost is flat over much of it
    scan = np.log(np.geomspace(*GAMMA_BOUNDS, 7))
    start[2] = min(scan, key=lambda value: float(np.sum(residuals(np.r_[start[:2], value, start[3:]]) ** 2)))
    result = least_squares(residuals, start, bounds=bounds, max_nfev=max_evaluations, method="trf")
    nonlinear = np.exp(result.x)
    (offset, magnitude, r0, r1, r2), errors = _project(records, ocv, nonlinear)
    tau1, tau2, rate = nonlinear[:3]
    factor = nonlinear[3] if fit_capacity else 1.0
    parameters = ECMParameters(capacity * factor, r0, r1, tau1, r2, tau2, magnitude, rate, offset)
    return ECMFit(parameters, rmse_mV(errors), int(result.nfev) + len(scan))


def _design(record: ECMRecord, tau1: float, tau2: float, rate: float, capacity_Ah: float) -> np.ndarray:
    """(rows, 5): the voltage's sensitivity to offset, M, R0, R1, R2."""
    steps = _time_steps(record.time_s, record.current_A)
    current = np.asarray(record.current_A, float)
    hysteresis = _hysteresis_state(steps, current, rate, capacity_Ah, record.initial_hysteresis)
    return np.column_stack([np.ones_like(current), hysteresis, -current,
                            -_rc_state(steps, current, tau1), -_rc_state(steps, current, tau2)])


def _project(records: Sequence[ECMRecord], ocv: OCVCurve, nonlinear: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Best (offset, M, R0, R1, R2) for the nonlinear (tau1, tau2, gamma[, capacity factor])
    and the residuals [V] over all records."""
    tau1, tau2, rate = nonlinear[:3]
    factor = nonlinear[3] if len(nonlinear) > 3 else 1.0
    designs, targets = [], []
    for record in records:
        capacity = record.capacity_Ah * factor
        soc = coulomb_soc(record.time_s, record.current_A, capacity, record.initial_soc)
        designs.append(_design(record, tau1, tau2, rate, capacity))
        targets.append(np.asarray(record.voltage_V, float) - ocv(soc))
    design, target = np.concatenate(designs), np.concatenate(targets)
    lower = [-OFFSET_BOUND_V, 0.0, 0.0, 0.0, 0.0]
    upper = [OFFSET_BOUND_V, np.inf, np.inf, np.inf, np.inf]
    solution = lsq_linear(design, target, bounds=(lower, upper), method="bvls")
    return solution.x, design @ solution.x - target


# How each kind of parameter is carried between temperatures (see interpolate_parameters).
INTERPOLATION_SCALES = ("linear", "log", "arrhenius")
# Thermally activated: resistances and time constants.
KINETIC_FIELDS = ("r0_ohm", "r1_ohm", "r2_ohm", "tau1_s", "tau2_s")
ABSOLUTE_ZERO_C = -273.15


def check_scale(scale: str) -> None:
    """A ConfigError unless ``scale`` is one of INTERPOLATION_SCALES."""
    if scale not in INTERPOLATION_SCALES:
        raise ConfigError(f"interpolate_parameters: scale = {scale!r}; allowed: {', '.join(INTERPOLATION_SCALES)}")


def interpolate_parameters(fitted: dict[float, ECMParameters], temperature: float,
                           scale: str = "arrhenius") -> ECMParameters:
    """Parameters at ``temperature`` [degC] from those fitted at the temperatures [degC] of ``fitted``.

    The resistances and time constants (KINETIC_FIELDS) follow ``scale``, piecewise between the
    two neighbouring fitted temperatures:

    - "arrhenius": log(value) linear in 1/T (T [K]), i.e. value = A exp(Ea / (R T)) on each
      segment; beyond the fitted range extrapolated with the slope (activation energy) of the
      nearest segment, as an Arrhenius fit does.
    - "log": log(value) linear in temperature; extrapolated the same way.
    - "linear": value linear in temperature; held at the end values beyond the range (a line
      through falling resistances turns negative).

    A parameter fitted as zero (or less) at some temperature has no logarithm, so it is
    interpolated linearly. The other fields are always linear in temperature and held beyond
    the range. A single fitted temperature gives its parameters.
    """
    check_scale(scale)
    if not fitted:
        raise ConfigError("interpolate_parameters: no fitted temperatures")
    temperatures = sorted(fitted)
    for value in (temperature, *temperatures):
        if not (math.isfinite(value) and value > ABSOLUTE_ZERO_C):
            raise ConfigError(f"interpolate_parameters: temperature = {value!r} degC; allowed: a finite number "
                              f"above {ABSOLUTE_ZERO_C} degC")
    if len(temperatures) == 1:
        return fitted[temperatures[0]]
    values = {}
    for field in fields(ECMParameters):
        fitted_values = np.array([getattr(fitted[t], field.name) for t in temperatures])
        values[field.name] = _interpolate_field(field.name, np.array(temperatures), fitted_values, temperature, scale)
    return ECMParameters(**values)


def _interpolate_field(name: str, temperatures: np.ndarray, fitted_values: np.ndarray, temperature: float,
                       scale: str) -> float:
    """One field of ECMParameters at ``temperature`` [degC]; see interpolate_parameters."""
    # Offset, hysteresis and capacity follow no physical law in temperature to extrapolate by:
    # beyond the fitted range they keep the nearest fitted value.
    if name not in KINETIC_FIELDS or scale == "linear" or np.any(fitted_values <= 0.0):
        return float(np.interp(temperature, temperatures, fitted_values))
    axis = _inverse_kelvin if scale == "arrhenius" else np.asarray
    return float(np.exp(_piecewise_linear(axis(temperature), axis(temperatures), np.log(fitted_values))))


def _inverse_kelvin(celsius: float | np.ndarray) -> np.ndarray:
    """1/T [1/K] of temperatures [degC]."""
    return 1.0 / (np.asarray(celsius, float) - ABSOLUTE_ZERO_C)


def _piecewise_linear(x: float, knots: np.ndarray, values: np.ndarray) -> float:
    """The line through ``values`` at ``knots`` (any order) at ``x``, extended beyond the knots with
    the slope of the nearest segment."""
    order = np.argsort(knots)
    knots, values = knots[order], values[order]
    segment = int(np.clip(np.searchsorted(knots, x) - 1, 0, len(knots) - 2))
    slope = (values[segment + 1] - values[segment]) / (knots[segment + 1] - knots[segment])
    return float(values[segment] + slope * (x - knots[segment]))
