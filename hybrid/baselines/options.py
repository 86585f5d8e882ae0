"""The run config's ``evaluation.ecm``: how `hybat evaluate` fits the ECM baseline on a run's
training records. Options only (pydantic, no fitting code), so the training config can hold them."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from sim.config import StrictModel

OCV_FROM_RELAXATIONS = "relaxations"
OCV_CSV_SUFFIXES = (".csv", ".csv.gz")
OCV_CSV_COLUMNS = ("soc", "voltage_V")
# the scales of hybrid.baselines.ecm.INTERPOLATION_SCALES (a test keeps the two lists equal)
Scale = Literal["linear", "log", "arrhenius"]


class ECMOptions(StrictModel):
    """The ECM baseline (OCV + R0 + two RC pairs + hysteresis, :mod:`hybrid.baselines.ecm`), one
    joint fit per ambient temperature of the run's train records, interpolated to the others.

    ocv: "relaxations": the OCV from the voltage at the end of every rest of the train records
        (:func:`hybrid.baselines.ocv_from_relaxations`); or a CSV file (.csv or .csv.gz; a
        relative path is taken from the working directory and stored absolute) with columns
        ``soc`` (0..1) and ``voltage_V`` [V].
    scale: how the resistances and time constants are carried between temperatures
        ("arrhenius", "log" or "linear"; :func:`hybrid.baselines.interpolate_parameters`).
    min_rest_s: [s] the shortest rest whose end is an OCV point (ocv "relaxations" only).
    """

    ocv: str = OCV_FROM_RELAXATIONS
    scale: Scale = "arrhenius"
    min_rest_s: float = Field(1800.0, gt=0.0)

    @field_validator("ocv")
    @classmethod
    def _relaxations_or_csv(cls, ocv: str) -> str:
        if ocv == OCV_FROM_RELAXATIONS:
            return ocv
        if not ocv.lower().endswith(OCV_CSV_SUFFIXES):
            raise ValueError(f"allowed: '{OCV_FROM_RELAXATIONS}' or the path of a .csv or .csv.gz file with "
                             f"columns {' and '.join(OCV_CSV_COLUMNS)}")
        return str(Path(ocv).expanduser().resolve())
