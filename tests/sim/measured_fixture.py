"""A small measured cycler folder and its paired corpus, shared by the pairing tests and the
tests of corpora built around measured tests (tests/sim/conftest.py exposes the fixtures)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sim.cells.spec import CellSpec
from sim.measured.pairing import pair_measured
from sim.measured.spec import PairingSpec
from sim.physics.fidelity import Fidelity
from sim.physics.simulate import simulate
from sim.protocols.steps import CurrentTrace


@pytest.fixture(scope="session")
def synthetic_data_dir(tmp_path_factory) -> Path:
    """A cycler folder: one good record (a Chen2020 cell of 0.9x capacity starting at 85 % SOC,
    logged every 10 s), one file with garbage in it, and a manifest.csv with the chamber
    temperature."""
    folder = tmp_path_factory.mktemp("cycler")
    truth = CellSpec(parameter_set="Chen2020", scales={"Electrode width [m]": 0.9}, initial_soc=0.85)
    time_s = np.arange(0.0, 1.5 * 3600.0, 10.0)
    current = np.where(time_s % 900.0 < 600.0, 3.0, 0.0) + np.where(time_s % 900.0 >= 880.0, 6.0, 0.0)
    record = simulate(truth, CurrentTrace(time_s, current), Fidelity(model="spme"), voltage_cutoffs=False)
    pd.DataFrame({"time_s": time_s, "current_A": current, "voltage_V": np.round(record["Voltage [V]"], 5)}
                 ).to_csv(folder / "cell_good.csv", index=False)
    (folder / "cell_bad.csv").write_text("time_s,current_A,voltage_V\n0,1.0,3.9\n1,1.0,oops\n2,1.0,3.9\n")
    pd.DataFrame({"file": ["cell_good.csv", "cell_bad.csv"], "chamber_C": [25.0, 25.0]}
                 ).to_csv(folder / "manifest.csv", index=False)
    return folder


def synthetic_spec(data_dir: Path) -> PairingSpec:
    return PairingSpec.model_validate({
        "name": "synthetic", "data_dir": str(data_dir),
        "tests": [{"pattern": "cell_*.csv", "ambient_manifest_column": "chamber_C", "tag": "pulses"}],
        "cell": {"parameter_set": "Chen2020"}, "physics": {"model": "spme"},
        "calibration": {"mode": "shared", "file": "cell_good.csv",
                        "options": {"fit_period_s": 60.0, "max_iterations": 6}},
    })


@pytest.fixture(scope="session")
def synthetic_corpus(synthetic_data_dir, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("paired") / "corpus"
    return out, pair_measured(synthetic_spec(synthetic_data_dir), out, progress=False)


