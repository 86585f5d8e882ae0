"""Design problems: what to optimise, under which constraints, on which test protocols, and how
the picks are verified. A problem is one YAML file (``configs/design/*.yaml``) read by
:func:`load_problem`.

A :class:`DesignProblem` names its variables (design variables by their
:data:`sim.cells.DESIGN_VARIABLES` names, and protocol variables as ``<protocol>.<field>``, e.g.
``charge.c_rate_1`` of a :class:`sim.protocols.FastCharge` named ``charge``),
one or more objectives and constraints on the metrics of :mod:`hybrid.surrogate.metrics`, each
read from one of the problem's protocols.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Literal, Mapping, Sequence

import numpy as np
from pydantic import Field, model_validator

from hybrid.design.active import ActiveLearningOptions
from hybrid.design.protocols import protocol_variable_names
from hybrid.surrogate import METRICS, MassModel, MetricOptions, OperatingConditions, RunModel
from sim.cells import DESIGN_VARIABLES
from sim.config import StrictModel, load_config
from sim.corpus import Range
from sim.errors import ConfigError
from sim.protocols import Protocol


class Objective(StrictModel):
    """A metric (hybrid.surrogate.metrics.METRICS) of one protocol (optional with a single protocol)."""

    metric: str
    direction: Literal["minimize", "maximize"]
    protocol: str | None = None

    @model_validator(mode="after")
    def _known_metric(self) -> "Objective":
        _check_metric(self.metric)
        return self


class Constraint(StrictModel):
    """``min <= metric <= max`` (give one or both) of one protocol."""

    metric: str
    protocol: str | None = None
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _bounded(self) -> "Constraint":
        _check_metric(self.metric)
        if self.min is None and self.max is None:
            raise ValueError(f"constraint on '{self.metric}' has neither min nor max; allowed: one or both")
        return self


def _check_metric(name: str) -> None:
    if name not in METRICS:
        raise ValueError(f"metric '{name}' unknown; allowed: {', '.join(METRICS)}")


class OptimiserOptions(StrictModel):
    """trials: surrogate evaluations in all. batch_size: trials asked and evaluated together.
    startup_trials: random trials before TPE models the results. sampler: tpe (single or
    multi-objective), nsga2 or nsga3 (population_size per generation). seed: the sampler's."""

    trials: int = Field(40, ge=1, le=100_000)
    batch_size: int = Field(4, ge=1, le=1024)
    startup_trials: int = Field(8, ge=0)
    sampler: Literal["tpe", "nsga2", "nsga3"] = "tpe"
    population_size: int = Field(16, ge=2)
    seed: int = Field(0, ge=0)


class VerifyOptions(StrictModel):
    """How the reference is spent (see :mod:`hybrid.design.verify`).

    select: ei (default): each round picks by expected improvement (several objectives: expected
        hypervolume improvement) times the probability of feasibility, under the surrogate's
        uncertainty calibrated on the designs verified so far; best: the surrogate's best
        feasible designs, constraints backed off after a surprise.
    candidates: single objective, designs verified per round. pareto_max: several objectives,
        designs verified per round (best: spread along the surrogate's front).
    rounds: verification rounds per study (best: stops after a round without a surprise).
    calibration_designs: Latin-hypercube designs verified before the search, to calibrate the
        intervals before the first pick (they count toward the budget and may win).
    min_distance: ei picks no design closer than this (unit cube of the variables) to one
        picked or verified.
    min_feasibility: ei picks only designs whose probability of feasibility is at least this
        while any open design reaches it (0: any; a tight budget on a narrow feasible region
        wants 0.5, or a far-off design with a large improvement and a tiny chance wins the pick).
    budget: at most this many reference evaluations over everything (null: no cap).
    polish_steps: single objective, at most this many reference runs (within the budget) of a
        trust-region search around the best verified design after the last search
        (:mod:`hybrid.design.polish`; 0: none). polish_radius: its first box half-width (unit
        cube). polish_samples: surrogate designs scored per step.
    """

    select: Literal["ei", "best"] = "ei"
    candidates: int = Field(3, ge=1, le=100)
    pareto_max: int = Field(6, ge=1, le=100)
    rounds: int = Field(2, ge=1, le=20)
    calibration_designs: int = Field(0, ge=0, le=1000)
    min_distance: float = Field(0.02, ge=0.0, le=1.0)
    min_feasibility: float = Field(0.0, ge=0.0, lt=1.0)
    budget: int | None = Field(None, ge=1)
    polish_steps: int = Field(0, ge=0, le=1000)
    polish_radius: float = Field(0.1, gt=0.0, le=0.5)
    polish_samples: int = Field(64, ge=1, le=4096)


class DesignProblem(StrictModel):
    """A design problem: variables with bounds, objectives, constraints, test protocols.

    variables: design variables (DESIGN_VARIABLES names) and protocol variables
        ("<protocol>.<variable>") -> Range (low, high, log).
    fixed: design variables held at a value (others not in variables take the parameter set's).
    protocols: name -> protocol (any hybat protocol kind, or fast_charge).
    conditions: ambient temperature and starting SOC (defaults: the training corpus's).
    verify / active_learning: how the picks are checked on the reference, and whether the
        residual is then fine-tuned on them for another search (:mod:`hybrid.design.active`).
    model: the hybrid of the run to use (default: its first).
    backend / workers: how the surrogate and reference solve a batch (serial or ray).
    """

    name: str = Field("design", pattern=r"^[A-Za-z0-9_\-]+$")
    variables: dict[str, Range] = Field(min_length=1)
    fixed: dict[str, float] = Field(default_factory=dict)
    protocols: dict[str, Protocol] = Field(min_length=1)
    conditions: OperatingConditions = OperatingConditions()
    objectives: list[Objective] = Field(min_length=1, max_length=4)
    constraints: list[Constraint] = Field(default_factory=list)
    mass: MassModel = MassModel()
    metric_options: MetricOptions = MetricOptions()
    optimiser: OptimiserOptions = OptimiserOptions()
    verify: VerifyOptions = VerifyOptions()
    active_learning: ActiveLearningOptions = ActiveLearningOptions()
    model: str | None = None
    backend: Literal["serial", "ray"] = "serial"
    workers: int | None = Field(None, ge=1)

    @model_validator(mode="after")
    def _consistent(self) -> "DesignProblem":
        for name, bounds in self.variables.items():
            if "." in name:
                protocol, variable = name.split(".", 1)
                if protocol not in self.protocols:
                    raise ValueError(f"variable '{name}': no protocol '{protocol}'; allowed: "
                                     f"{', '.join(self.protocols)}")
                allowed = protocol_variable_names(self.protocols[protocol])
                if variable not in allowed:
                    raise ValueError(f"variable '{name}': '{variable}' is not a variable of protocol '{protocol}'; "
                                     f"allowed: {', '.join(allowed)}")
            elif name not in DESIGN_VARIABLES:
                raise ValueError(f"variable '{name}': not a design variable; allowed: {', '.join(DESIGN_VARIABLES)} "
                                 "or '<protocol>.<variable>'")
            else:
                _, low, high, _ = DESIGN_VARIABLES[name]
                if bounds.low < low or bounds.high > high:
                    raise ValueError(f"variable '{name}' bounds [{bounds.low}, {bounds.high}] leave its physical "
                                     f"bounds [{low}, {high}]")
        for name in self.fixed:
            if name not in DESIGN_VARIABLES or name in self.variables:
                raise ValueError(f"fixed '{name}': allowed: design variables that are not optimised")
        tested = [name for name, protocol in self.protocols.items() if getattr(protocol, "reference_tests", False)]
        if tested and self.metric_options.charge_index == 0:
            raise ValueError(f"protocol '{tested[0]}' starts with a reference test, whose charge the charge metrics "
                             "would score; allowed: metric_options.charge_index: 1 (the first fast charge)")
        for target in [*self.objectives, *self.constraints]:
            if target.protocol is None and len(self.protocols) > 1:
                raise ValueError(f"metric '{target.metric}' needs a protocol; allowed: {', '.join(self.protocols)}")
            if target.protocol is not None and target.protocol not in self.protocols:
                raise ValueError(f"metric '{target.metric}': no protocol '{target.protocol}'; allowed: "
                                 f"{', '.join(self.protocols)}")
        return self

    def protocol_of(self, target: Objective | Constraint) -> str:
        """The protocol an objective or constraint reads its metric from (default: the only one)."""
        return target.protocol or next(iter(self.protocols))

    @property
    def directions(self) -> list[str]:
        """'minimize' or 'maximize' per objective, in order."""
        return [objective.direction for objective in self.objectives]

    def split(self, params: Mapping[str, float]) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
        """Optimiser variables -> (design values incl. fixed, protocol name -> its variable values)."""
        design = dict(self.fixed)
        protocol_values: dict[str, dict[str, float]] = {name: {} for name in self.protocols}
        for name, value in params.items():
            if "." in name:
                protocol, variable = name.split(".", 1)
                protocol_values[protocol][variable] = float(value)
            else:
                design[name] = float(value)
        return design, protocol_values


def load_problem(path: str | Path) -> DesignProblem:
    """The design problem of the YAML file at ``path`` (ConfigError naming the field if invalid)."""
    return load_config(path, DesignProblem)


def check_training_space(problem: DesignProblem, surrogate: RunModel) -> None:
    """ConfigError unless every design the problem can propose lies in the run's training space."""
    space = surrogate.design_space
    for name, bounds in problem.variables.items():
        if "." in name:
            continue
        if name not in space:
            raise ConfigError(f"variable '{name}': the training corpus of run {surrogate.run_dir} never varied it; "
                              f"allowed: {', '.join(space) or '(no design variables)'}")
        if bounds.low < space[name].low or bounds.high > space[name].high:
            raise ConfigError(f"variable '{name}' bounds [{bounds.low}, {bounds.high}] leave the training range "
                              f"[{space[name].low}, {space[name].high}] of run {surrogate.run_dir}")
    surrogate.resolve_design(problem.fixed)
    surrogate.resolve_conditions(problem.conditions)


def constraint_labels(problem: DesignProblem) -> list[str]:
    """A label per constraint value of Candidate.constraint_values, e.g. 'charge.charged_soc >= 0.78'."""
    labels = []
    for constraint in problem.constraints:
        name = f"{problem.protocol_of(constraint)}.{constraint.metric}"
        labels += [f"{name} {sign} {bound:g}" for bound, sign in ((constraint.min, ">="), (constraint.max, "<="))
                   if bound is not None]
    return labels


def unit_positions(problem: DesignProblem, params: Sequence[dict[str, float]]) -> np.ndarray:
    """(designs, variables): each variable mapped onto [0, 1] (log-scaled where its range is)."""
    columns = []
    for name, bounds in problem.variables.items():
        values = np.array([p[name] for p in params], dtype=float)
        if bounds.log:
            values, low, high = np.log(values), math.log(bounds.low), math.log(bounds.high)
        else:
            low, high = bounds.low, bounds.high
        columns.append((values - low) / max(high - low, 1e-300))
    return np.array(columns).T.reshape(len(params), len(problem.variables))


def params_at(problem: DesignProblem, unit: np.ndarray) -> list[dict[str, float]]:
    """The variable values at each row of ``unit`` (designs, variables) in [0, 1]: the inverse
    of :func:`unit_positions`."""
    return [{name: bounds.at(u) for (name, bounds), u in zip(problem.variables.items(), row)} for row in unit]
