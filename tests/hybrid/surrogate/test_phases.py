"""Facts about the phases of a trajectory: runs of discharge, rest and charge and their
durations, the capacity and energy of a discharge to the cut-off (interpolated between
samples, extrapolated along the last slope up to 1.2x the discharged charge), and pulse power
capability from rest pulses only."""

from __future__ import annotations

import numpy as np
import pytest

from hybrid.surrogate.phases import Run, current_phases, current_runs, discharge_to_cutoff, first_charge, \
    phase_duration, pulse_power_capability


def test_phases_and_runs_split_the_current_by_sign():
    time_s = np.array([0.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0])
    current = np.array([0.0, 0.0, 5.0, 5.0, 0.0, -3.0, -3.0, 0.05])  # 0.05 A is below the threshold: rest
    assert current_phases(time_s, current, 0.1) == [(0, 0, 2), (1, 2, 4), (0, 4, 5), (-1, 5, 7), (0, 7, 8)]
    discharge, = current_runs(time_s, current, 0.1, +1)
    assert (discharge.start, discharge.stop, discharge.start_s, discharge.end_s) == (2, 4, 20.0, 40.0)
    assert discharge.duration_s == phase_duration(time_s, 2, 4) == 20.0  # until the next phase begins
    charge, = current_runs(time_s, current, 0.1, -1)
    assert charge.duration_s == 20.0


def test_discharge_to_cutoff_interpolates_between_samples():
    # 1 A, one-hour samples at 4.0, 3.0, 2.0 V: the 2.5 V cut-off lies half way through the second hour
    time_s, current = np.array([0.0, 3600.0, 7200.0]), np.ones(3)
    capacity, energy = discharge_to_cutoff(time_s, current, np.array([4.0, 3.0, 2.0]), Run(0, 3, 0.0, 10800.0), 2.5)
    assert capacity == pytest.approx(1.5)
    assert energy == pytest.approx(4.0 + 0.5 * 3.0)  # left-point rule: the sample's voltage for its hour


def test_discharge_to_cutoff_extrapolates_along_the_last_slope_at_most_to_1_2_times_the_charge():
    time_s, current, run = np.array([0.0, 3600.0, 7200.0]), np.ones(3), Run(0, 3, 0.0, 10800.0)
    # -0.7 V/A.h at the end: 2.7 V reaches 2.5 V 0.2/0.7 A.h later; the energy over it at the mean voltage
    capacity, energy = discharge_to_cutoff(time_s, current, np.array([4.0, 3.4, 2.7]), run, 2.5)
    assert capacity == pytest.approx(2.0 + 0.2 / 0.7)
    assert energy == pytest.approx(4.0 + 3.4 + 0.2 / 0.7 * 0.5 * (2.7 + 2.5))
    # -0.25 V/A.h would reach it 1 A.h later: capped at 1.2 x the 2 A.h discharged
    capacity, _ = discharge_to_cutoff(time_s, current, np.array([4.0, 3.0, 2.75]), run, 2.5)
    assert capacity == pytest.approx(2.4)


def test_pulse_power_comes_from_pulses_that_start_at_rest():
    # rest at 4.0 V, a 10 s 10 A pulse ending at 3.8 V (R = 20 mOhm), rest, then a 100 s discharge
    time_s = np.arange(0.0, 140.0, 1.0)
    current = np.zeros_like(time_s)
    current[10:20], current[30:130] = 10.0, 20.0
    voltage = np.full_like(time_s, 4.0)
    voltage[10:20], voltage[30:130] = 3.8, 3.0
    runs = current_runs(time_s, current, 0.1, +1)
    power = pulse_power_capability(time_s, current, voltage, runs, 0.1, max_pulse_s=60.0, cutoff_V=2.5)
    assert power == pytest.approx(2.5 * (4.0 - 2.5) / 0.02)  # the long discharge is no pulse
    assert np.isnan(pulse_power_capability(time_s, current, voltage, runs[1:], 0.1, 60.0, 2.5))


def test_first_charge_is_nan_without_a_charge():
    time_s = np.arange(3.0)
    assert all(np.isnan(first_charge(time_s, np.ones(3), np.ones(3), np.ones(3), [], 4.2)))
