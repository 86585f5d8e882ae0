"""Corpus generation: many paired (reference, physics) samples, serial or Ray-parallel, on disk
in the format of :mod:`sim.corpus.writer` (one journal row per finished sample, so a resumed
run skips it). Failed samples are rows with a message, never a crashed batch; samples lost to
the infrastructure (a Ray node or raylet) are no rows at all, so a resumed run does them.
"""

from __future__ import annotations

import functools
import hashlib
import time
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
from pydantic import Field, model_validator

from sim.backends import make_backend
from sim.cells import DESIGN_VARIABLES, CellSpec
from sim.config import StrictModel
from sim.errors import InfrastructureLost
from sim.physics import Fidelity
from sim.plant import ReferenceSpec
from sim.protocols import Protocol
from sim.corpus.measured_basis import MeasuredBasis, with_measured_basis, write_replay_profiles
from sim.corpus.sample import SampleResult, base_record, plan_sample, run_sample
from sim.corpus.writer import CorpusWriter

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
    """One protocol a sample may run, with its weight; ``ambient_temperatures_K`` (null: the
    corpus's) are the chamber temperatures it runs at, e.g. a measured test's own."""

    weight: float = Field(1.0, gt=0.0)
    protocol: Annotated[Protocol, Field(discriminator="kind")]
    ambient_temperatures_K: list[float] | None = Field(None, min_length=1)


class CorpusSpec(StrictModel):
    """A corpus: ``cells`` samples of design x protocol, each simulated by the reference and
    paired with the physics model driven by the reference's measured current.

    measured: build the corpus around a paired measured corpus: replay its tests' currents and,
        by default, take its calibrated cell and physics model (:mod:`sim.corpus.measured_basis`).
    floor: also drive the sample's plant at nominal variability (its design, overrides and
        fidelity, without the per-cell ``reference.variability`` scales) with the same measured
        current, stored as the column "Nominal plant voltage [V]". Its error against the
        measured voltage is the floor of a model that knows the plant population but not the
        cell (cell-to-cell spread and sensor errors); it costs one more plant solve per sample.
    """

    name: str = "corpus"
    seed: int = Field(0, ge=0)
    cells: int = Field(ge=1, le=1_000_000)
    cell: CellSpec = CellSpec()
    design: DesignSpace | None = None
    ambient_temperatures_K: list[float] = Field(default_factory=lambda: [298.15], min_length=1)
    protocols: list[ProtocolChoice] = Field(default_factory=list)
    physics: Fidelity = Fidelity()
    reference: ReferenceSpec = ReferenceSpec()
    measured: MeasuredBasis | None = None
    floor: bool = False
    timeout_s: float | None = Field(600.0, gt=0.0)

    @model_validator(mode="after")
    def _some_protocol(self) -> "CorpusSpec":
        if not self.protocols and (self.measured is None or not self.measured.replay):
            raise ValueError("protocols is empty and no measured test is replayed; allowed: at least one protocol "
                             "choice, or measured.replay")
        return self

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
    Samples Ray loses to infrastructure (a node or raylet) are not failures and not recorded:
    the rest are written, the manifest says "incomplete", and InfrastructureLost is raised; a
    resumed run does them.
    """
    runner = make_backend(backend, workers=workers, address=address)
    profiles = Path(out_dir) / "profiles"
    spec = with_measured_basis(spec, profiles)  # the manifest keeps the resolved spec: the cell trained on
    writer = CorpusWriter(out_dir, spec, resume=resume)
    pending = writer.open(list(range(spec.cells)), label="corpus", on_failure=on_failure, progress=progress)
    write_replay_profiles(spec.measured, profiles)
    started = time.perf_counter()
    try:
        runner.map(run_sample, pending, lambda _, result: writer.write(result.record, result.series, result.cycles),
                   shared=(spec,), lost=functools.partial(_lost_sample, spec))
    except InfrastructureLost as error:
        reason = f"{error.lost} of {spec.cells} samples lost to infrastructure ({', '.join(error.causes)})"
        writer.stop(error.lost, reason)
        raise InfrastructureLost(f"corpus {spec.name}: {reason}; run again with resume (hybat corpus --resume) "
                                 "to redo them", lost=error.lost, causes=error.causes) from error
    return writer.finish(backend, time.perf_counter() - started)


def _lost_sample(spec: CorpusSpec, index: int, message: str) -> SampleResult:
    """The failed record of sample ``index`` whose worker died on every retry while its node
    stayed up (a poison sample, e.g. a solver segfault)."""
    return SampleResult({**base_record(spec, plan_sample(spec, index)), "message": message})
