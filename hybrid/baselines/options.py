"""The run config's ``evaluation.ecm``: how `hybat evaluate` fits the ECM baseline on a run's
training records. Options only (pydantic, no fitting code), so the training config can hold them."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from sim.config import StrictModel

OCV_FROM_RELAXATIONS = "relaxations"
OCV_CSV_SUFFIXES = (".csv", ".csv.gz")
OCV_CSV_COLUMNS = ("soc", "voltage_V")
# the scales of hybrid.baselines.ecm.INTERPOLATION_SCALES (a test keeps the two lists equal)
Scale = Literal["linear", "log", "arrhenius"]


class SlowOCVTests(StrictModel):
    """Slow (e.g. C/30) full discharge and charge tests whose mean is the OCV
    (:func:`hybrid.baselines.ocv.ocv_from_cycler_files`).

    discharge, charge: cycler files (paths or globs relative to ``data_dir``, matches sorted) run
        one after the other: the first is the slow leg, the others finish it to empty or full
        (A123: scripts 1 then 2, scripts 3 then 4) and add only their charge.
    data_dir: the folder they are in; ``${HYBAT_REAL_DATA}`` and a relative path are resolved as in
        a pairing spec (:func:`sim.measured.spec.resolve_data_dir`) when `hybat evaluate` runs.
    """

    discharge: list[str] = Field(min_length=1)
    charge: list[str] = Field(min_length=1)
    data_dir: str = "${HYBAT_REAL_DATA}"


class ECMOptions(StrictModel):
    """The ECM baseline (OCV + R0 + two RC pairs + hysteresis, :mod:`hybrid.baselines.ecm`), one
    joint fit per ambient temperature of the run's train records, interpolated to the others.

    ocv: "relaxations": the OCV from the voltage at the end of every rest of the train records
        (:func:`hybrid.baselines.ocv_from_relaxations`); a CSV file (.csv or .csv.gz; a
        relative path is taken from the working directory and stored absolute) with columns
        ``soc`` (0..1) and ``voltage_V`` [V]; or ``{discharge: [FILES], charge: [FILES]}``, the
        mean of slow discharge and charge tests (:class:`SlowOCVTests`).
    scale: how the resistances and time constants are carried between temperatures
        ("arrhenius", "log" or "linear"; :func:`hybrid.baselines.interpolate_parameters`).
    min_rest_s: [s] the shortest rest whose end is an OCV point (ocv "relaxations" only).
    """

    ocv: str | SlowOCVTests = OCV_FROM_RELAXATIONS
    scale: Scale = "arrhenius"
    min_rest_s: float = Field(1800.0, gt=0.0)

    @field_validator("ocv", mode="before")
    @classmethod
    def _relaxations_csv_or_slow_tests(cls, ocv: Any) -> str | SlowOCVTests:
        if isinstance(ocv, (dict, SlowOCVTests)):
            return SlowOCVTests.model_validate(ocv)  # its errors name evaluation.ecm.ocv.<key>
        if ocv == OCV_FROM_RELAXATIONS:
            return ocv
        if not isinstance(ocv, str) or not ocv.lower().endswith(OCV_CSV_SUFFIXES):
            raise ValueError(f"allowed: '{OCV_FROM_RELAXATIONS}', the path of a .csv or .csv.gz file with "
                             f"columns {' and '.join(OCV_CSV_COLUMNS)}, or {{discharge: [FILES], charge: [FILES]}}")
        return str(Path(ocv).expanduser().resolve())
