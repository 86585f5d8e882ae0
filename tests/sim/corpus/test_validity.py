"""The physics-validity rule: a pair ends at the first sample outside the widened window."""

import numpy as np
import pytest

from sim.corpus.validity import PHYSICS_VOLTAGE_MARGIN_V, left_window_message, rows_inside_window

WINDOW_V = (2.5, 4.2)


def test_rows_are_cut_exactly_at_the_first_sample_outside_the_widened_window():
    lower, upper = WINDOW_V
    voltage = np.array([3.7, lower - PHYSICS_VOLTAGE_MARGIN_V, upper + PHYSICS_VOLTAGE_MARGIN_V,
                        upper + PHYSICS_VOLTAGE_MARGIN_V + 1e-6, 3.7])
    assert rows_inside_window(voltage, WINDOW_V) == 3  # the bounds are inside, the next step is not
    below = np.array([3.0, 2.9, lower - PHYSICS_VOLTAGE_MARGIN_V - 1e-6, 3.0])
    assert rows_inside_window(below, WINDOW_V) == 2


def test_a_voltage_inside_throughout_keeps_every_row_and_nan_is_outside():
    assert rows_inside_window(np.linspace(2.3, 4.4, 50), WINDOW_V) == 50
    assert rows_inside_window(np.array([3.7, np.nan, 3.7]), WINDOW_V) == 1
    assert rows_inside_window(np.array([]), WINDOW_V) == 0


def test_the_margin_is_the_synthetic_corpora_margin_and_the_message_names_it():
    assert PHYSICS_VOLTAGE_MARGIN_V == pytest.approx(0.3)
    message = left_window_message(WINDOW_V, 1234.4)
    assert message == "left its voltage window [2.5, 4.2] V by more than 0.3 V at t = 1234 s; series cut there"
