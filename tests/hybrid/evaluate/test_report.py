"""Facts about the report's state-of-health figures."""

from __future__ import annotations

import numpy as np
import pytest

from hybrid.evaluate.report import capacity_to_cutoff


def test_capacity_to_cutoff_interpolates_and_extrapolates():
    charge = np.array([0.0, 1.0, 2.0, 3.0])
    assert capacity_to_cutoff(charge, np.array([4.0, 3.8, 3.4, 3.0]), 3.6) == pytest.approx(1.5)
    # not reached: extrapolate along the last slope (-0.2 V per A.h) from 3.2 V to 3.1 V ...
    assert capacity_to_cutoff(charge, np.array([4.0, 3.8, 3.4, 3.2]), 3.1) == pytest.approx(3.5)
    # ... by at most 20 % of the charge discharged
    assert capacity_to_cutoff(charge, np.array([4.0, 3.8, 3.4, 3.2]), 2.0) == pytest.approx(3.6)
