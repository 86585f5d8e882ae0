"""Trajectory: one file holds columns, cycles, status and metadata; headline summary figures."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sim.cells.spec import CellSpec
from sim.errors import DataError
from sim.physics.fidelity import Fidelity
from sim.physics.simulate import simulate
from sim.physics.trajectory import Trajectory
from sim.protocols.steps import Cycling


def _synthetic(status: str = "ok") -> Trajectory:
    """Two capacity checks (4.0 then 3.6 Ah) around one cycle, on a 1 s grid."""
    time_s = np.arange(7201.0)
    columns = {"Time [s]": time_s, "Current [A]": np.ones_like(time_s),
               "Voltage [V]": np.linspace(4.2, 3.0, time_s.size)}
    cycles = {"Tag": np.array(["capacity", "cycle", "capacity"]),
              "Discharge capacity [A.h]": np.array([4.0, 3.9, 3.6]),
              "Cycle number": np.array([1, 2, 3])}
    metadata = {"cell": {"parameter_set": "OKane2022", "design": {"negative_porosity": 0.3}},
                "capacity_Ah": 5.0, "seed": 7, "tags": ["a", "b"]}
    return Trajectory(columns, cycles, status, "stopped at step 3" if status == "truncated" else "", metadata)


def test_trajectory_round_trips_through_parquet(tmp_path):
    trajectory = simulate(CellSpec(), Cycling(cycles=1, period_s=120.0), Fidelity())
    trajectory.to_parquet(tmp_path / "t.parquet")
    again = type(trajectory).from_parquet(tmp_path / "t.parquet")
    np.testing.assert_array_equal(again["Voltage [V]"], trajectory["Voltage [V]"])
    np.testing.assert_array_equal(again.cycles["Discharge capacity [A.h]"],
                                  trajectory.cycles["Discharge capacity [A.h]"])
    assert again.status == trajectory.status and again.metadata["cell"] == trajectory.metadata["cell"]


def test_every_part_survives_parquet_exactly(tmp_path):
    trajectory = _synthetic("truncated")
    trajectory.to_parquet(tmp_path / "t.parquet")
    again = Trajectory.from_parquet(tmp_path / "t.parquet")
    assert again.columns.keys() == trajectory.columns.keys()
    for name, values in trajectory.columns.items():
        np.testing.assert_array_equal(again[name], values)
    for name, values in trajectory.cycles.items():
        np.testing.assert_array_equal(again.cycles[name], values)
    assert (again.status, again.message, again.metadata) == ("truncated", "stopped at step 3", trajectory.metadata)


def test_the_file_is_plain_parquet_with_one_column_per_series(tmp_path):
    _synthetic().to_parquet(tmp_path / "t.parquet")
    table = pd.read_parquet(tmp_path / "t.parquet")
    assert list(table.columns) == ["Time [s]", "Current [A]", "Voltage [V]"] and len(table) == 7201


def test_a_parquet_file_without_trajectory_metadata_is_a_data_error_naming_it(tmp_path):
    path = tmp_path / "plain.parquet"
    pd.DataFrame({"Voltage [V]": [3.7, 3.6]}).to_parquet(path)
    with pytest.raises(DataError, match=f"{path}: not a hybat trajectory file"):
        Trajectory.from_parquet(path)


def test_summary_takes_the_fade_from_the_capacity_checks():
    summary = _synthetic().summary()
    assert summary["capacity_fade_pct"] == pytest.approx(10.0)  # 4.0 -> 3.6 Ah, the cycle in between ignored
    assert summary["duration_h"] == pytest.approx(2.0) and summary["samples"] == 7201 and summary["cycles"] == 3
    assert (summary["voltage_min_V"], summary["voltage_max_V"]) == (3.0, 4.2)


def test_without_capacity_checks_the_fade_comes_from_the_cycles():
    trajectory = _synthetic()
    trajectory.cycles["Tag"] = np.array(["cycle"] * 3)
    assert trajectory.summary()["capacity_fade_pct"] == pytest.approx(10.0)
    trajectory.cycles = {"Tag": np.array(["cycle"]), "Discharge capacity [A.h]": np.array([4.0])}
    assert trajectory.summary()["capacity_fade_pct"] == 0.0


def test_a_failed_trajectory_carries_its_reason_and_no_data():
    failed = Trajectory.failed("solver diverged", {"seed": 3})
    assert not failed.ok and failed.columns == {} and failed.metadata == {"seed": 3}
    assert failed.summary() == {"status": "failed", "message": "solver diverged"}
    assert _synthetic("truncated").ok


def test_an_unknown_column_lists_the_available_ones():
    with pytest.raises(KeyError, match="no column 'Power \\[W\\]'; available: Time \\[s\\], Current \\[A\\]"):
        _synthetic()["Power [W]"]
