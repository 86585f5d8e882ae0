"""Corpus generation: many paired (reference, physics) samples, serial or Ray-parallel, on disk.

    corpus/
      manifest.json          schema version, resolved spec, package versions, counts
      samples.parquet        one row per sample (status, message, seed, design, scales, ...)
      samples/part-*.parquet the same rows one file per sample: the resume journal
      series/part-*.parquet  time series of each successful sample
      cycles/part-*.parquet  per-cycle summary, reference and physics

Each file is written under a temporary name and renamed when complete; a sample's journal row
is written last, so a sample is finished exactly when its row exists and a resumed run skips
it. Failed samples are rows with a message, never a crashed batch.
"""

from __future__ import annotations

import collections
import hashlib
import json
import logging
import os
import time
from importlib import metadata
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import Field, model_validator
from tqdm import tqdm

from sim.cells import DESIGN_VARIABLES, CellSpec
from sim.config import StrictModel
from sim.errors import ConfigError
from sim.physics import Fidelity
from sim.plant import ReferenceSpec
from sim.protocols import Protocol
from sim.corpus.sample import SampleResult, run_sample

log = logging.getLogger(__name__)
SCHEMA_VERSION = 1


class Range(StrictModel):
    """Bounds of one design variable; ``log`` samples uniformly in log space (radii, rates)."""

    low: float
    high: float
    log: bool = False

    @model_validator(mode="after")
    def _ordered(self) -> "Range":
        if not self.low < self.high:
            raise ValueError(f"low ({self.low}) must be below high ({self.high})")
        if self.log and self.low <= 0:
            raise ValueError("log ranges need low > 0")
        return self

    def at(self, unit: float) -> float:
        """The value at ``unit`` in [0, 1)."""
        if self.log:
            return float(np.exp(np.log(self.low) + unit * (np.log(self.high) - np.log(self.low))))
        return float(self.low + unit * (self.high - self.low))


class DesignSpace(StrictModel):
    """Design variables sampled by a seeded Sobol (default) or Latin hypercube design."""

    sampler: Literal["sobol", "lhs"] = "sobol"
    variables: dict[str, Range] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _known(self) -> "DesignSpace":
        for name, bounds in self.variables.items():
            if name not in DESIGN_VARIABLES:
                raise ValueError(f"unknown design variable '{name}'; allowed: {', '.join(DESIGN_VARIABLES)}")
            _, low, high, _ = DESIGN_VARIABLES[name]
            if bounds.low < low or bounds.high > high:
                raise ValueError(f"range of '{name}' [{bounds.low}, {bounds.high}] leaves [{low}, {high}]")
        return self


class ProtocolChoice(StrictModel):
    weight: float = Field(1.0, gt=0.0)
    protocol: Annotated[Protocol, Field(discriminator="kind")]


class CorpusSpec(StrictModel):
    """A corpus: ``cells`` samples of design x protocol, each simulated by the reference and
    paired with the physics model driven by the reference's measured current."""

    name: str = "corpus"
    seed: int = Field(0, ge=0)
    cells: int = Field(ge=1, le=1_000_000)
    cell: CellSpec = CellSpec()
    design: DesignSpace | None = None
    ambient_temperatures_K: list[float] = Field(default_factory=lambda: [298.15], min_length=1)
    protocols: list[ProtocolChoice] = Field(min_length=1)
    physics: Fidelity = Fidelity()
    reference: ReferenceSpec = ReferenceSpec()
    timeout_s: float | None = Field(600.0, gt=0.0)

    def fingerprint(self) -> str:
        """Hash of the resolved spec: a resumed run must match it."""
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()[:16]


def generate_corpus(spec: CorpusSpec, out_dir: str | Path, *, backend: Literal["serial", "ray"] = "serial",
                    workers: int | None = None, address: str | None = None, resume: bool = False,
                    on_failure: Literal["record", "raise"] = "record", progress: bool = True) -> dict:
    """Generate (or finish) the corpus ``spec`` in ``out_dir``; returns the manifest.

    backend "ray" runs one task per sample on a local Ray runtime with ``workers`` CPUs, or on
    the cluster at ``address``. ``resume`` finishes a partly written corpus of the same spec.
    ``on_failure="raise"`` stops at the first failed sample instead of recording it.
    """
    out = Path(out_dir)
    _prepare_directory(spec, out, resume)
    pending = [index for index in range(spec.cells) if not _journal_path(out, index).exists()]
    started = time.perf_counter()
    writer = _Writer(out, spec, on_failure, total=spec.cells, done=spec.cells - len(pending), progress=progress)
    if backend == "serial":
        for index in pending:
            writer.write(run_sample(spec, index))
    elif backend == "ray":
        from sim.backends import run_with_ray
        run_with_ray(spec, pending, writer.write, workers=workers, address=address)
    else:
        raise ConfigError(f"backend = {backend!r}: allowed: serial, ray")
    writer.close()
    return _finish(spec, out, backend, time.perf_counter() - started)


def _prepare_directory(spec: CorpusSpec, out: Path, resume: bool) -> None:
    manifest = out / "manifest.json"
    if out.exists() and any(out.iterdir()):
        if not resume:
            raise ConfigError(f"out_dir {out} is not empty; pass resume to finish it or choose another directory")
        if not manifest.exists() or json.loads(manifest.read_text()).get("fingerprint") != spec.fingerprint():
            raise ConfigError(f"out_dir {out}: cannot resume, it holds a different corpus spec (or none)")
    for folder in ("samples", "series", "cycles"):
        (out / folder).mkdir(parents=True, exist_ok=True)
        for leftover in (out / folder).glob("*.tmp"):
            leftover.unlink()  # a shard interrupted mid-write
    if not manifest.exists():
        write_json(manifest, _manifest(spec, status="running"))


def _journal_path(out: Path, index: int) -> Path:
    return out / "samples" / f"part-{index:06d}.parquet"


def write_table(columns: dict, path: Path) -> None:
    """Write ``columns`` to ``path`` atomically (temporary name, then rename)."""
    temporary = path.with_name(path.name + ".tmp")
    pq.write_table(pa.table({name: np.asarray(values) for name, values in columns.items()}), temporary)
    os.replace(temporary, path)


class _Writer:
    """Writes results as they arrive; keeps only counters, never the data."""

    def __init__(self, out: Path, spec: CorpusSpec, on_failure: str, total: int, done: int, progress: bool):
        self.out, self.spec, self.on_failure = out, spec, on_failure
        self.failures: collections.Counter[str] = collections.Counter()
        self.cell_hours = 0.0
        self.bar = tqdm(total=total, initial=done, desc=f"corpus {spec.name}", unit="sample",
                        disable=not progress, dynamic_ncols=True)

    def write(self, result: SampleResult) -> None:
        index = result.record["sample_id"]
        if result.record["status"] == "failed":
            reason = result.record["message"]
            if self.on_failure == "raise":
                from sim.errors import SimulationError
                raise SimulationError(f"sample {index} failed: {reason}")
            self.failures[_reason(reason)] += 1
        else:
            write_table(result.series, self.out / "series" / f"part-{index:06d}.parquet")
            write_table(result.cycles, self.out / "cycles" / f"part-{index:06d}.parquet")
            self.cell_hours += result.record.get("simulated_hours", 0.0)
        write_table({name: [value] for name, value in result.record.items()}, _journal_path(self.out, index))
        self.bar.set_postfix(failed=sum(self.failures.values()), cell_hours=f"{self.cell_hours:.0f}")
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


def _reason(message: str) -> str:
    """The kind of a failure message, for the summary (first clause, numbers dropped)."""
    head = message.split(":")[0:2]
    return ":".join(part.strip() for part in head)[:80]


def consolidate_journal(out: Path) -> dict:
    """Gather the per-sample journal into samples.parquet; return the counts by status and
    the five most common failure reasons, for the manifest."""
    journal = sorted((out / "samples").glob("part-*.parquet"))
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


def _finish(spec: CorpusSpec, out: Path, backend: str, wall_s: float) -> dict:
    """Consolidate the journal and write the final manifest."""
    manifest = _manifest(spec, status="complete") | consolidate_journal(out) | {"backend": backend, "wall_s": wall_s}
    write_json(out / "manifest.json", manifest)
    return manifest


def _manifest(spec: CorpusSpec, status: str) -> dict:
    return {"schema_version": SCHEMA_VERSION, "status": status, "name": spec.name,
            "fingerprint": spec.fingerprint(), "spec": spec.model_dump(mode="json"),
            "versions": package_versions(), "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def package_versions() -> dict[str, str]:
    """Versions of the packages that shape a corpus, for manifests."""
    versions = {}
    for package in ("hybat", "pybamm", "numpy", "pyarrow", "ray", "scipy"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "absent"
    return versions


def write_json(path: Path, payload: dict) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(payload, indent=2, default=str))
    os.replace(temporary, path)
