"""The corpus format on disk, written one sample at a time; used by synthetic corpora
(:func:`sim.corpus.generate.generate_corpus`) and measured pairing (:func:`sim.measured.pair_measured`).

    corpus/
      manifest.json          schema version, status, resolved spec and its fingerprint, what the
                             caller adds (kind, data directory, calibration), package versions,
                             counts
      samples.parquet        one row per sample (status, message, ...), gathered at the end
      samples/part-*.parquet the same rows one file per sample: the resume journal
      series/part-*.parquet  time series of each successful sample (:func:`series_table`)
      cycles/part-*.parquet  per-cycle summary, reference and physics (:func:`cycles_table`)

Each file is written under a temporary name and renamed when complete; a sample's journal row
is written last, so a sample is finished exactly when its row exists and a resumed run skips it.
"""

from __future__ import annotations

import collections
import json
import os
import time
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from sim.config import package_versions
from sim.errors import ConfigError, SimulationError
from sim.plant import TRUTH_COLUMNS

SCHEMA_VERSION = 1
FOLDERS = ("samples", "series", "cycles")
# the packages that shape a corpus, recorded in its manifest
CORPUS_PACKAGES = ("hybat", "pybamm", "numpy", "pyarrow", "ray", "scipy")
# measured channels stored as they are (the reference's, or the cycler's), in this order
MEASURED_COLUMNS = ("Time [s]", "Current [A]", "Ambient temperature [K]", "Voltage [V]", "Cell temperature [K]",
                    "Discharge capacity [A.h]")
# physics outputs stored beside the reference (states the hybrid may read online)
PHYSICS_COLUMNS = {
    "Voltage [V]": "Physics voltage [V]",
    "Cell temperature [K]": "Physics cell temperature [K]",
    "State of charge": "Physics state of charge",
    "X-averaged negative particle surface stoichiometry": "Physics X-averaged negative particle surface stoichiometry",
    "X-averaged positive particle surface stoichiometry": "Physics X-averaged positive particle surface stoichiometry",
    "X-averaged negative electrode surface potential difference [V]":
        "Physics X-averaged negative electrode surface potential difference [V]",
    "Loss of lithium inventory [%]": "Physics loss of lithium inventory [%]",
    "X-averaged negative SEI thickness [m]": "Physics X-averaged negative SEI thickness [m]",
}


class FingerprintedSpec(Protocol):
    """What the writer needs of a spec (CorpusSpec, PairingSpec)."""

    name: str

    def fingerprint(self) -> str: ...

    def model_dump(self, *, mode: str) -> dict: ...


def series_table(index: int, measured: dict[str, np.ndarray], physics: dict[str, np.ndarray],
                 truth: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """The series shard of sample ``index``: its measured channels (MEASURED_COLUMNS), the
    plant's true states (TRUTH_COLUMNS of ``truth``, synthetic corpora only) and the physics
    outputs renamed by PHYSICS_COLUMNS; every column has one value per measured sample."""
    rows = len(measured["Time [s]"])
    series = {"sample_id": np.full(rows, index, dtype=np.int64)}
    series.update({name: measured[name] for name in MEASURED_COLUMNS if name in measured})
    truth = truth or {}
    series.update({name: truth[name] for name in TRUTH_COLUMNS if name in truth})
    series.update({column: physics[name] for name, column in PHYSICS_COLUMNS.items() if name in physics})
    return series


def cycles_table(index: int, reference: dict[str, np.ndarray], physics: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The cycles shard of sample ``index``: the reference's per-cycle rows, then the physics
    model's, with a "Source" column; only the columns both summaries have."""
    names = [name for name in reference if name in physics]
    count = (len(reference["Tag"]), len(physics["Tag"]))
    cycles = {"sample_id": np.full(sum(count), index, dtype=np.int64),
              "Source": np.array(["reference"] * count[0] + ["physics"] * count[1])}
    cycles.update({name: np.concatenate([reference[name], physics[name]]) for name in names})
    return cycles


class CorpusWriter:
    """Writes a corpus directory as results arrive; keeps only counters, never the data.

    Construct it to check ``out`` (an empty or absent directory, or with ``resume`` one written
    for the same spec: ``resumed`` then holds its manifest), :meth:`open` it, :meth:`write`
    every result and :meth:`finish` to gather the journal and write the final manifest (or
    :meth:`stop` when samples could not be done).
    """

    def __init__(self, out: str | Path, spec: FingerprintedSpec, *, resume: bool, what: str = "corpus spec"):
        self.out, self.spec = Path(out), spec
        self.resumed: dict[str, Any] | None = _resumable_manifest(self.out, spec, resume, what)
        self.manifest_extra: dict[str, Any] = {}
        self.failures: collections.Counter[str] = collections.Counter()
        self.cell_hours = 0.0
        self.on_failure = "record"
        self.bar: tqdm | None = None

    def journal_path(self, index: int) -> Path:
        """Where sample ``index``'s journal row lives (it exists once the sample is finished)."""
        return self.out / "samples" / f"part-{index:06d}.parquet"

    def open(self, indices: list[int], *, label: str, unit: str = "sample",
             on_failure: Literal["record", "raise"] = "record", progress: bool = True,
             **manifest_extra: Any) -> list[int]:
        """Make the folders, drop shards interrupted mid-write, write a "running" manifest
        (with ``manifest_extra``, e.g. kind, data_dir, calibration) unless resuming, start the
        progress bar; returns the indices of ``indices`` not finished yet, in order."""
        self.manifest_extra, self.on_failure = manifest_extra, on_failure
        for folder in FOLDERS:
            (self.out / folder).mkdir(parents=True, exist_ok=True)
            for leftover in (self.out / folder).glob("*.tmp"):
                leftover.unlink()
        if not (self.out / "manifest.json").exists():
            write_json(self.out / "manifest.json", self._manifest("running"))
        pending = [index for index in indices if not self.journal_path(index).exists()]
        self.bar = tqdm(total=len(indices), initial=len(indices) - len(pending), desc=f"{label} {self.spec.name}",
                        unit=unit, disable=not progress, dynamic_ncols=True)
        return pending

    def write(self, record: dict[str, Any], series: dict | None = None, cycles: dict | None = None) -> None:
        """Write one sample: its series and cycles shards (unless it failed), then its journal
        row. With on_failure "raise", a failed sample raises SimulationError instead."""
        index = record["sample_id"]
        if record["status"] == "failed":
            if self.on_failure == "raise":
                raise SimulationError(f"sample {index} failed: {record['message']}")
            self.failures[_reason(record["message"])] += 1
        else:
            write_table(series, self.out / "series" / f"part-{index:06d}.parquet")
            write_table(cycles, self.out / "cycles" / f"part-{index:06d}.parquet")
            self.cell_hours += record.get("simulated_hours", 0.0)
        write_table({name: [value] for name, value in record.items()}, self.journal_path(index))
        if self.bar is not None:
            self.bar.set_postfix(failed=sum(self.failures.values()), cell_hours=f"{self.cell_hours:.0f}")
            self.bar.update(1)

    def finish(self, backend: str, wall_s: float) -> dict[str, Any]:
        """Close the progress bar, gather the journal into samples.parquet and write the
        "complete" manifest (with counts, ``backend`` and ``wall_s`` [s]); returns it."""
        if self.bar is not None:
            self.bar.close()
        manifest = self._manifest("complete") | consolidate_journal(self.out) | {"backend": backend, "wall_s": wall_s}
        write_json(self.out / "manifest.json", manifest)
        return manifest

    def stop(self, missing: int, reason: str) -> None:
        """Close the progress bar and write an "incomplete" manifest: ``missing`` samples were
        not written, for ``reason``; a resumed run does them. The journal stays as it is and no
        samples.parquet is written, so a partial corpus cannot pass for a whole one."""
        if self.bar is not None:
            self.bar.close()
        write_json(self.out / "manifest.json", self._manifest("incomplete") | {"missing": missing, "reason": reason})

    def _manifest(self, status: str) -> dict[str, Any]:
        return {"schema_version": SCHEMA_VERSION, "status": status, "name": self.spec.name,
                "fingerprint": self.spec.fingerprint(), "spec": self.spec.model_dump(mode="json"),
                **self.manifest_extra, "versions": package_versions(CORPUS_PACKAGES),
                "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def _resumable_manifest(out: Path, spec: FingerprintedSpec, resume: bool, what: str) -> dict[str, Any] | None:
    """The manifest of the non-empty ``out`` being resumed (None when ``out`` is empty or
    absent); ConfigError when ``out`` is full without ``resume`` or holds another spec."""
    if not (out.exists() and any(out.iterdir())):
        return None
    if not resume:
        raise ConfigError(f"out_dir {out} is not empty; pass resume to finish it or choose another directory")
    path = out / "manifest.json"
    manifest = json.loads(path.read_text()) if path.exists() else {}
    if manifest.get("fingerprint") != spec.fingerprint():
        raise ConfigError(f"out_dir {out}: cannot resume, it holds a different {what} (or none)")
    return manifest


def write_table(columns: dict, path: Path) -> None:
    """Write ``columns`` to ``path`` atomically (temporary name, then rename)."""
    temporary = path.with_name(path.name + ".tmp")
    pq.write_table(pa.table({name: np.asarray(values) for name, values in columns.items()}), temporary)
    os.replace(temporary, path)


def write_json(path: Path, payload: dict) -> None:
    """Write ``payload`` to ``path`` as indented JSON, atomically."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(payload, indent=2, default=str))
    os.replace(temporary, path)


def _reason(message: str) -> str:
    """The kind of a failure message, for the summary (first clause, numbers dropped)."""
    head = message.split(":")[0:2]
    return ":".join(part.strip() for part in head)[:80]


def journal_parts(out: str | Path) -> list[Path]:
    """The journal rows of the corpus in ``out``, one file per finished sample, in order."""
    return sorted((Path(out) / "samples").glob("part-*.parquet"))


def consolidate_journal(out: Path) -> dict:
    """Gather the per-sample journal into samples.parquet; return the counts by status and
    the five most common failure reasons, for the manifest."""
    journal = journal_parts(out)
    table = pa.concat_tables([pq.read_table(path) for path in journal], promote_options="permissive")
    table = table.sort_by("sample_id")
    temporary = out / "samples.parquet.tmp"
    pq.write_table(table, temporary)
    os.replace(temporary, out / "samples.parquet")
    statuses = table.column("status").to_pylist()
    counts = collections.Counter(statuses)
    failed = [message for message, status in zip(table.column("message").to_pylist(), statuses) if status == "failed"]
    return {"counts": {"samples": table.num_rows, **{key: counts.get(key, 0) for key in ("ok", "truncated", "failed")}},
            "failure_reasons": collections.Counter(_reason(message) for message in failed).most_common(5)}
