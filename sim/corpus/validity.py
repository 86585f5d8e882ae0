"""Where a physics model driven by a measured current stops meaning anything.

Driven past its own full or empty state (the plant holds more charge, the measured charge
counter drifted, or an electrode or the electrolyte ran out), the physics model runs on past its
cut-offs to follow the current and its voltage runs off to its OCP asymptotes. A pair (synthetic
corpus sample, measured test, active-learning record) ends at the first sample whose physics
voltage lies outside the cell's voltage window widened by PHYSICS_VOLTAGE_MARGIN_V.
"""

from __future__ import annotations

import numpy as np

# 0.3 V: what the synthetic corpora have always used (their samples must not change)
PHYSICS_VOLTAGE_MARGIN_V = 0.3


def rows_inside_window(voltage_V: np.ndarray, window_V: tuple[float, float]) -> int:
    """How many leading samples of the physics voltage ``voltage_V`` [V] lie inside
    ``window_V`` = (lower, upper) [V] widened by PHYSICS_VOLTAGE_MARGIN_V on both sides
    (bounds included; a NaN voltage is outside)."""
    lower, upper = window_V
    inside = (voltage_V >= lower - PHYSICS_VOLTAGE_MARGIN_V) & (voltage_V <= upper + PHYSICS_VOLTAGE_MARGIN_V)
    return len(voltage_V) if inside.all() else int(np.argmin(inside))


def left_window_message(window_V: tuple[float, float], time_s: float) -> str:
    """Why a pair was cut at time ``time_s`` [s] (the first sample outside the widened window)."""
    lower, upper = window_V
    return (f"left its voltage window [{lower}, {upper}] V by more than {PHYSICS_VOLTAGE_MARGIN_V} V at "
            f"t = {time_s:.0f} s; series cut there")
