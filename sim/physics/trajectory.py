"""Trajectory: the result of one simulation, as numpy columns with PyBaMM names.

``columns`` holds the time series ("Time [s]", "Current [A]", "Voltage [V]", ...), ``cycles``
the per-cycle summary (one row per experiment cycle), ``status`` is "ok", "truncated" (the
protocol stopped early, e.g. an infeasible step) or "failed" (no usable data), and
``message`` says why. Trajectories write to and read from Parquet without losing anything.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from sim.errors import DataError

Status = Literal["ok", "truncated", "failed"]


@dataclass
class Trajectory:
    columns: dict[str, np.ndarray]
    cycles: dict[str, np.ndarray]
    status: Status
    message: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def failed(cls, message: str, metadata: dict[str, Any] | None = None) -> "Trajectory":
        """A trajectory with no data, carrying the reason."""
        return cls(columns={}, cycles={}, status="failed", message=message, metadata=metadata or {})

    @property
    def ok(self) -> bool:
        return self.status != "failed"

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self.columns:
            raise KeyError(f"no column {name!r}; available: {', '.join(self.columns)}")
        return self.columns[name]

    def summary(self) -> dict[str, Any]:
        """Headline figures: duration, cycles, capacity fade, voltage range."""
        if not self.ok:
            return {"status": self.status, "message": self.message}
        voltage = self.columns["Voltage [V]"]
        capacity = self.cycles.get("Discharge capacity [A.h]", np.array([]))
        tags = self.cycles.get("Tag", np.array([]))
        # fade from the capacity checks when the protocol has them, else from the cycles
        kind = "capacity" if np.any(tags == "capacity") else "cycle"
        checks = capacity[tags == kind] if len(capacity) else capacity
        fade = 100.0 * (1 - checks[-1] / checks[0]) if len(checks) > 1 else 0.0
        return {
            "status": self.status,
            "message": self.message,
            "duration_h": float(self.columns["Time [s]"][-1] / 3600.0),
            "samples": int(len(voltage)),
            "cycles": int(len(tags)),
            "capacity_fade_pct": float(fade),
            "voltage_min_V": float(voltage.min()),
            "voltage_max_V": float(voltage.max()),
        }

    def to_parquet(self, path: str | Path) -> None:
        """Write the time series to ``path`` (metadata, status and cycles go in the schema
        metadata so one file holds the whole trajectory)."""
        table = pa.table({name: np.asarray(values) for name, values in self.columns.items()})
        extra = {
            "status": self.status,
            "message": self.message,
            "metadata": self.metadata,
            "cycles": {name: np.asarray(values).tolist() for name, values in self.cycles.items()},
        }
        table = table.replace_schema_metadata({"hybat.trajectory": json.dumps(extra, default=str)})
        pq.write_table(table, path)

    @classmethod
    def from_parquet(cls, path: str | Path) -> "Trajectory":
        """Read a trajectory written by :meth:`to_parquet`."""
        table = pq.read_table(path)
        raw = (table.schema.metadata or {}).get(b"hybat.trajectory")
        if raw is None:
            raise DataError(f"{path}: not a hybat trajectory file (no 'hybat.trajectory' metadata)")
        extra = json.loads(raw)
        columns = {name: table.column(name).to_numpy() for name in table.column_names}
        cycles = {name: np.asarray(values) for name, values in extra["cycles"].items()}
        return cls(columns, cycles, extra["status"], extra["message"], extra["metadata"])
