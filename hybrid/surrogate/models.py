"""HybridSurrogate: a trained run's physics model plus its residual RNN, running the protocol together.

A run directory (written by :func:`hybrid.train.loop.run.train_run`) carries the corpus spec it was
trained on (``corpus_manifest.json``): the physics fidelity, the plant and the design space.
:class:`HybridSurrogate` runs each design's protocol with the hybrid in the loop
(:mod:`hybrid.surrogate.closed_loop`: the physics model and the residual advance together, and
the protocol's cut-offs, CV holds and safety limits act on the corrected voltage), batches of
BATCH_SIZE designs in lockstep: here, or spread over Ray workers that return numpy columns. The hybrid's features are built from the
physics outputs exactly as in training (the ``Physics ...`` columns of
:data:`sim.corpus.sample.PHYSICS_COLUMNS`), and the corrected trajectories are scored with
:func:`hybrid.surrogate.metrics.trajectory_metrics`. The voltage is always corrected; the cell
temperature too when the run has a temperature head (``features.temperature_head``), the physics
one kept as ``Physics cell temperature [K]``. :class:`ReferenceModel` answers the same
``evaluate`` call with the corpus's plant (nominal cell: no cell-to-cell variability, no
sensor), so the design loop and the benchmarks swap one for the other.

Designs are checked against the training design space (the corpus's design ranges and
ambient temperatures): with ``out_of_range="refuse"`` (default) a design outside it raises
ConfigError naming the variable, the value and the range; with ``"flag"`` it is evaluated and
its ``flags`` say what lies outside. A failed solve is data: status "failed", NaN metrics.
"""

from __future__ import annotations

import abc
import functools
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field
from tqdm import tqdm

from hybrid.data import (
    AMBIENT,
    CURRENT,
    DESIGN_PREFIX,
    TIME_STEP,
)
from hybrid.models import require_causal
from hybrid.surrogate.closed_loop import BATCH_SIZE, run_hybrid
from hybrid.surrogate.ensemble import Z_90, Scored, combine_members
from hybrid.surrogate.mass import MassModel, cell_mass_volume
from hybrid.surrogate.metrics import METRICS, MetricOptions, trajectory_metrics
from hybrid.train import (
    CHECKPOINT,
    CORPUS_MANIFEST,
    NORMALISATION,
    RUN_CONFIG,
    TrainedModel,
    TrainRunConfig,
    load_trained,
    read_run_file,
)
from sim.backends import make_backend
from sim.cells import DESIGN_VARIABLES, CellSpec, base_parameter_values
from sim.config import StrictModel, validate
from sim.corpus import PHYSICS_COLUMNS, WORKER_CACHE, CorpusSpec, Range
from sim.errors import ConfigError, DataError
from sim.physics import Fidelity, ModelCache, simulate
from sim.protocols import Protocol

log = logging.getLogger(__name__)

Backend = Literal["serial", "ray"]
OutOfRange = Literal["refuse", "flag"]
SOC = "State of charge"


class OperatingConditions(StrictModel):
    """Where a design is tested: ambient temperature [K] (null: the corpus's first) and the
    state of charge the protocol starts from (null: the corpus cell's)."""

    ambient_temperature_K: float | None = Field(None, ge=223.15, le=353.15)
    initial_soc: float | None = Field(None, ge=0.0, le=1.0)


@dataclass
class DesignEvaluation:
    """One design under one protocol.

    design: every design variable of the training space (given or filled from the parameter
    set), short names, SI units. status: "ok", "truncated" (the protocol stopped early) or
    "failed" (no data; metrics NaN). columns: the trajectory, numpy, PyBaMM names; a surrogate's
    "Voltage [V]" is the corrected voltage, beside "Physics voltage [V]". flags: what lies
    outside the training space (out_of_range="flag"). wall_s: seconds spent on this design.
    metrics: a surrogate with an ensemble gives its members' mean, and ``spread`` their standard
    deviation per metric ({} for one model, the reference), see :mod:`hybrid.surrogate.ensemble`.
    """

    design: dict[str, float]
    status: str
    message: str
    columns: dict[str, np.ndarray]
    metrics: dict[str, float]
    capacity_Ah: float = float("nan")
    window_V: tuple[float, float] = (float("nan"), float("nan"))
    flags: list[str] = field(default_factory=list)
    wall_s: float = 0.0
    spread: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def interval(self, metric: str, scale: float = 1.0, floor: float = 0.0) -> tuple[float, float]:
        """The 90 % interval of ``metric``: mean +- 1.645 sigma, sigma = sqrt((scale spread)^2 + floor^2).
        scale = 1, floor = 0 is the raw ensemble; :mod:`hybrid.design.uncertainty` fits both on
        reference-verified designs. A single model without a floor gives (mean, mean)."""
        mean = self.metrics.get(metric, float("nan"))
        sigma = float(np.hypot(scale * self.spread.get(metric, 0.0), floor))
        return mean - Z_90 * sigma, mean + Z_90 * sigma


def simulate_columns(cell: CellSpec, protocol: Protocol, fidelity: Fidelity,
                     cache: ModelCache | None = None) -> dict[str, Any]:
    """Simulate and keep what the surrogate needs, as numpy and plain values (a Ray task's result)."""
    trajectory = simulate(cell, protocol, fidelity, cache=cache or WORKER_CACHE)
    window = trajectory.metadata.get("voltage_window_V", [float("nan")] * 2)
    return {"status": trajectory.status, "message": trajectory.message, "columns": trajectory.columns,
            "capacity_Ah": float(trajectory.metadata.get("capacity_Ah", float("nan"))),
            "window_V": (float(window[0]), float(window[1])), "wall_s": float(trajectory.metadata.get("wall_s", 0.0))}


def run_simulations(jobs: Sequence[tuple], *, backend: Backend = "serial",
                    cache: ModelCache | None = None, workers: int | None = None,
                    label: str = "simulate", job: Callable[..., dict[str, Any]] | None = None,
                    ) -> list[dict[str, Any]]:
    """``job(*item, cache=...)`` for every item of ``jobs``, in order; by default
    :func:`simulate_columns` of (cell, protocol, fidelity) items.

    "serial" solves here with ``cache``; "ray" runs one task per job on Ray workers (see
    :mod:`sim.backends`: a worker lost on every retry gives a failed result, a bug in a task is
    raised).
    """
    runner = make_backend(backend, workers=workers)
    # a Ray worker keeps its own WORKER_CACHE; only a serial run may use the caller's cache
    task = functools.partial(_run_job, job=job or simulate_columns, cache=cache if backend == "serial" else None)
    results: list[dict[str, Any] | None] = [None] * len(jobs)
    with tqdm(total=len(jobs), desc=label, unit="design", disable=None, leave=False) as bar:
        def gather(position: int, result: dict[str, Any]) -> None:
            results[position] = result
            bar.update(1)

        runner.map(task, list(jobs), gather, lost=_lost_job)
    return results


def _run_job(item: tuple, job: Callable[..., dict[str, Any]], cache: ModelCache | None = None) -> dict[str, Any]:
    return job(*item, cache=cache)


def _lost_job(item: tuple, message: str) -> dict[str, Any]:
    """The failed result of a job whose worker died on every retry."""
    return {"status": "failed", "message": message, "columns": {}, "capacity_Ah": float("nan"),
            "window_V": (float("nan"), float("nan")), "wall_s": 0.0}


class RunModel(abc.ABC):
    """What both evaluators share: the run's corpus spec, its design space, design checks,
    simulation and scoring. Subclasses choose the cell and fidelity and may correct the
    trajectories (:meth:`_correct`)."""

    name = "model"

    def __init__(self, run_dir: str | Path):
        self.run_dir = Path(run_dir)
        manifest = read_run_file(self.run_dir / CORPUS_MANIFEST)
        if "spec" not in manifest:
            raise DataError(f"{self.run_dir / CORPUS_MANIFEST}: no 'spec'; allowed: a manifest written by hybat corpus")
        self.spec: CorpusSpec = validate(CorpusSpec, manifest["spec"], str(self.run_dir / CORPUS_MANIFEST))
        self.cache = ModelCache()
        self.timing: dict[str, float] = {}

    @property
    def design_space(self) -> dict[str, Range]:
        """The training design ranges by short name ({} when the corpus varied no design)."""
        return dict(self.spec.design.variables) if self.spec.design else {}

    def default_design(self) -> dict[str, float]:
        """The parameter set's value (with the corpus cell's overrides) of each design variable
        of the training space."""
        values = base_parameter_values(self.spec.cell)
        named = self.spec.cell.named_parameters()
        return {name: float(named.get(DESIGN_VARIABLES[name][0], values[DESIGN_VARIABLES[name][0]]))
                for name in self.design_space}

    def resolve_design(self, design: Mapping[str, float], out_of_range: OutOfRange = "refuse",
                       ) -> tuple[dict[str, float], list[str]]:
        """(every training design variable with ``design``'s values or the defaults, flags).

        Raises ConfigError for an unknown name, a value outside DESIGN_VARIABLES' physical bounds,
        or (``out_of_range="refuse"``) a value outside the training range or a variable the
        corpus never varied.
        """
        if out_of_range not in ("refuse", "flag"):
            raise ConfigError(f"out_of_range = {out_of_range!r}: allowed: refuse, flag")
        resolved = {**self.default_design(), **{name: float(value) for name, value in design.items()}}
        flags = []
        for name, value in resolved.items():
            if name not in DESIGN_VARIABLES:
                raise ConfigError(f"design variable '{name}' = {value}: unknown; allowed: "
                                  f"{', '.join(DESIGN_VARIABLES)}")
            _, low, high, _ = DESIGN_VARIABLES[name]
            if not low <= value <= high:
                raise ConfigError(f"design variable '{name}' = {value}: outside its physical bounds [{low}, {high}]")
            bounds = self.design_space.get(name)
            if bounds is None:
                flags.append(f"design variable '{name}' = {value}: the training corpus never varied it; allowed: "
                             f"{', '.join(self.design_space) or '(no design variables)'}")
            elif not _inside(value, bounds.low, bounds.high):
                flags.append(f"design variable '{name}' = {value}: outside the training range "
                             f"[{bounds.low}, {bounds.high}]")
        if flags and out_of_range == "refuse":
            raise ConfigError(f"{flags[0]} (run {self.run_dir}); allowed: designs inside the training design space, "
                              "or out_of_range='flag' to evaluate it anyway")
        return resolved, flags

    def resolve_conditions(self, conditions: OperatingConditions, out_of_range: OutOfRange = "refuse",
                           ) -> tuple[float, float, list[str]]:
        """(ambient temperature [K], initial SOC, flags) with the corpus's defaults filled in."""
        temperatures = self.spec.ambient_temperatures_K
        ambient = temperatures[0] if conditions.ambient_temperature_K is None else conditions.ambient_temperature_K
        soc = self.spec.cell.initial_soc if conditions.initial_soc is None else conditions.initial_soc
        flags = []
        if not _inside(ambient, min(temperatures), max(temperatures)):
            flags.append(f"ambient_temperature_K = {ambient}: outside the training temperatures "
                         f"[{min(temperatures)}, {max(temperatures)}]")
        if flags and out_of_range == "refuse":
            raise ConfigError(f"{flags[0]}; allowed: conditions inside the training corpus, or out_of_range='flag'")
        return ambient, soc, flags

    # --- what subclasses choose --------------------------------------------------------

    @abc.abstractmethod
    def cell(self, design: dict[str, float], ambient_K: float, initial_soc: float) -> CellSpec:
        """The CellSpec this model simulates for ``design`` (short names, SI units)."""

    @property
    @abc.abstractmethod
    def fidelity(self) -> Fidelity:
        """The PyBaMM fidelity this model simulates."""

    def _simulate(self, cells: list[CellSpec], protocols: list[Protocol], designs: list[dict[str, float]],
                  backend: Backend, workers: int | None) -> list[list[dict[str, Any]]]:
        """Per cell, the results of :func:`simulate_columns` of each ensemble member (one here; the
        surrogate runs its hybrids instead)."""
        results = run_simulations([(cell, protocol, self.fidelity) for cell, protocol in zip(cells, protocols)],
                                  backend=backend, cache=self.cache, workers=workers, label=f"{self.name} solves")
        return [[result] for result in results]

    # --- the entry point ---------------------------------------------------------------

    def evaluate(self, designs: Sequence[Mapping[str, float]], protocol: Protocol | Sequence[Protocol], *,
                 conditions: OperatingConditions = OperatingConditions(), mass_model: MassModel = MassModel(),
                 metric_options: MetricOptions = MetricOptions(), backend: Backend = "serial",
                 out_of_range: OutOfRange = "refuse", workers: int | None = None) -> list[DesignEvaluation]:
        """Evaluate each design under ``protocol`` (one for all designs, or one per design).

        Returns one :class:`DesignEvaluation` per design, in order; ``self.timing`` holds the
        seconds spent running the models (``simulate_s``) and in total (``wall_s``).
        """
        started = time.perf_counter()
        protocols = _per_design(protocol, len(designs))
        ambient, soc, condition_flags = self.resolve_conditions(conditions, out_of_range)
        resolved = [self.resolve_design(design, out_of_range) for design in designs]
        cells = [self.cell(design, ambient, soc) for design, _ in resolved]
        results = self._simulate(cells, protocols, [design for design, _ in resolved], backend, workers)
        simulated = time.perf_counter()
        evaluations = []
        for (design, flags), cell, members in zip(resolved, cells, results):
            mass = cell_mass_volume(cell, mass_model)
            result, metrics, spread = combine_members([Scored(member, _metrics(member, mass, metric_options))
                                                       for member in members])
            columns = result["columns"] if result["status"] != "failed" else {}
            evaluations.append(DesignEvaluation(design, result["status"], result["message"], columns, metrics,
                                                result["capacity_Ah"], result["window_V"], condition_flags + flags,
                                                sum(member["wall_s"] for member in members), spread))
        self.timing = {"simulate_s": simulated - started, "wall_s": time.perf_counter() - started,
                       "designs": len(designs)}
        return evaluations


class ReferenceModel(RunModel):
    """The run's plant (corpus reference fidelity and overrides), nominal: no variability, no sensor."""

    name = "reference"

    def cell(self, design: dict[str, float], ambient_K: float, initial_soc: float) -> CellSpec:
        overrides = {**self.spec.cell.overrides, **self.spec.reference.overrides}
        return self.spec.cell.with_updates(design=design, ambient_temperature_K=ambient_K, initial_soc=initial_soc,
                                           overrides=overrides)

    @property
    def fidelity(self) -> Fidelity:
        return self.spec.reference.fidelity


class HybridSurrogate(RunModel):
    """The run's physics model corrected by one of its hybrid residual models.

    model: the hybrid's name in the run (default: the first hybrid of run_config.json). A hybrid
    trained as an ensemble (``ensemble: M``) runs all its members and gives their mean and
    spread (:mod:`hybrid.surrogate.ensemble`); ``trained`` is its first member. Naming one
    member (``NAME-mK``) runs that member alone.
    """

    name = "surrogate"

    def __init__(self, run_dir: str | Path, *, model: str | None = None):
        super().__init__(run_dir)
        config = validate(TrainRunConfig, read_run_file(self.run_dir / RUN_CONFIG), str(self.run_dir / RUN_CONFIG))
        members = {entry.name: config.members(entry.name) for entry in config.models}
        # a single member may be asked for by name: it runs alone
        hybrids = [name for name, family, _ in config.entries() if family == "hybrid"]
        if not hybrids:
            raise DataError(f"{self.run_dir / RUN_CONFIG}: the run has no hybrid model; allowed: a run with models")
        name = hybrids[0] if model is None else model
        if name not in hybrids:
            raise ConfigError(f"model = {name!r}: not a hybrid of run {self.run_dir}; allowed: {', '.join(hybrids)}")
        self.model_name = name
        self.ensemble = [self._load(member) for member in members.get(name, [name])]
        self.trained = self.ensemble[0]
        self._check_features()

    def _load(self, name: str) -> TrainedModel:
        trained = load_trained(self.run_dir / name / CHECKPOINT, name)
        require_causal(trained.model, "the design surrogate")
        expected = read_run_file(self.run_dir / NORMALISATION)["hybrid"]["features"]
        if trained.normalisation["features"] != expected:
            raise DataError(f"{self.run_dir / name / CHECKPOINT}: features {trained.normalisation['features']} "
                            f"differ from {NORMALISATION}'s {expected}; allowed: the checkpoint of this run")
        return trained

    @property
    def normalisation(self) -> dict[str, Any]:
        return self.trained.normalisation

    def cell(self, design: dict[str, float], ambient_K: float, initial_soc: float) -> CellSpec:
        return self.spec.cell.with_updates(design=design, ambient_temperature_K=ambient_K, initial_soc=initial_soc)

    @property
    def fidelity(self) -> Fidelity:
        return self.spec.physics

    def _check_features(self) -> None:
        """Every feature the model reads must come from a physics run and the design."""
        available = {CURRENT, AMBIENT, TIME_STEP, *PHYSICS_COLUMNS.values(),
                     *(DESIGN_PREFIX + name for name in self.design_space)}
        missing = [name for name in self.normalisation["features"] if name not in available]
        if missing:
            raise DataError(f"{self.run_dir / NORMALISATION}: feature '{missing[0]}' cannot be built at design time; "
                            f"allowed: {', '.join(sorted(available))}")

    def _simulate(self, cells: list[CellSpec], protocols: list[Protocol], designs: list[dict[str, float]],
                  backend: Backend, workers: int | None) -> list[list[dict[str, Any]]]:
        """Each member of the ensemble runs each protocol (:mod:`hybrid.surrogate.closed_loop`),
        BATCH_SIZE designs in lockstep per job: the jobs here, or spread over Ray workers."""
        batches = [slice(first, first + BATCH_SIZE) for first in range(0, len(cells), BATCH_SIZE)]
        jobs = [(cells[part], protocols[part], self.fidelity, member, designs[part])
                for member in self.ensemble for part in batches]
        results = run_simulations(jobs, backend=backend, cache=self.cache, workers=workers, label="surrogate batches",
                                  job=run_hybrid)
        # a batch whose worker was lost on every retry comes back as one failed result
        flat = [result for job, batch in zip(jobs, results)
                for result in (batch if isinstance(batch, list) else [batch] * len(job[0]))]
        return [flat[d::len(cells)] for d in range(len(cells))]


def _metrics(result: dict[str, Any], mass: Any, options: MetricOptions) -> dict[str, float]:
    """The metrics of one closed-loop or reference result (NaN without a trajectory)."""
    columns = result["columns"] if result["status"] != "failed" else {}
    if not columns:
        return dict.fromkeys(METRICS, float("nan"))
    return trajectory_metrics(columns, capacity_Ah=result["capacity_Ah"], window_V=result["window_V"], mass=mass,
                              options=options)


def _per_design(protocol: Protocol | Sequence[Protocol], count: int) -> list[Protocol]:
    if isinstance(protocol, (list, tuple)):
        if len(protocol) != count:
            raise ConfigError(f"protocol: {len(protocol)} protocols for {count} designs; allowed: one protocol, "
                              "or one per design")
        return list(protocol)
    return [protocol] * count


def _inside(value: float, low: float, high: float) -> bool:
    slack = 1e-9 * max(abs(low), abs(high), 1e-30)
    return low - slack <= value <= high + slack
