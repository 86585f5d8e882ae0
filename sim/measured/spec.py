"""What a measured pairing reads: :class:`PairingSpec` (YAML) names the measured test files
(glob patterns relative to a data directory), how to read them, the physics cell and fidelity,
and how to calibrate. The data directory may hold ``${HYBAT_REAL_DATA}`` (default:
``<repo>/../shared/data/real``) or be relative to it; nothing is copied.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from sim.cells import CellSpec
from sim.config import StrictModel
from sim.errors import ConfigError
from sim.measured.calibrate import CalibrationOptions
from sim.measured.columns import ColumnMap, CurrentSign
from sim.physics import Fidelity

REAL_DATA_VARIABLE = "HYBAT_REAL_DATA"


def default_real_data_dir() -> Path:
    """``$HYBAT_REAL_DATA``, else ``<repo>/../shared/data/real``."""
    fallback = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "real"
    return Path(os.environ.get(REAL_DATA_VARIABLE) or fallback)


class TestGroup(StrictModel):
    """Measured tests matched by one glob pattern (relative to the data directory).

    ambient_temperature_C: the chamber temperature [degC] of every matched test.
    ambient_manifest_column: else, the column of the ``manifest.csv`` beside the files (or in a
        folder above them, inside the data directory) that holds it [degC], looked up by the
        file's path relative to that manifest. A file with its own ambient column uses it.
    full_to_empty: the test (with its ``continued_by`` companion) runs from full to empty, so
        its net discharge is the cell's throughput capacity: reported, and the start of the
        fitted capacity (or the capacity itself with calibration capacity: throughput).
    continued_by: file-name substitutions (old: new) naming a companion file that continues
        the test's discharge to empty (A123: {script1: script2}); its net discharge is added
        to the test's own.
    tag: the cycle tag of these tests in the cycles table.
    """

    pattern: str
    ambient_temperature_C: float | None = Field(None, ge=-100.0, le=150.0)
    ambient_manifest_column: str | None = None
    full_to_empty: bool = False
    continued_by: dict[str, str] = Field(default_factory=dict)
    tag: str = "test"


class ChargeCounters(StrictModel):
    """The cycler's cumulative discharge and charge Ah columns (used for throughput only:
    they are quantised, which would make a 1 s held current noisy)."""

    discharge: str
    charge: str


class CalibrationSpec(StrictModel):
    """How the physics cell is calibrated.

    mode: "shared" fits once on ``file`` and applies the result to every test (the capacity and
        balance of one cell, carried across temperatures); "per_test" fits every test on its
        own record; "none" keeps the nominal cell.
    file: for "shared", the test file (path relative to the data directory) to fit on.
    options: what to fit and how (see sim.measured.calibrate.CalibrationOptions).
    temperature_files: for "shared", globs (relative to the data directory) of tests at several
        temperatures on which, after the fit on ``file``, a series resistance at 25 degC and its
        activation energy are fitted (sim.measured.temperature_fit; needs
        physics.contact_resistance). Training tests only: the fit is part of the model.
    """

    mode: Literal["shared", "per_test", "none"] = "shared"
    file: str | None = None
    options: CalibrationOptions = CalibrationOptions()
    temperature_files: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _file_for_shared(self) -> "CalibrationSpec":
        if self.temperature_files and self.mode != "shared":
            raise ValueError(f"temperature_files need mode 'shared', got mode '{self.mode}'")
        if self.mode == "shared" and self.file is None:
            raise ValueError("mode 'shared' needs file: the test to calibrate on")
        return self


class PairingSpec(StrictModel):
    """Measured tests and their physics counterpart.

    data_dir: where the measured files are; may hold ${HYBAT_REAL_DATA} (and other environment
        variables); a relative path is taken relative to $HYBAT_REAL_DATA.
    tests: groups of test files (glob patterns relative to data_dir).
    columns: the files' column map; null auto-detects (see sim.measured.columns.COLUMN_ALIASES).
    current_sign: the files' current convention.
    charge_counters: the cycler's cumulative Ah columns, when logged (throughput capacity).
    resample_period_s: resample every test onto this grid [s] (anti-aliased); null keeps the
        measured grid.
    end_below_voltage_V: each record ends at its first sample below this voltage (a cycler
        that overshoots its cut-off: the physics model is not meant to follow it there).
    cell: the nominal physics cell; its ambient temperature is replaced per test.
    physics: the physics model.
    compare_nominal: also run the nominal cell on every full record (for RMSE before
        calibration; doubles the solve time).
    """

    name: str = "measured"
    data_dir: str = "${HYBAT_REAL_DATA}"
    tests: list[TestGroup] = Field(min_length=1)
    columns: ColumnMap | None = None
    current_sign: CurrentSign = "discharge_positive"
    charge_counters: ChargeCounters | None = None
    resample_period_s: float | None = Field(None, gt=0.0, le=3600.0)
    end_below_voltage_V: float | None = Field(None, gt=0.0, le=5.0)
    cell: CellSpec
    physics: Fidelity = Fidelity(model="spme", thermal="lumped")
    calibration: CalibrationSpec = CalibrationSpec(mode="none")
    compare_nominal: bool = True

    def fingerprint(self) -> str:
        """Hash of the resolved spec: a resumed run must match it."""
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()[:16]


def resolve_data_dir(data_dir: str) -> Path:
    """``data_dir`` with environment variables expanded (``${HYBAT_REAL_DATA}`` defaults to
    :func:`default_real_data_dir`); a relative result is relative to that default."""
    real_data = default_real_data_dir()
    expanded = os.path.expandvars(data_dir.replace("${" + REAL_DATA_VARIABLE + "}", str(real_data))
                                  .replace("$" + REAL_DATA_VARIABLE, str(real_data)))
    if "$" in expanded:
        raise ConfigError(f"data_dir = {data_dir!r}: unset environment variable in {expanded!r}")
    path = Path(expanded)
    return path if path.is_absolute() else real_data / path
