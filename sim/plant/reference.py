"""The reference side: a synthetic plant the physics model does not know exactly.

A :class:`ReferenceSpec` is a richer PyBaMM fidelity, parameter offsets the physics model does
not have (``overrides``, e.g. a contact resistance), cell-to-cell variability (log-normal
scales of chosen parameters, drawn per sample) and a sensor model. :func:`measure_reference`
turns the plant's true trajectory into what a cycler would record, including the charge
counter that drives the physics counterpart.
"""

from __future__ import annotations

import numpy as np
from pydantic import Field, field_validator

from sim.config import StrictModel
from sim.physics import Fidelity
from sim.plant.sensor import SensorSpec, measure
from sim.physics import Trajectory

# The voltage of the sample's plant at nominal variability (no per-cell scales) driven by the
# same measured current: the best a model can do that knows the plant population but not the
# cell (a corpus's ``floor`` option; see sim.corpus.sample).
NOMINAL_PLANT_VOLTAGE = "Nominal plant voltage [V]"
# Reference columns kept as ground truth beside the measured channels.
TRUTH_COLUMNS = ("State of charge", "Loss of lithium inventory [%]",
                 "Loss of active material in negative electrode [%]",
                 "Loss of active material in positive electrode [%]",
                 "X-averaged negative SEI thickness [m]", NOMINAL_PLANT_VOLTAGE)


class ReferenceSpec(StrictModel):
    """What the hybrid is corrected toward.

    fidelity: the plant's PyBaMM model (richer than the physics model).
    overrides: PyBaMM parameter values the plant has and the physics model does not.
    variability: parameter -> standard deviation of ln(scale); each sample draws a scale
        exp(N(0, sd)) per parameter (cell-to-cell variability unknown to the physics model).
    sensor: the measurement chain; null records the plant's true values.
    """

    fidelity: Fidelity = Fidelity(model="dfn")
    overrides: dict[str, float] = Field(default_factory=dict)
    variability: dict[str, float] = Field(default_factory=dict)
    sensor: SensorSpec | None = None

    @field_validator("variability")
    @classmethod
    def _sane_spread(cls, variability: dict[str, float]) -> dict[str, float]:
        for name, sd in variability.items():
            if not 0.0 <= sd <= 1.0:
                raise ValueError(f"variability of '{name}' = {sd}: the sd of ln(scale) must be in [0, 1]")
        return variability

    def draw_scales(self, rng: np.random.Generator) -> dict[str, float]:
        """One sample's variability scales, in the spec's (sorted) parameter order."""
        return {name: float(np.exp(rng.normal(0.0, self.variability[name])))
                for name in sorted(self.variability)}


def measure_reference(reference: Trajectory, sensor: SensorSpec | None,
                      rng: np.random.Generator) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """What the cycler records of the plant: measured current, voltage and temperature, and
    its charge counter (the integral of its own current reading, so it carries the same gain
    and offset errors). Returns (columns, the sensor's per-sample draws)."""
    columns = dict(reference.columns)
    if sensor is None:
        return columns, {}
    measured, draws = measure(columns, sensor, rng, reference.metadata.get("ripple"))
    time_h = (columns["Time [s]"] - columns["Time [s]"][0]) / 3600.0
    measured["Discharge capacity [A.h]"] = ((1.0 + draws["current_gain_error"]) * columns["Discharge capacity [A.h]"]
                                            + draws["current_offset_A"] * time_h)
    return measured, draws
