"""Read a corpus directory (``samples.parquet``, ``series/``, ``cycles/``) into usable cells."""

from __future__ import annotations

import logging
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from hybrid.data.columns import (
    AMBIENT,
    CURRENT,
    DESIGN_PREFIX,
    PHYSICS_PREFIX,
    PHYSICS_SOC,
    PHYSICS_TEMPERATURE,
    PHYSICS_VOLTAGE,
    SOC,
    SOC_RESIDUAL,
    TEMPERATURE,
    TEMPERATURE_RESIDUAL,
    TIME,
    TIME_STEP,
    VOLTAGE,
    VOLTAGE_RESIDUAL,
)
from sim.errors import DataError

log = logging.getLogger(__name__)


@dataclass
class Record:
    """One usable sample: its series columns (float64, sorted by time), static values and the
    reference per-cycle summary (columns -> arrays, possibly empty)."""

    sample_id: int
    columns: dict[str, np.ndarray]
    design: dict[str, float]
    ambient_temperature_K: float
    capacity_Ah: float
    cycles: dict[str, np.ndarray]

    @property
    def rows(self) -> int:
        return len(self.columns[TIME])

    def column(self, name: str) -> np.ndarray:
        """A series column, a derived one (time step, residuals) or a broadcast design value."""
        if name == TIME_STEP:
            return np.diff(self.columns[TIME], prepend=self.columns[TIME][0])
        if name == VOLTAGE_RESIDUAL:
            return self.columns[VOLTAGE] - self.columns[PHYSICS_VOLTAGE]
        if name == SOC_RESIDUAL:
            return self.columns[SOC] - self.columns[PHYSICS_SOC]
        if name == TEMPERATURE_RESIDUAL:
            return self.columns[TEMPERATURE] - self.columns[PHYSICS_TEMPERATURE]
        if name.startswith(DESIGN_PREFIX):
            return np.full(self.rows, self.design[name])
        if name not in self.columns:
            raise DataError(f"sample {self.sample_id}: column '{name}' is missing")
        return self.columns[name]

    def valid_rows(self, max_residual_V: float) -> np.ndarray:
        """(rows,) bool: rows where the physics voltage is finite and within max_residual_V of
        the reference (see FeatureOptions.max_residual_V)."""
        with np.errstate(invalid="ignore"):
            return np.abs(self.columns[VOLTAGE] - self.columns[PHYSICS_VOLTAGE]) <= max_residual_V

    def ageing_cycle_ends(self) -> np.ndarray:
        """End times [s] of the ageing cycles (Tag "cycle"), in order."""
        if "Tag" not in self.cycles:
            return np.empty(0)
        return np.asarray(self.cycles["End time [s]"], dtype=float)[self.cycles["Tag"] == "cycle"]


@dataclass
class Corpus:
    """The usable samples (status ok or truncated) of a corpus directory."""

    path: Path
    samples: pd.DataFrame
    cells: dict[int, Record]
    physics_columns: list[str]
    design_columns: list[str]
    spec: dict = field(default_factory=dict)  # the spec in the corpus manifest ({} without one)

    @property
    def sample_ids(self) -> list[int]:
        return sorted(self.cells)


REQUIRED_SERIES = (TIME, CURRENT, AMBIENT, VOLTAGE, PHYSICS_VOLTAGE)


def load_corpus(path: str | Path) -> Corpus:
    """Read ``samples.parquet``, ``series/`` and ``cycles/`` of the corpus at ``path``.

    Failed samples are skipped; a sample whose series holds non-finite values is skipped with
    a warning. Raises DataError when a file or a required column is missing.
    """
    path = Path(path)
    samples_file = path / "samples.parquet"
    if not samples_file.is_file():
        raise DataError(f"{path}: not a corpus (no samples.parquet); allowed: a directory written by hybat corpus")
    samples = pd.read_parquet(samples_file)
    samples = samples[samples["status"].isin(["ok", "truncated"])].set_index("sample_id", drop=False)
    series = _read_parts(path / "series")
    missing = [name for name in REQUIRED_SERIES if name not in series.columns]
    if missing:
        raise DataError(f"{path / 'series'}: column '{missing[0]}' is missing; required: {', '.join(REQUIRED_SERIES)}")
    cycles = _read_parts(path / "cycles", required=False)
    if "Source" in cycles.columns:
        cycles = cycles[cycles["Source"] == "reference"]
    physics_columns = [name for name in series.columns if name.startswith(PHYSICS_PREFIX)]
    design_columns = sorted(name for name in samples.columns if name.startswith(DESIGN_PREFIX))
    numeric = [name for name in series.columns if name != "sample_id" and pd.api.types.is_numeric_dtype(series[name])]
    cycles_by_id = dict(tuple(cycles.groupby("sample_id"))) if len(cycles) else {}
    cells = {}
    for sample_id, rows in series.groupby("sample_id", sort=True):
        if sample_id not in samples.index:
            continue
        rows = rows.sort_values(TIME, kind="stable")
        columns = {name: rows[name].to_numpy(dtype=float) for name in numeric}
        # a non-finite physics voltage only invalidates its rows (Record.valid_rows)
        bad = [name for name in numeric if must_be_finite(name) and not np.all(np.isfinite(columns[name]))]
        if bad:
            log.warning("sample %s: non-finite values in '%s'; skipped", sample_id, bad[0])
            continue
        cells[int(sample_id)] = _cell(int(sample_id), columns, samples.loc[sample_id], design_columns,
                                      cycles_by_id.get(sample_id))
    if not cells:
        raise DataError(f"{path}: no usable samples (status ok or truncated with series rows)")
    samples = samples.loc[sorted(cells)]
    manifest = path / "manifest.json"
    spec = json.loads(manifest.read_text()).get("spec", {}) if manifest.is_file() else {}
    return Corpus(path, samples, cells, physics_columns, design_columns, spec)


def must_be_finite(name: str) -> bool:
    """Whether a non-finite value in series column ``name`` makes its sample unusable (a
    non-finite physics voltage only invalidates its rows, see Record.valid_rows)."""
    return name != PHYSICS_VOLTAGE and (name in REQUIRED_SERIES or name.startswith(PHYSICS_PREFIX) or name == SOC)


def _read_parts(folder: Path, required: bool = True) -> pd.DataFrame:
    parts = sorted(folder.glob("part-*.parquet"))
    if not parts:
        if required:
            raise DataError(f"{folder}: no part-*.parquet files")
        return pd.DataFrame()
    return pd.concat([pq.read_table(part).to_pandas() for part in parts], ignore_index=True)


def _cell(sample_id: int, columns: dict[str, np.ndarray], record: pd.Series, design_columns: list[str],
          cycles: pd.DataFrame | None) -> Record:
    capacity = next((float(record[name]) for name in ("physics_capacity_Ah", "capacity_Ah")
                     if name in record and np.isfinite(record[name])), float("nan"))
    summary = {} if cycles is None else {
        name: cycles[name].to_numpy() for name in cycles.columns if name not in ("sample_id", "Source")}
    return Record(sample_id, columns, {name: float(record[name]) for name in design_columns},
                float(record.get("ambient_temperature_K", columns[AMBIENT][0])), capacity, summary)
