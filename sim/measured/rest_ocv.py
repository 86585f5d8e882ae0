"""The OCV correction a calibration fits from a measured record's rests.

A parameter set's OCV (here the difference of its two electrodes' OCPs) is not the measured
cell's: Chen2020's NMC811/graphite-SiOx curve departs from a Samsung 30Q's by -30 to +45 mV
along the discharge, which no capacity, balance or resistance scale can absorb. At the end of
a long rest the cell is close to equilibrium, so there the measured voltage minus the
calibrated model's is the OCV departure at the model's positive electrode stoichiometry; those
points, in stoichiometry order, are the :class:`~sim.cells.OCVCorrection` the model's voltage
gets added (as the ECM's OCV from relaxations does for the ECM).
"""

from __future__ import annotations

import numpy as np

from sim.cells import POSITIVE_SURFACE_STOICHIOMETRY, CellSpec, OCVCorrection
from sim.errors import DataError
from sim.measured.columns import CURRENT, TIME, VOLTAGE
from sim.measured.loader import MeasuredSeries
from sim.physics import Fidelity, ModelCache, simulate
from sim.protocols import CurrentTrace

# A sample rests when its current is below this C-rate (the cycler's zero reads a few mA).
REST_C_RATE = 0.02
# Rest ends closer than this in stoichiometry are one point (their corrections averaged).
STOICHIOMETRY_TOLERANCE = 1e-3


def rest_spans(current_A: np.ndarray, rest_current_A: float) -> tuple[np.ndarray, np.ndarray]:
    """(first, last) sample indices of every rest (|current| < ``rest_current_A``), in order."""
    resting = np.abs(current_A) < rest_current_A
    edges = np.diff(np.r_[0, resting.astype(int), 0])  # +1 where a rest starts, -1 after it ends
    return np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1


def rest_ends(time_s: np.ndarray, current_A: np.ndarray, rest_current_A: float, min_rest_s: float) -> np.ndarray:
    """Indices of the last sample of every rest (see :func:`rest_spans`) lasting at least
    ``min_rest_s`` [s]."""
    starts, ends = rest_spans(current_A, rest_current_A)
    return ends[time_s[ends] - time_s[starts] >= min_rest_s]


def rest_ocv_correction(cell: CellSpec, measured: MeasuredSeries, fidelity: Fidelity, min_rest_s: float, *,
                        capacity_Ah: float, cache: ModelCache | None = None) -> OCVCorrection:
    """The OCV correction that makes ``cell`` (calibrated, without a correction of its own) match
    ``measured`` at the end of each rest of at least ``min_rest_s``: there, measured minus model
    voltage against the model's positive surface stoichiometry. ``capacity_Ah`` sets the rest
    current (REST_C_RATE). DataError when fewer than two such rests are solved."""
    time_s, current, voltage = (measured.columns[name] for name in (TIME, CURRENT, VOLTAGE))
    model = simulate(cell.with_updates(ocv_correction=None), CurrentTrace(time_s, current), fidelity,
                     cache=cache, voltage_cutoffs=False)
    ends = rest_ends(time_s, current, REST_C_RATE * capacity_Ah, min_rest_s)
    model_time = model.columns.get(TIME, np.array([]))
    rows = np.searchsorted(model_time, time_s[ends] - 1e-6)
    solved = rows < len(model_time)
    ends, rows = ends[solved], rows[solved]
    if len(ends) < 2:
        raise DataError(f"calibration.options.ocv_from_rests = {min_rest_s:g}: {measured.source} has {len(ends)} "
                        "solved rest(s) that long; allowed: a record with at least 2, a shorter minimum, or null")
    stoichiometry = model.columns[POSITIVE_SURFACE_STOICHIOMETRY][rows]
    correction = voltage[ends] - model.columns[VOLTAGE][rows]
    return OCVCorrection(**_merged(stoichiometry, correction))


def _merged(stoichiometry: np.ndarray, correction: np.ndarray) -> dict[str, list[float]]:
    """The points sorted by stoichiometry, those within STOICHIOMETRY_TOLERANCE averaged."""
    order = np.argsort(stoichiometry, kind="stable")
    stoichiometry, correction = stoichiometry[order], correction[order]
    group = np.cumsum(np.r_[0, np.diff(stoichiometry) > STOICHIOMETRY_TOLERANCE])
    counts = np.bincount(group)
    return {"stoichiometry": (np.bincount(group, weights=stoichiometry) / counts).tolist(),
            "voltage_V": (np.bincount(group, weights=correction) / counts).tolist()}
