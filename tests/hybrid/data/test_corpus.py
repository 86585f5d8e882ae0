"""Facts about reading a corpus: failed samples skipped, derived columns, a clear error when the
directory is not a corpus.

The corpus here is synthetic, written with pandas in the on-disk contract format (no
simulation), so every test runs in milliseconds; :func:`write_corpus` serves the other data tests.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hybrid.data.columns import TIME, TIME_STEP
from hybrid.data.corpus import load_corpus
from sim.errors import DataError

CELLS = 12
AGEING_CYCLES = 6
TEMPERATURES = (288.15, 308.15)
TRUTH = ("Voltage [V]", "Cell temperature [K]", "State of charge", "Loss of lithium inventory [%]",
         "X-averaged negative SEI thickness [m]")


def _series(sample_id: int, rng: np.random.Generator, ambient: float) -> tuple[dict, dict]:
    """One cell: AGEING_CYCLES blocks of 1 s pulses, a rest and 120 s cycling; returns series and cycles."""
    time, current, tags, starts, ends = [], [], [], [], []
    clock = 0.0
    for cycle in range(AGEING_CYCLES):
        starts.append(clock)
        for step, amps in [(1.0, 10.0)] * 10 + [(1.0, 0.0)] * 20 + [(120.0, 5.0)] * 15 + [(120.0, -2.5)] * 30:
            time.append(clock)
            current.append(amps)
            clock += step
        ends.append(clock - 120.0)
        tags.append("cycle")
    time, current = np.array(time), np.array(current) + rng.normal(0, 0.01, len(time)) * (np.array(current) != 0)
    charge = np.cumsum(np.r_[0.0, current[:-1] * np.diff(time)]) / 3600.0
    physics_soc = 0.9 - charge / 5.0
    physics_voltage = 3.4 + 0.7 * physics_soc - 0.01 * current
    ageing = np.linspace(0.0, 1.0, len(time))
    residual = -0.004 * current - 0.03 * ageing + 0.002 * rng.normal(size=len(time))
    series = {
        "sample_id": np.full(len(time), sample_id), "Time [s]": time, "Current [A]": current,
        "Ambient temperature [K]": np.full(len(time), ambient), "Voltage [V]": physics_voltage + residual,
        "Cell temperature [K]": ambient + 0.1 * np.abs(current), "Discharge capacity [A.h]": charge,
        "State of charge": physics_soc - 0.01 * ageing, "Loss of lithium inventory [%]": ageing,
        "X-averaged negative SEI thickness [m]": 1e-8 * (1 + ageing),
        "Physics voltage [V]": physics_voltage, "Physics cell temperature [K]": np.full(len(time), ambient),
        "Physics state of charge": physics_soc, "Physics loss of lithium inventory [%]": 0.5 * ageing,
    }
    cycles = {"sample_id": np.full(2 * len(tags), sample_id),
              "Source": ["reference"] * len(tags) + ["physics"] * len(tags),
              "Cycle number": list(range(1, len(tags) + 1)) * 2, "Tag": tags * 2,
              "Start time [s]": starts * 2, "End time [s]": ends * 2}
    return series, cycles


def write_corpus(path: Path, temperatures: tuple[float, ...] = TEMPERATURES, cells: int = CELLS) -> Path:
    """A corpus in the contract format: ``cells`` usable samples plus one failed sample."""
    rng = np.random.default_rng(0)
    (path / "series").mkdir(parents=True)
    (path / "cycles").mkdir()
    records = []
    for sample_id in range(cells):
        ambient = temperatures[sample_id % len(temperatures)]
        series, cycles = _series(sample_id, rng, ambient)
        pd.DataFrame(series).to_parquet(path / "series" / f"part-{sample_id:06d}.parquet")
        pd.DataFrame(cycles).to_parquet(path / "cycles" / f"part-{sample_id:06d}.parquet")
        records.append({"sample_id": sample_id, "status": "ok", "message": "",
                        "design_negative_porosity": 0.2 + 0.01 * sample_id,
                        "scale_Negative particle diffusivity [m2.s-1]": float(rng.lognormal(0, 0.3)),
                        "ambient_temperature_K": ambient, "protocol_kind": "ageing_campaign",
                        "capacity_Ah": 5.0, "physics_capacity_Ah": 5.0})
    records.append({"sample_id": cells, "status": "failed", "message": "reference: solver failed",
                    "design_negative_porosity": 0.25, "scale_Negative particle diffusivity [m2.s-1]": 1.0,
                    "ambient_temperature_K": temperatures[0], "protocol_kind": "ageing_campaign",
                    "capacity_Ah": np.nan, "physics_capacity_Ah": np.nan})
    pd.DataFrame(records).to_parquet(path / "samples.parquet")
    return path


def test_failed_samples_are_skipped(corpus):
    assert corpus.sample_ids == list(range(CELLS))


def test_derived_columns_are_computed_from_the_series(corpus):
    cell = corpus.cells[0]
    time_step = cell.column(TIME_STEP)
    assert time_step[0] == 0.0 and np.all(time_step[1:] > 0)
    np.testing.assert_array_equal(np.cumsum(time_step) + cell.columns[TIME][0], cell.columns[TIME])
    np.testing.assert_array_equal(cell.column("Voltage residual [V]"),
                                  cell.columns["Voltage [V]"] - cell.columns["Physics voltage [V]"])
    np.testing.assert_array_equal(cell.column("design_negative_porosity"), np.full(cell.rows, 0.2))
    with pytest.raises(DataError, match="'Nonexistent column' is missing"):
        cell.column("Nonexistent column")


def test_a_directory_without_samples_is_refused(tmp_path):
    with pytest.raises(DataError, match="not a corpus"):
        load_corpus(tmp_path)
