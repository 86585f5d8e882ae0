"""Calibration: fit a few physics parameters of a cell to one measured record.

Every fitted quantity enters the PyBaMM model as a solver input (see :mod:`sim.physics.simulate`), so
the model is built once and each objective evaluation is one solve:

- ``capacity_scale``: a scale on one electrode-area dimension ("Electrode width [m]" by
  default); it scales both electrodes and the lithium inventory, hence the cell capacity;
- ``initial_soc``: the state of charge at the start of the record;
- ``balance_scale`` (optional): a scale on the positive electrode's active material fraction;
  it changes which electrode runs out first and how the two OCPs line up, which reshapes the
  cell's OCV curve along the charge axis (the knee near empty, above all);
- a resistance (optional): ``contact_resistance_ohm`` ("Contact resistance [Ohm]", needs
  ``Fidelity(contact_resistance=True)``) or ``exchange_current_scale`` (one scale on both
  electrodes' exchange-current densities);
- an OCV correction (optional, ``ocv_from_rests``): after the fit, the calibrated model's
  departure from the measured voltage at the end of each long rest, against its positive
  electrode stoichiometry (:mod:`sim.measured.rest_ocv`), which the cell's voltage then gets
  added (:class:`sim.cells.OCVCorrection`).

The cost is the mean squared voltage error [V^2] on a coarse grid: the measured record is
block-averaged onto ``fit_period_s`` (the current through the charge counter, so the charge is
exact; the voltage as each block's mean), and the model, driven by the block-mean current, is
compared with it at the block ends. A failed or truncated solve gives every missing sample an
error of :data:`sim.measured.fit_data.FAILED_ERROR_V` (and no sample's error exceeds it): a large finite cost, never
an exception. The optimiser is scipy's bounded trust-region least squares on the fitted values
mapped to [0, 1], started from the best point of a coarse scan of the balance (see
:meth:`_Objective.best_balance`).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import Field, model_validator
from scipy.optimize import least_squares

from sim.cells import CellSpec
from sim.cells.spec import CONTACT_RESISTANCE
from sim.config import StrictModel
from sim.errors import ConfigError
from sim.physics import Fidelity
from sim.measured.fit_data import Bounds, FitData, capped_errors, fit_data, voltage_error
from sim.measured.loader import MeasuredSeries
from sim.measured.rest_ocv import rest_ocv_correction
from sim.physics import ModelCache, prepare_cell

log = logging.getLogger(__name__)

BALANCE_PARAMETER = "Positive electrode active material volume fraction"
EXCHANGE_CURRENT_PARAMETERS = ("Negative electrode exchange-current density [A.m-2]",
                               "Positive electrode exchange-current density [A.m-2]")


class CalibrationOptions(StrictModel):
    """What to fit and how.

    fit_period_s: block length [s] of the coarse grid the cost is computed on; a shorter grid
        resolves pulses better and costs proportionally more per evaluation; null fits on the
        measured samples themselves (exact, and as slow as a full solve). Block means are not
        exact where the current changes inside a block: even the true cell scores tens of mV
        on a record of 30 s pulses averaged over 60 s blocks.
    capacity: "fit" fits the capacity scale to the voltage; "throughput" gives every trial cell
        the measured full-to-empty throughput capacity (the scale follows from the balance).
    capacity_parameter: the electrode-area dimension whose scale sets the capacity.
    capacity_scale: bounds of that scale (relative to the cell's own value).
    initial_soc: bounds of the initial state of charge; null keeps the cell's value.
    balance_scale: bounds of the positive active-material scale; null leaves the balance alone.
    balance_points: the balance is first scanned at this many evenly spaced values and the fit
        starts from the best (0 or 1: start from the nominal balance).
    resistance: which resistance term to fit, if any.
    contact_resistance_ohm, exchange_current_scale: bounds of that term.
    ocv_from_rests: fit an OCV correction from the rests of at least this many seconds after
        the other values (the fit cost and RMSE then include it); null: none.
    fit_voltage_V: only measured samples inside [low, high] count in the cost (e.g. drop a
        tail below the cut-off); null counts every sample.
    max_iterations: the optimiser's budget of trial points (each solve; every accepted point
        also costs one finite-difference solve per fitted value).
    tolerance: relative change of cost and parameters that ends the fit.
    """

    fit_period_s: float | None = Field(30.0, gt=0.0, le=3600.0)
    capacity: Literal["fit", "throughput"] = "fit"
    capacity_parameter: Literal["Electrode width [m]", "Electrode height [m]"] = "Electrode width [m]"
    capacity_scale: Bounds = Bounds(low=0.5, high=1.5)
    initial_soc: Bounds | None = Bounds(low=0.5, high=1.0)
    balance_scale: Bounds | None = None
    balance_points: int = Field(9, ge=0, le=50)
    resistance: Literal["contact", "exchange_current"] | None = None
    contact_resistance_ohm: Bounds = Bounds(low=0.0, high=0.1)
    exchange_current_scale: Bounds = Bounds(low=0.05, high=20.0)
    ocv_from_rests: float | None = Field(None, gt=0.0)
    fit_voltage_V: Bounds | None = None
    max_iterations: int = Field(12, ge=1, le=200)
    tolerance: float = Field(1e-3, gt=0.0, lt=1.0)

    @model_validator(mode="after")
    def _physical_bounds(self) -> "CalibrationOptions":
        for name in ("capacity_scale", "balance_scale", "exchange_current_scale"):
            bounds = getattr(self, name)
            if bounds is not None and not (0.0 < bounds.low and bounds.high <= 100.0):
                raise ValueError(f"{name} bounds must lie in (0, 100], got [{bounds.low}, {bounds.high}]")
        if self.initial_soc is not None and not (0.0 <= self.initial_soc.low and self.initial_soc.high <= 1.0):
            raise ValueError("initial_soc bounds must lie in [0, 1]")
        if self.contact_resistance_ohm.low < 0.0:
            raise ValueError("contact_resistance_ohm bounds must be >= 0")
        return self


@dataclass(frozen=True)
class Calibration:
    """A fitted cell correction and how well it fits.

    values: fitted value by name: ``capacity_scale`` (multiplies the cell's scale of
        ``capacity_parameter``), ``initial_soc``, and, when fitted, ``balance_scale``,
        ``contact_resistance_ohm`` [Ohm] or ``exchange_current_scale``; after a fit over several
        temperatures also ``contact_resistance_activation_J_mol`` (figures in ``temperature_fit``).
    start: the starting point before the balance scan: the nominal cell's values, with the
        capacity scale of the measured throughput capacity when that is known.
    cost_before, cost_after: mean squared voltage error [V^2] on the fit grid.
    rmse_before_mV, rmse_after_mV: the matching root mean squared errors [mV].
    capacity_before_Ah, capacity_after_Ah: the physics cell's capacity between its voltage
        cut-offs before and after the fit [Ah].
    throughput_capacity_Ah: the measured full-to-empty charge throughput, when known [Ah].
    evaluations: objective evaluations (one solve each). wall_s: fit time [s].
    success, message: the optimiser's verdict.
    """

    values: dict[str, float]
    start: dict[str, float]
    capacity_parameter: str
    cost_before: float
    cost_after: float
    capacity_before_Ah: float
    capacity_after_Ah: float
    throughput_capacity_Ah: float | None
    evaluations: int
    wall_s: float
    success: bool
    message: str
    fit_period_s: float | None = None
    samples: int = 0
    temperature_fit: dict | None = None  # the series resistance's, over several records (temperature_fit.py)
    ocv_correction: dict | None = None  # an OCVCorrection's fields, from the record's rests (ocv_from_rests)

    @property
    def rmse_before_mV(self) -> float:
        return 1000.0 * math.sqrt(self.cost_before)

    @property
    def rmse_after_mV(self) -> float:
        return 1000.0 * math.sqrt(self.cost_after)

    def apply(self, cell: CellSpec) -> CellSpec:
        """``cell`` with the fitted values (scales multiply the cell's own scales) and OCV correction."""
        return apply_values(cell, self.values, self.capacity_parameter, self.ocv_correction)

    def to_record(self, prefix: str = "calibration_") -> dict[str, float | int | str | bool | None]:
        """A flat dict for a table row: fitted values, costs, capacities, wall time."""
        record: dict = {f"{prefix}{name}": value for name, value in self.values.items()}
        record.update({f"{prefix}rmse_before_mV": self.rmse_before_mV,
                       f"{prefix}rmse_after_mV": self.rmse_after_mV,
                       f"{prefix}cost_before": self.cost_before, f"{prefix}cost_after": self.cost_after,
                       f"{prefix}capacity_before_Ah": self.capacity_before_Ah,
                       f"{prefix}capacity_after_Ah": self.capacity_after_Ah,
                       f"{prefix}throughput_capacity_Ah": self.throughput_capacity_Ah,
                       f"{prefix}evaluations": self.evaluations, f"{prefix}wall_s": self.wall_s,
                       f"{prefix}success": self.success, f"{prefix}message": self.message})
        return record


def apply_values(cell: CellSpec, values: dict[str, float], capacity_parameter: str = "Electrode width [m]",
                 ocv_correction: dict | None = None) -> CellSpec:
    """``cell`` with calibration ``values`` and ``ocv_correction`` applied (see :class:`Calibration`)."""
    scales = dict(cell.scales)
    overrides = dict(cell.overrides)
    factors = {capacity_parameter: values.get("capacity_scale", 1.0),
               BALANCE_PARAMETER: values.get("balance_scale", 1.0),
               **{name: values.get("exchange_current_scale", 1.0) for name in EXCHANGE_CURRENT_PARAMETERS}}
    for name, factor in factors.items():
        if factor != 1.0:
            scales[name] = scales.get(name, 1.0) * factor
    if "contact_resistance_ohm" in values:
        overrides[CONTACT_RESISTANCE] = values["contact_resistance_ohm"]
    updates: dict = {"scales": scales, "overrides": overrides}
    if "contact_resistance_activation_J_mol" in values:
        updates["contact_resistance_activation_J_mol"] = values["contact_resistance_activation_J_mol"]
    if "initial_soc" in values:
        updates["initial_soc"] = values["initial_soc"]
    if ocv_correction is not None:
        updates["ocv_correction"] = ocv_correction
    return cell.with_updates(**updates)


@dataclass(frozen=True)
class FittedValue:
    """One fitted value: its name, bounds, and whether it lives on a log scale."""

    name: str
    bounds: Bounds
    log: bool

    def value(self, unit: float) -> float:
        low, high = self.bounds.low, self.bounds.high
        if self.log:
            return float(math.exp(math.log(low) + unit * (math.log(high) - math.log(low))))
        return float(low + unit * (high - low))

    def unit(self, value: float) -> float:
        low, high = self.bounds.low, self.bounds.high
        value = min(max(value, low), high)
        if self.log:
            return (math.log(value) - math.log(low)) / (math.log(high) - math.log(low))
        return (value - low) / (high - low)


def fitted_values(options: CalibrationOptions, fidelity: Fidelity) -> list[FittedValue]:
    """The values ``options`` fits, in optimiser order."""
    fitted = [FittedValue("capacity_scale", options.capacity_scale, log=False)] if options.capacity == "fit" else []
    if options.initial_soc is not None:
        fitted.append(FittedValue("initial_soc", options.initial_soc, log=False))
    if options.balance_scale is not None:
        fitted.append(FittedValue("balance_scale", options.balance_scale, log=False))
    if options.resistance == "contact":
        if not fidelity.contact_resistance:
            raise ConfigError("calibration.resistance = 'contact' needs fidelity.contact_resistance: true "
                              "(or use resistance: exchange_current)")
        fitted.append(FittedValue("contact_resistance_ohm", options.contact_resistance_ohm, log=False))
    elif options.resistance == "exchange_current":
        fitted.append(FittedValue("exchange_current_scale", options.exchange_current_scale, log=True))
    return fitted


def calibrate(cell: CellSpec, measured: MeasuredSeries, fidelity: Fidelity = Fidelity(), *,
              options: CalibrationOptions = CalibrationOptions(),
              throughput_capacity_Ah: float | None = None,
              cache: ModelCache | None = None) -> Calibration:
    """Fit ``options``' values of ``cell`` so ``fidelity``'s voltage matches ``measured``.

    cell: the nominal cell at the record's ambient temperature; the fit starts from it.
    measured: the record (time [s], current [A], discharge positive, voltage [V]).
    throughput_capacity_Ah: the measured full-to-empty capacity [Ah], when known. With
        ``options.capacity == "throughput"`` the capacity scale follows from it (for every
        trial balance); with "fit" it is the starting point of the fitted capacity scale.
        Either way it is reported beside the physics capacity.
    Returns a :class:`Calibration`; an optimiser that stops without converging is reported in
    ``success`` / ``message``, not raised.
    """
    started = time.perf_counter()
    if options.capacity == "throughput" and throughput_capacity_Ah is None:
        raise ConfigError("calibration.capacity = 'throughput' needs the measured throughput capacity "
                          "(throughput_capacity_Ah); use capacity: fit without one")
    data = fit_data(measured, options.fit_period_s, options.fit_voltage_V)
    nominal = prepare_cell(cell, fidelity)
    objective = _Objective(cell, data, fidelity, options, fitted_values(options, fidelity),
                           throughput_capacity_Ah if options.capacity == "throughput" else None, cache)
    start = _start_values(cell, nominal, objective.fitted, throughput_capacity_Ah)
    cost_before = float(np.mean(np.square(voltage_error(cell, data, fidelity, cache=cache))))
    unit = objective.best_balance(np.array([spec.unit(start[spec.name]) for spec in objective.fitted]),
                                  throughput_capacity_Ah or nominal.capacity_Ah)
    if objective.fitted:
        result = least_squares(objective.residuals, unit, bounds=(0.0, 1.0), method="trf", diff_step=1e-2,
                               x_scale=1.0, ftol=options.tolerance, xtol=options.tolerance, gtol=None,
                               max_nfev=options.max_iterations)
        unit, cost_after, success, message = result.x, 2.0 * float(result.cost), result.status > 0, str(result.message)
    else:
        cost_after = float(np.sum(np.square(objective.residuals(unit))))
        success, message = True, "nothing to fit: the capacity follows the measured throughput"
    values = objective.values(unit)
    fitted_cell = apply_values(cell, values, options.capacity_parameter)
    capacity_after = prepare_cell(fitted_cell, fidelity).capacity_Ah
    correction = None
    if options.ocv_from_rests is not None:
        correction = rest_ocv_correction(fitted_cell, measured, fidelity, options.ocv_from_rests,
                                         capacity_Ah=capacity_after, cache=cache).model_dump()
        corrected = fitted_cell.with_updates(ocv_correction=correction)
        cost_after = float(np.mean(np.square(voltage_error(corrected, data, fidelity, cache=cache))))
    calibration = Calibration(
        values=values, start=start, capacity_parameter=options.capacity_parameter,
        cost_before=cost_before, cost_after=cost_after, capacity_before_Ah=nominal.capacity_Ah,
        capacity_after_Ah=capacity_after, throughput_capacity_Ah=throughput_capacity_Ah,
        evaluations=objective.evaluations + 1, wall_s=time.perf_counter() - started, success=bool(success),
        message=message, fit_period_s=options.fit_period_s, samples=int(data.weights.sum()),
        ocv_correction=correction)
    log.info("%s: calibrated %s in %d solves (%.1f s): RMSE %.1f -> %.1f mV", measured.source,
             {name: round(value, 4) for name, value in values.items()}, calibration.evaluations,
             calibration.wall_s, calibration.rmse_before_mV, calibration.rmse_after_mV)
    return calibration


@dataclass
class _Objective:
    """The calibration cost as a function of the fitted values mapped to [0, 1]."""

    cell: CellSpec
    data: FitData
    fidelity: Fidelity
    options: CalibrationOptions
    fitted: list[FittedValue]
    capacity_Ah: float | None       # the capacity every trial is given, or None to fit it
    cache: ModelCache | None
    evaluations: int = 0

    def values(self, unit: np.ndarray) -> dict[str, float]:
        values = {spec.name: spec.value(u) for spec, u in zip(self.fitted, unit)}
        if self.capacity_Ah is not None:
            values["capacity_scale"] = self.capacity_scale_for(self.capacity_Ah, values)
        return values

    def capacity_scale_for(self, capacity_Ah: float, values: dict[str, float]) -> float:
        """The capacity scale that gives the cell with ``values`` the capacity ``capacity_Ah``.
        Every electrode and lithium capacity is proportional to the electrode area, so one
        electrode balance at scale 1 suffices."""
        unit_cell = apply_values(self.cell, {**values, "capacity_scale": 1.0}, self.options.capacity_parameter)
        return capacity_Ah / prepare_cell(unit_cell, self.fidelity).capacity_Ah

    def residuals(self, unit: np.ndarray) -> np.ndarray:
        """Voltage errors [V] / sqrt(samples): half their sum of squares is half the mean
        squared error, which is what least_squares minimises."""
        self.evaluations += 1
        try:
            trial = apply_values(self.cell, self.values(unit), self.options.capacity_parameter)
            error = voltage_error(trial, self.data, self.fidelity, cache=self.cache)
        except Exception as failure:  # e.g. no electrode balance for this trial: a bad point, not a crash
            log.info("calibration trial %s failed: %s", np.round(unit, 4).tolist(), failure)
            error = capped_errors(None, self.data)
        return error / math.sqrt(len(error))

    def best_balance(self, unit: np.ndarray, capacity_Ah: float) -> np.ndarray:
        """``unit`` moved to the best of ``options.balance_points`` evenly spaced balance scales,
        each with the capacity scale that keeps the capacity at ``capacity_Ah``. The cost is
        flat in the balance while one electrode limits the discharge and falls steeply where
        the other takes over, so a local optimiser started at the nominal balance stays put."""
        names = [spec.name for spec in self.fitted]
        if "balance_scale" not in names or self.options.balance_points < 2:
            return unit
        candidates = []
        for point in np.linspace(0.0, 1.0, self.options.balance_points):
            candidate = unit.copy()
            candidate[names.index("balance_scale")] = point
            if "capacity_scale" in names:
                try:
                    scale = self.capacity_scale_for(capacity_Ah, self.values(candidate))
                except Exception:  # no electrode balance at this point: leave it out
                    continue
                candidate[names.index("capacity_scale")] = self.fitted[names.index("capacity_scale")].unit(scale)
            candidates.append(candidate)
        if not candidates:
            return unit
        costs = [float(np.sum(np.square(self.residuals(candidate)))) for candidate in candidates]
        return candidates[int(np.argmin(costs))]


def _nominal_value(name: str, cell: CellSpec, nominal) -> float:
    if name == "initial_soc":
        return cell.initial_soc
    if name == "contact_resistance_ohm":
        return float(nominal.values[CONTACT_RESISTANCE])
    return 1.0


def _start_values(cell: CellSpec, nominal, fitted: list[FittedValue],
                  throughput_capacity_Ah: float | None) -> dict[str, float]:
    start = {spec.name: _nominal_value(spec.name, cell, nominal) for spec in fitted}
    if throughput_capacity_Ah is not None:
        start["capacity_scale"] = throughput_capacity_Ah / nominal.capacity_Ah
    return {spec.name: spec.value(spec.unit(start[spec.name])) for spec in fitted}
