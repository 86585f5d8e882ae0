"""Facts about the OCV curves from measurements: the mean of slow discharge and charge branches
cancels their overpotentials, and the ends of long rests recover the OCV an ECM relaxes to."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hybrid.baselines.ecm import OCVCurve, simulate_ecm
from hybrid.baselines.ocv import ocv_from_cycler_files, ocv_from_relaxations, ocv_from_slow_tests
from sim.errors import DataError
from tests.hybrid.baselines.test_ecm import OCV, TRUE

TEMPLATE = "slow_script{script}.csv"
OVERPOTENTIAL_V = 0.02  # of the slow tests: below the OCV on discharge, above it on charge


def write_slow_tests(folder: Path, capacity_Ah: float = 2.0, main_Ah: float = 1.9) -> None:
    """Scripts 1/3: a C/30 discharge/charge of ``main_Ah``; scripts 2/4: the rest at a tenth of the current."""
    for script, sign in ((1, 1.0), (2, 1.0), (3, -1.0), (4, -1.0)):
        main = script in (1, 3)
        charge_Ah = main_Ah if main else capacity_Ah - main_Ah
        current = capacity_Ah / 30.0 * (1.0 if main else 0.1)
        counter = np.linspace(0.0, charge_Ah, 400)
        if sign > 0:  # discharge from full (script 1) or from the end of script 1 (script 2)
            soc = 1.0 - (counter + (0.0 if main else main_Ah)) / capacity_Ah
        else:  # charge from empty, then the rest to full
            soc = (counter + (0.0 if main else main_Ah)) / capacity_Ah
        frame = pd.DataFrame({"current_A": np.full(counter.size, sign * current),
                              "voltage_V": OCV(soc) - sign * OVERPOTENTIAL_V,
                              "dis_Ah_source": counter if sign > 0 else 0.0,
                              "chg_Ah_source": counter if sign < 0 else 0.0})
        frame.to_csv(folder / TEMPLATE.format(script=script), index=False)


def test_ocv_is_the_mean_of_the_slow_branches(tmp_path):
    write_slow_tests(tmp_path)
    ocv = ocv_from_slow_tests(tmp_path, TEMPLATE)
    covered = np.linspace(0.06, 0.94, 45)  # where both branches were measured with the main current
    np.testing.assert_allclose(ocv(covered), OCV(covered), atol=2e-3)  # the overpotentials cancel
    assert np.all(np.diff(ocv.soc) > 0)


# No offset: the mean of the branches is the OCV itself (resistances and hysteresis cancel in it).
SLOW = replace(TRUE, ocv_offset_V=0.0)


def write_slow_branches(folder: Path, ocv: OCVCurve = OCV, step_s: float = 60.0) -> tuple[list[Path], list[Path]]:
    """The files of a discharge from full and a charge from empty simulated by the ECM, two per
    branch: an hour's rest, then C/30 for 97 % of the capacity (the slow leg); then C/300 to the
    end (the finish). (discharge files, charge files): discharge1.csv, discharge2.csv, charge1.csv and
    charge2.csv with columns time_s, current_A, voltage_V."""
    c30_A, rows_per_hour = SLOW.capacity_Ah / 30.0, int(3600.0 / step_s)
    branches = []
    for direction, name in ((1.0, "discharge"), (-1.0, "charge")):
        slow = np.r_[np.zeros(rows_per_hour), np.full(int(0.97 * 30 * rows_per_hour), direction * c30_A)]
        finish = np.full(int(0.03 * 300 * rows_per_hour), direction * c30_A / 10.0)
        current = np.r_[slow, finish]
        time_s = step_s * np.arange(len(current))
        voltage = simulate_ecm(time_s, current, ocv, SLOW, initial_soc=0.5 + 0.5 * direction,
                               initial_hysteresis=direction).voltage_V
        files = []
        for part, rows in ((1, slice(0, len(slow))), (2, slice(len(slow), None))):
            files.append(folder / f"{name}{part}.csv")
            pd.DataFrame({"time_s": time_s[rows] - time_s[rows][0], "current_A": current[rows],
                          "voltage_V": voltage[rows]}).to_csv(files[-1], index=False)
        branches.append(files)
    return branches[0], branches[1]


def test_the_mean_of_slow_cycler_branches_recovers_the_ocv(tmp_path):
    discharge, charge = write_slow_branches(tmp_path)
    ocv = ocv_from_cycler_files(discharge, charge)
    covered = np.linspace(0.05, 0.95, 91)  # past the hysteresis's turn at the start of each branch
    np.testing.assert_allclose(ocv(covered), OCV(covered), atol=3e-3)  # 2 mV at worst, on the steep end
    slow = pd.read_csv(discharge[0])  # the discharge alone sits below by its resistance and hysteresis
    soc = 1.0 - np.cumsum(slow["current_A"].to_numpy()) * 60.0 / 3600.0 / SLOW.capacity_Ah
    middle = (soc > 0.2) & (soc < 0.8)
    assert np.all(OCV(soc[middle]) - slow["voltage_V"].to_numpy()[middle] > 0.015)


def test_slow_branches_that_run_the_wrong_way_or_carry_no_current_are_refused(tmp_path):
    discharge, charge = write_slow_branches(tmp_path)
    with pytest.raises(DataError, match=r"^evaluation\.ecm\.ocv\.discharge: .*not monotone"):
        ocv_from_cycler_files(charge, discharge, "evaluation.ecm.ocv")
    idle = tmp_path / "idle.csv"
    pd.DataFrame({"time_s": [0.0, 60.0, 120.0], "current_A": 0.0, "voltage_V": 3.3}).to_csv(idle, index=False)
    with pytest.raises(DataError, match=r"^evaluation\.ecm\.ocv\.charge: .*carries no current"):
        ocv_from_cycler_files(discharge, [idle, *charge], "evaluation.ecm.ocv")


# No hysteresis or offset: after a long rest the ECM sits on the OCV itself.
RELAXING = replace(TRUE, hysteresis_V=0.0, ocv_offset_V=0.0)


def pulse_and_rest_record(initial_rest_s: float, blocks: int, rest_s: float = 7200.0, step_s: float = 10.0
                          ) -> tuple[np.ndarray, np.ndarray]:
    """A rest, then ``blocks`` x (a 2C discharge of 5 % SOC, a rest of ``rest_s``): time [s], current [A]."""
    pulse_s, current_A = 90.0, 2.0 * RELAXING.capacity_Ah  # 90 s at 2C: 5 % SOC
    block = np.r_[np.full(int(pulse_s / step_s), current_A), np.zeros(int(rest_s / step_s))]
    current = np.r_[np.zeros(int(initial_rest_s / step_s)), np.tile(block, blocks)]
    return step_s * np.arange(1, len(current) + 1), current


def test_ocv_from_relaxations_recovers_the_ocv():
    time_s, current = pulse_and_rest_record(initial_rest_s=7200.0, blocks=19)  # full -> 5 % SOC
    voltage = simulate_ecm(time_s, current, OCV, RELAXING).voltage_V
    voltage = voltage + np.random.default_rng(0).normal(0.0, 0.3e-3, len(voltage))
    curve = ocv_from_relaxations(time_s, current, voltage, RELAXING.capacity_Ah)
    assert curve.soc[0] == 0.0 and curve.soc[-1] == 1.0  # extended to the full range
    assert np.all(np.diff(curve.voltage_V) >= 0.0)
    measured = np.linspace(0.05, 1.0, 96)  # where rests were
    np.testing.assert_allclose(curve(measured), OCV(measured), atol=3e-3)
    assert curve(0.0) < curve(0.05)  # extended along the steep end, not held flat


def test_records_are_pooled_and_short_rests_ignored():
    time_s, current = pulse_and_rest_record(initial_rest_s=0.0, blocks=9)  # 95 % -> 50 % SOC
    records = []
    for initial_soc in (1.0, 0.975):  # the second record's rests fall between the first's
        records.append(simulate_ecm(time_s, current, OCV, RELAXING, initial_soc=initial_soc).voltage_V)
    pooled = ocv_from_relaxations([time_s, time_s], [current, current], records, RELAXING.capacity_Ah,
                                  initial_soc=[1.0, 0.975])
    assert len(pooled.soc) == 2 * 9 + 2  # every rest of both records, and the two end points
    np.testing.assert_allclose(pooled(np.linspace(0.525, 0.95, 30)), OCV(np.linspace(0.525, 0.95, 30)), atol=3e-3)
    with pytest.raises(DataError):  # the 2 h rests are too short
        ocv_from_relaxations(time_s, current, records[0], RELAXING.capacity_Ah, min_rest_s=3 * 3600.0)


def test_a_record_starting_at_rest_gives_its_first_voltage_at_full_charge():
    time_s, current = pulse_and_rest_record(initial_rest_s=10.0, blocks=9)  # one rested sample, then pulses
    voltage = simulate_ecm(time_s, current, OCV, RELAXING).voltage_V
    curve = ocv_from_relaxations(time_s, current, voltage, RELAXING.capacity_Ah)
    assert curve(1.0) == pytest.approx(OCV(1.0))
    extended = ocv_from_relaxations(time_s, current, voltage, RELAXING.capacity_Ah, starts_relaxed=False)
    assert extended(1.0) < OCV(1.0) - 0.02  # the last 10 % are steeper: a line from below falls short
