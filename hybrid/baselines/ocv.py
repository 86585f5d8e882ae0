"""Open-circuit voltage curves from measurements: the mean of slow (C/30) discharge and charge
tests, or, for data sets without them, the voltages at the ends of long rests."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.integrate import cumulative_trapezoid
from scipy.optimize import isotonic_regression

from hybrid.baselines.ecm import ECMRecord, OCVCurve, coulomb_soc
from sim.errors import ConfigError, DataError
from sim.measured.columns import CURRENT, TIME, VOLTAGE
from sim.measured.loader import load_measured
from sim.measured.rest_ocv import REST_C_RATE, rest_spans  # below C/50 is rest: cyclers log mA of noise idle

# Rows of a slow leg above this fraction of its largest |current| are under load: not the rest
# before it, nor the tail of a constant-voltage hold at its cut-off.
LOAD_FRACTION = 0.5
# Rest points closer than this in SOC are one point (the same step of several records).
SOC_TOLERANCE = 1e-3
# The end slope of a relaxation OCV is fitted over the rest points this far (SOC) from the end
# one: two neighbouring points alone can give a wild slope.
END_WINDOW_SOC = 0.1


@dataclass(frozen=True)
class SlowLeg:
    """One cycler file of a slow OCV branch, (rows,) each: current [A] (discharge positive),
    voltage [V] and the net charge taken out of the cell since the file's first row [A.h]."""

    current_A: np.ndarray
    voltage_V: np.ndarray
    discharged_Ah: np.ndarray


def ocv_from_slow_branches(discharge: Sequence[SlowLeg], charge: Sequence[SlowLeg],
                           field: str = "slow tests") -> OCVCurve:
    """The OCV: the mean of a slow (e.g. C/30) full discharge and full charge
    (:meth:`OCVCurve.from_branches`), each on an SOC axis of its own total charge [A.h], the net
    charge over its legs (so the two need not agree on the capacity).

    A branch's first leg is its slow leg: its rows under load (|current| above LOAD_FRACTION of
    its largest) give the branch's voltages. The legs after it finish the branch to empty or full
    (a CV hold, a dither: A123 scripts 2 and 4) and add only their charge. DataError, naming
    ``field``.discharge or ``field``.charge, for a branch that carries no current, whose loaded
    rows do not all move charge its way (not monotone in SOC) or whose net charge goes the other way.
    """
    return OCVCurve.from_branches(*_branch(discharge, 1.0, f"{field}.discharge"),
                                  *_branch(charge, -1.0, f"{field}.charge"))


def ocv_from_cycler_files(discharge: Sequence[Path], charge: Sequence[Path], field: str = "slow tests") -> OCVCurve:
    """:func:`ocv_from_slow_branches` of cycler files, each read by :func:`sim.measured.load_measured`
    (columns detected from their names, current positive on discharge), its charge counted by
    integrating the current over time."""
    def legs(paths: Sequence[Path]) -> list[SlowLeg]:
        return [_cycler_leg(Path(path)) for path in paths]

    return ocv_from_slow_branches(legs(discharge), legs(charge), field)


def ocv_from_slow_tests(folder: Path, file_template: str) -> OCVCurve:
    """:func:`ocv_from_slow_branches` of Plett's A123 OCV scripts: a C/30 discharge (script 1, to
    empty with script 2) and a C/30 charge (script 3, to full with script 4).

    ``file_template`` names the CSV of a script in ``folder`` with ``{script}`` for its number
    (e.g. "A123_OCV_p25C_script{script}.csv.gz"); the files hold the columns current_A [A],
    voltage_V [V], dis_Ah_source and chg_Ah_source [A.h] (the cycler's charge counters, which
    count the charge here).
    """
    def leg(script: int) -> SlowLeg:
        frame = pd.read_csv(folder / file_template.format(script=script))
        return SlowLeg(frame["current_A"].to_numpy(float), frame["voltage_V"].to_numpy(float),
                       (frame["dis_Ah_source"] - frame["chg_Ah_source"]).to_numpy(float))

    return ocv_from_slow_branches([leg(1), leg(2)], [leg(3), leg(4)], str(folder / file_template))


def _cycler_leg(path: Path) -> SlowLeg:
    """One cycler file as a SlowLeg, its charge the time integral of its current."""
    series = load_measured(path)
    time_s, current_A = series.columns[TIME], series.columns[CURRENT]
    discharged_Ah = cumulative_trapezoid(current_A, time_s, initial=0.0) / 3600.0
    return SlowLeg(current_A, series.columns[VOLTAGE], discharged_Ah)


def _branch(legs: Sequence[SlowLeg], direction: float, name: str) -> tuple[np.ndarray, np.ndarray]:
    """SOC (0..1) and voltage [V] of a branch's rows under load, (rows,) each; ``direction`` is
    +1 for a discharge from full, -1 for a charge from empty. See ocv_from_slow_branches."""
    if not legs:
        raise ConfigError(f"{name}: no file; allowed: one or more cycler files")
    kind = "discharge" if direction > 0 else "charge"
    slow = legs[0]
    largest = float(np.max(np.abs(slow.current_A)))
    if not largest > 0.0:
        raise DataError(f"{name}: its first file carries no current; allowed: a slow full {kind} first")
    loaded = np.abs(slow.current_A) > LOAD_FRACTION * largest
    backwards = int(np.count_nonzero(direction * slow.current_A[loaded] < 0.0))
    if backwards:
        raise DataError(f"{name}: {backwards} of the {np.count_nonzero(loaded)} rows under load of its first file "
                        f"are not a {kind} (not monotone in SOC); allowed: a slow full {kind} first, "
                        "current positive on discharge")
    moved_Ah = direction * sum(float(leg.discharged_Ah[-1]) for leg in legs)
    if not moved_Ah > 0.0:
        raise DataError(f"{name}: net {kind} over its files is {moved_Ah:.4g} A.h; allowed: files of a full "
                        f"{kind}, current positive on discharge")
    moved = direction * slow.discharged_Ah[loaded] / moved_Ah  # 0..1 of the branch's charge
    return (1.0 - moved if direction > 0 else moved), slow.voltage_V[loaded]


def ocv_from_relaxations(time_s: np.ndarray | list[np.ndarray], current_A: np.ndarray | list[np.ndarray],
                         voltage_V: np.ndarray | list[np.ndarray], capacity_Ah: float | Sequence[float],
                         initial_soc: float | Sequence[float] = 1.0, min_rest_s: float = 1800.0, *,
                         starts_relaxed: bool = True) -> OCVCurve:
    """The OCV from the voltage at the end of every rest (|current| below REST_C_RATE for at least
    ``min_rest_s`` [s]) against coulomb-counted SOC, for data without slow OCV tests (e.g. HPPC).
    With ``starts_relaxed``, a record whose first sample is at rest gives that sample too: a test
    begins from a rested cell, and this is its only point at full charge when pulses come first.

    ``time_s`` [s], ``current_A`` [A] (discharge positive) and ``voltage_V`` [V] are one record's
    (rows,) arrays, or lists of them to pool several records; ``capacity_Ah`` [A.h] (the SOC axis:
    give the capacity the ECM will count with) and ``initial_soc`` are a number or one per record.

    Points within SOC_TOLERANCE are averaged into one, and the voltages made non-decreasing in
    SOC by isotonic regression (noise and pooled records otherwise give a curve that zigzags).
    Where the points do not reach SOC 0 or 1, the curve is extended to there along the line
    fitted to the points within END_WINDOW_SOC of its end, anchored at the end point. A rest voltage carries what has not relaxed and, for LFP, the
    hysteresis of the current before it; the ECM's offset and hysteresis absorb the mean of those.
    """
    records = _as_records(time_s, current_A, voltage_V, capacity_Ah, initial_soc)
    points = [_rest_end_points(record, min_rest_s, starts_relaxed) for record in records]
    soc = np.concatenate([soc for soc, _ in points])
    voltage = np.concatenate([voltage for _, voltage in points])
    if soc.size < 2 or np.ptp(soc) <= SOC_TOLERANCE:
        raise DataError(f"ocv_from_relaxations: {soc.size} rest point(s) (rests of at least min_rest_s = "
                        f"{min_rest_s} s); need two at different SOC: lower min_rest_s or add records")
    return OCVCurve(*_extended_to_full_range(*_monotone(soc, voltage)))


def _as_records(time_s, current_A, voltage_V, capacity_Ah, initial_soc) -> list[ECMRecord]:
    """The arguments of ocv_from_relaxations as one ECMRecord per record."""
    if not isinstance(time_s, (list, tuple)):
        time_s, current_A, voltage_V = [time_s], [current_A], [voltage_V]
    count = len(time_s)
    if not (len(current_A) == len(voltage_V) == count and np.size(capacity_Ah) in (1, count)
            and np.size(initial_soc) in (1, count)):
        raise ConfigError(f"ocv_from_relaxations: {count} time_s, {len(current_A)} current_A, {len(voltage_V)} "
                          f"voltage_V, {np.size(capacity_Ah)} capacity_Ah, {np.size(initial_soc)} initial_soc; "
                          "allowed: as many of each as records (capacity_Ah, initial_soc: or one for all)")
    capacities = np.broadcast_to(np.asarray(capacity_Ah, float), (count,))
    initial_socs = np.broadcast_to(np.asarray(initial_soc, float), (count,))
    records = []
    for time, current, voltage, capacity, soc in zip(time_s, current_A, voltage_V, capacities, initial_socs):
        if np.shape(voltage) != np.shape(time) or not np.all(np.isfinite(voltage)):
            raise DataError("ocv_from_relaxations: each record's voltage_V must be finite and as long as its time_s")
        records.append(ECMRecord(np.asarray(time, float), np.asarray(current, float), np.asarray(voltage, float),
                                 float(capacity), float(soc)))
    return records


def _rest_end_points(record: ECMRecord, min_rest_s: float, starts_relaxed: bool) -> tuple[np.ndarray, np.ndarray]:
    """SOC and voltage [V] at the last sample of every rest of at least ``min_rest_s``, and at the
    first sample if the record starts at rest (``starts_relaxed``) in a shorter one: (points,) each."""
    soc = coulomb_soc(record.time_s, record.current_A, record.capacity_Ah, record.initial_soc)
    starts, ends = rest_spans(record.current_A, REST_C_RATE * record.capacity_Ah)
    long = record.time_s[ends] - record.time_s[starts] >= min_rest_s
    points = ends[long]
    if starts_relaxed and len(starts) and starts[0] == 0 and not long[0]:
        points = np.r_[0, points]
    return soc[points], record.voltage_V[points]


def _monotone(soc: np.ndarray, voltage: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The points sorted by SOC, those within SOC_TOLERANCE averaged, voltage made non-decreasing."""
    order = np.argsort(soc, kind="stable")
    soc, voltage = soc[order], voltage[order]
    group = np.cumsum(np.r_[0, np.diff(soc) > SOC_TOLERANCE])  # (points,): index of its merged point
    counts = np.bincount(group)
    merged_soc = np.bincount(group, weights=soc) / counts
    merged_voltage = np.bincount(group, weights=voltage) / counts
    return merged_soc, isotonic_regression(merged_voltage, weights=counts.astype(float)).x


def _extended_to_full_range(soc: np.ndarray, voltage: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Add the points at SOC 0 and 1 where the curve stops short of them (see ocv_from_relaxations)."""
    if soc[0] > 0.0:
        low = max(2, np.count_nonzero(soc <= soc[0] + END_WINDOW_SOC))
        slope = np.polyfit(soc[:low], voltage[:low], 1)[0]
        soc, voltage = np.r_[0.0, soc], np.r_[voltage[0] - slope * soc[0], voltage]
    if soc[-1] < 1.0:
        high = max(2, np.count_nonzero(soc >= soc[-1] - END_WINDOW_SOC))
        slope = np.polyfit(soc[-high:], voltage[-high:], 1)[0]
        soc, voltage = np.r_[soc, 1.0], np.r_[voltage, voltage[-1] + slope * (1.0 - soc[-1])]
    return soc, voltage
