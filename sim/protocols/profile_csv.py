"""User drive profiles from CSV: a vehicle speed trace (``time_s`` and ``speed_mps`` or
``speed_kmh``) or a cell current profile (``time_s`` and ``current_A``, positive on discharge).
Every problem is a DataError naming the file, the column and the line (the header is line 1).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from sim.errors import DataError
from sim.protocols.drive_cycles import KMH_TO_MPS

logger = logging.getLogger(__name__)


def read_speed_csv(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read a user speed trace from a CSV with columns ``time_s`` and ``speed_mps`` or ``speed_kmh``.

    Returns:
        ``(time_s, speed_mps)``, shape (n,); km/h is converted to m/s.

    Raises:
        DataError: naming the file and column, for a missing or ambiguous speed column,
            non-numeric or NaN values, non-increasing time or negative speed.
    """
    path = Path(path)
    table = _read_table(path)
    speed_columns = [column for column in ("speed_mps", "speed_kmh") if column in table.columns]
    if len(speed_columns) != 1:
        found = "both" if speed_columns else "neither"
        raise DataError(f"{path}: column 'speed_mps' or 'speed_kmh' expected (exactly one), found {found}")
    speed_column = speed_columns[0]
    time_s = _time_column(path, table)
    speed = _numeric_column(path, table, speed_column)
    negative = np.flatnonzero(speed < 0)
    if negative.size:
        row = negative[0]
        raise DataError(
            f"{path}: column '{speed_column}' has negative speed {speed[row]} at line {row + 2}; speed must be >= 0"
        )
    speed_mps = speed * KMH_TO_MPS if speed_column == "speed_kmh" else speed
    logger.debug("read %d speed samples from %s", time_s.size, path)
    return time_s, speed_mps


def read_current_csv(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read a user cell current profile from a CSV with columns ``time_s`` and ``current_A``.

    Returns:
        ``(time_s, current_A)``, shape (n,), current positive on discharge.

    Raises:
        DataError: naming the file and column, for a missing column, non-numeric or NaN
            values or non-increasing time.
    """
    path = Path(path)
    table = _read_table(path)
    time_s = _time_column(path, table)
    current_A = _numeric_column(path, table, "current_A")
    logger.debug("read %d current samples from %s", time_s.size, path)
    return time_s, current_A


def _read_table(path: Path) -> pd.DataFrame:
    """CSV file as a DataFrame with stripped column names; DataError if unreadable or too short."""
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        table = pd.read_csv(path, skipinitialspace=True)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: not a readable CSV ({str(error).splitlines()[0]})") from None
    table.columns = [str(column).strip() for column in table.columns]
    if len(table) < 2:
        raise DataError(f"{path}: {len(table)} data row(s); at least 2 are needed")
    return table


def _numeric_column(path: Path, table: pd.DataFrame, column: str) -> np.ndarray:
    """Column as a finite float array; DataError naming the file, the column and the line."""
    if column not in table.columns:
        raise DataError(f"{path}: column '{column}' is missing; found columns: {', '.join(table.columns)}")
    values = pd.to_numeric(table[column], errors="coerce").to_numpy(dtype=float)
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        row = bad[0]
        # Line numbers count the header as line 1.
        raise DataError(
            f"{path}: column '{column}' has a missing, NaN or non-numeric value '{table[column].iloc[row]}' "
            f"at line {row + 2}"
        )
    return values


def _time_column(path: Path, table: pd.DataFrame) -> np.ndarray:
    """The ``time_s`` column; DataError unless strictly increasing."""
    time_s = _numeric_column(path, table, "time_s")
    steps = np.flatnonzero(np.diff(time_s) <= 0)
    if steps.size:
        row = steps[0]
        raise DataError(
            f"{path}: column 'time_s' is not strictly increasing at line {row + 3} "
            f"({time_s[row]} then {time_s[row + 1]})"
        )
    return time_s
