"""The temperature dependence of a calibrated cell's series resistance, fitted over several records.

A calibration on one record (:mod:`sim.measured.calibrate`) fits the cell at that record's
temperature. Against tests at other temperatures, a measured cell's extra resistance over the
model's grows steeply in the cold: the A123 LFP cell against its Prada2013 model calibrated at
25 degC shows about 8 mOhm at 45 degC, 11 at 25, 20 at 5, 80 at -15 and 180 at -25 (a linear
fit of the voltage residual on the current), and its logarithm is close to linear in 1/T (the
line through 5 and -25 degC gives 81 mOhm at -15). A parameter set's own kinetics rarely
carry that much temperature dependence.

:func:`fit_series_resistance` adds a contact (series) resistance at 25 degC and its activation
energy (``CellSpec.contact_resistance_activation_J_mol``), every other value of the
calibrated cell kept, by least squares over the records' coarse-grid voltage errors, each
record weighted equally. Only records of the training data should be given: the fit is part of
the model.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import least_squares

from sim.cells import CellSpec
from sim.errors import ConfigError
from sim.cells.spec import CONTACT_RESISTANCE
from sim.measured.calibrate import CalibrationOptions, FittedValue
from sim.measured.fit_data import Bounds, fit_data, rmse_mV, voltage_error
from sim.measured.loader import MeasuredSeries
from sim.physics import Fidelity, ModelCache

MAX_ACTIVATION_J_MOL = 150_000.0


@dataclass(frozen=True)
class SeriesResistanceFit:
    """values: ``contact_resistance_ohm`` (at 25 degC) and ``contact_resistance_activation_J_mol``;
    per record (in the order given) its ambient temperature [K] and the RMSE [mV] on the fit
    grid before and after; the optimiser's evaluations, wall time and verdict."""

    values: dict[str, float]
    ambient_K: list[float]
    rmse_before_mV: list[float]
    rmse_after_mV: list[float]
    evaluations: int
    wall_s: float
    success: bool
    message: str


def fit_series_resistance(records: Sequence[tuple[CellSpec, MeasuredSeries]], fidelity: Fidelity, *,
                          options: CalibrationOptions = CalibrationOptions(),
                          cache: ModelCache | None = None) -> SeriesResistanceFit:
    """Fit the series resistance and its activation energy (module docstring) to ``records``:
    (the calibrated cell at the record's ambient temperature, the record). The resistance is
    bounded by ``options.contact_resistance_ohm``, the activation energy by [0, 150 kJ/mol]."""
    if not fidelity.contact_resistance:
        raise ConfigError("calibration.temperature_files: fitting a series resistance needs "
                          "physics.contact_resistance: true")
    if not records:
        raise ConfigError("calibration.temperature_files: match no test; allowed: globs of test files")
    started = time.perf_counter()
    grids = [(cell, fit_data(measured, options.fit_period_s, options.fit_voltage_V)) for cell, measured in records]
    fitted = (FittedValue("contact_resistance_ohm", options.contact_resistance_ohm, log=False),
              FittedValue("contact_resistance_activation_J_mol", Bounds(low=0.0, high=MAX_ACTIVATION_J_MOL), log=False))
    evaluations = 0

    def cells(unit: np.ndarray) -> list[CellSpec]:
        resistance, energy = (spec.value(u) for spec, u in zip(fitted, unit))
        return [cell.with_updates(overrides={**cell.overrides, CONTACT_RESISTANCE: resistance},
                                  contact_resistance_activation_J_mol=energy) for cell, _ in grids]

    def errors(unit: np.ndarray) -> np.ndarray:
        nonlocal evaluations
        evaluations += 1
        return np.concatenate([voltage_error(cell, data, fidelity, cache=cache) / math.sqrt(len(data.voltage_V))
                               for cell, (_, data) in zip(cells(unit), grids)])

    before = [rmse_mV(voltage_error(cell, data, fidelity, cache=cache)) for cell, data in grids]
    start = np.array([fitted[0].unit(0.01), fitted[1].unit(30_000.0)])  # 10 mOhm, 30 kJ/mol
    result = least_squares(errors, start, bounds=(0.0, 1.0), method="trf", diff_step=1e-3,
                           max_nfev=options.max_iterations * 3, xtol=options.tolerance, ftol=options.tolerance)
    after = [rmse_mV(voltage_error(cell, data, fidelity, cache=cache))
             for cell, (_, data) in zip(cells(result.x), grids)]
    values = {spec.name: spec.value(u) for spec, u in zip(fitted, result.x)}
    return SeriesResistanceFit(values, [cell.ambient_temperature_K for cell, _ in grids], before, after,
                               evaluations, time.perf_counter() - started, bool(result.success), str(result.message))
