"""A synthetic corpus built around measured tests: the first step of sim-to-real transfer.

A corpus spec with ``measured: {corpus: DIR}`` names a paired measured corpus (written by
``hybat pair-measured CONFIG --out DIR``) and takes from it:

- **the currents**: every usable measured record (status ok or truncated; ``replay`` globs on
  its file narrow them) becomes one more protocol choice of weight ``weight``, a ``dynamic``
  protocol reading the record's current from a CSV written beside the corpus
  (``OUT/profiles``), scaled to the record's peak C-rate of the measured cell's capacity, so a
  synthetic cell of another capacity sees the same C-rates, and run at the record's own
  chamber temperature (``at_measured_temperature``), past the plant's voltage limits as the
  measured cell was (``voltage_cutoffs: false``);
- **the cell and the physics model** (``calibrated_cell``, on by default): the corpus's cell is
  the pairing's cell with its calibration applied, and its physics model the pairing's, so the
  residual learned on synthetic data corrects exactly the physics model it will correct on the
  measured tests. The plant (``reference``: variability, hysteresis, contact resistance,
  sensor) is the spec's own: how widely it randomises around the calibrated cell is what
  decides whether the measured cells lie inside the synthetic population.

:func:`with_measured_basis` resolves such a spec into a plain one.
"""

from __future__ import annotations

import fnmatch
import json
from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import Field

from sim.config import StrictModel
from sim.errors import ConfigError, DataError

USABLE = ("ok", "truncated")


class MeasuredBasis(StrictModel):
    """corpus: a paired measured corpus directory (hybat pair-measured).
    replay: glob patterns on its records' ``file``; the matching usable records' currents are
        replayed (default: all of them). An empty list replays none (cell and physics only).
    weight: each replay's weight among the spec's protocol choices.
    at_measured_temperature: a replay runs at its record's own chamber temperature (the
        synthetic twin of the test); false: at any of the corpus's temperatures.
    calibrated_cell: the corpus's cell and physics model are the pairing's calibrated cell and
        its physics model (replacing the spec's ``cell`` and ``physics``).
    """

    corpus: Path
    replay: list[str] = Field(default_factory=lambda: ["*"])
    weight: float = Field(1.0, gt=0.0)
    at_measured_temperature: bool = True
    calibrated_cell: bool = True
    resolved: bool = False  # set by with_measured_basis: the cell and protocols already hold it


def with_measured_basis(spec, profiles: Path):
    """``spec`` (a CorpusSpec) with its measured basis resolved into a plain spec: the replayed
    currents as protocol choices reading ``profiles``/test_<id>.csv (written by
    :func:`write_replay_profiles`), and, with ``calibrated_cell``, the pairing's calibrated cell
    and physics model. Writes nothing, so the resolved spec (and its fingerprint) is the same
    on every call; a spec without a measured basis is returned as it is."""
    basis = spec.measured
    if basis is None or basis.resolved:
        return spec
    manifest = _paired_manifest(basis.corpus)
    data = spec.model_dump()
    data["protocols"] = [*data["protocols"], *(
        {"weight": basis.weight, "protocol": {"kind": "dynamic", "current_csv": str(profiles / f"test_{row.sample_id}.csv"),
                                              "peak_c_rate": round(_peak_A(basis.corpus, row) / _capacity_Ah(row), 4),
                                              "voltage_cutoffs": False},
         "ambient_temperatures_K": [float(row.ambient_temperature_K)] if basis.at_measured_temperature else None}
        for row in _replayed(basis).itertuples())]
    if basis.calibrated_cell:
        cell, physics = _calibrated_cell_and_physics(manifest, basis.corpus)
        data.update(cell=cell.model_dump(), physics=physics.model_dump())
    return type(spec).model_validate({**data, "measured": {**basis.model_dump(mode="json"), "resolved": True}})


def write_replay_profiles(basis: MeasuredBasis | None, profiles: Path) -> None:
    """The current CSVs (time_s [s], current_A [A]) of the replayed records, unless present."""
    if basis is None:
        return
    profiles.mkdir(parents=True, exist_ok=True)
    for sample_id in _replayed(basis)["sample_id"]:
        path = profiles / f"test_{sample_id}.csv"
        if not path.exists():
            series = _series(basis.corpus, sample_id)
            pd.DataFrame({"time_s": series["Time [s]"], "current_A": series["Current [A]"]}).to_csv(path, index=False)


def _paired_manifest(corpus: Path) -> dict:
    path = Path(corpus) / "manifest.json"
    if not path.is_file():
        raise ConfigError(f"measured.corpus = {str(corpus)!r}: no manifest.json; allowed: a directory written by "
                          "hybat pair-measured")
    manifest = json.loads(path.read_text())
    if manifest.get("kind") != "measured":
        raise ConfigError(f"measured.corpus = {str(corpus)!r} is a {manifest.get('kind', 'synthetic')} corpus; "
                          "allowed: a measured pairing (hybat pair-measured)")
    return manifest


def _replayed(basis: MeasuredBasis) -> pd.DataFrame:
    """The samples-table rows of the records ``basis`` replays."""
    samples = pd.read_parquet(Path(basis.corpus) / "samples.parquet")
    usable = samples[samples["status"].isin(USABLE)]
    chosen = usable[[any(fnmatch.fnmatchcase(str(f), p) for p in basis.replay) for f in usable["file"]]]
    if basis.replay and chosen.empty:
        raise ConfigError(f"measured.replay = {basis.replay}: matches no usable record; allowed: patterns on "
                          f"{', '.join(map(str, usable['file']))}")
    return chosen


def _peak_A(corpus: Path, row) -> float:
    """The record's largest |current| [A]."""
    peak_A = float(np.max(np.abs(_series(corpus, row.sample_id)["Current [A]"])))
    if not peak_A > 0.0:
        raise DataError(f"measured record {row.file}: no current to replay")
    return peak_A


def _series(corpus: Path, sample_id: int) -> pd.DataFrame:
    return pd.read_parquet(Path(corpus) / "series" / f"part-{sample_id:06d}.parquet",
                           columns=["Time [s]", "Current [A]"])


def _capacity_Ah(row) -> float:
    """The measured cell's capacity [A.h] that scales a replay to C-rates (the rule of
    :func:`sim.measured.records.record_capacity_Ah`)."""
    # imported here: sim.measured imports sim.corpus (its writer), so not at module level
    from sim.measured.records import record_capacity_Ah

    capacity, _ = record_capacity_Ah(row._asdict())
    if not np.isfinite(capacity):
        raise DataError(f"measured record {row.file}: no capacity to scale its current by")
    return capacity


def _calibrated_cell_and_physics(manifest: dict, corpus: Path) -> tuple:
    """(cell, physics fidelity) of the pairing: its cell with its calibration applied, its model."""
    # imported here: sim.measured imports sim.corpus (its writer), so not at module level
    from sim.cells import CellSpec
    from sim.measured.calibrate import Calibration
    from sim.physics import Fidelity

    pairing = manifest["spec"]
    cell = CellSpec.model_validate(pairing["cell"])
    calibration = manifest.get("calibration")
    if calibration is None and pairing.get("calibration", {}).get("mode") != "none":
        raise DataError(f"measured.corpus = {str(corpus)!r}: a per-test calibration has no one calibrated cell; "
                        "allowed: a pairing with calibration mode shared, or calibrated_cell: false")
    if calibration is not None:
        cell = Calibration(**calibration).apply(cell)
    return cell, Fidelity.model_validate(pairing["physics"])
