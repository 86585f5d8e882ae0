"""Design loops: a design problem, an optuna optimiser querying the hybrid surrogate, the best
candidates verified against the reference, and a report.

    problem (YAML) --optimise--> study.db (every trial: variables, surrogate metrics)
      --select_candidates--> best designs (single objective) or the Pareto set
      --ReferenceModel.evaluate--> reference metrics --> report.json, report.md, PNG

A :class:`DesignProblem` names its variables (design variables by their
:data:`sim.cells.spec.DESIGN_VARIABLES` names, and protocol variables as ``<protocol>.<field>``, e.g.
``charge.c_rate_1`` of a :class:`FastChargeProtocol` named ``charge``), one or more objectives
and constraints on the metrics of :mod:`hybrid.surrogate.metrics`, each read from one of the problem's
protocols. A failed or truncated evaluation is data, not an exception: its objectives become
+inf (minimised) or -inf (maximised) and its constraints +inf, so the optimiser steers away.

The optimiser is optuna's TPE (single- and multi-objective) or NSGA-II/III, seeded, asked for
``batch_size`` trials at a time so that the surrogate solves them together (one batched
residual pass; parallel solves with the Ray backend); TPE uses the constant liar so a batch
spreads out. The study lives in ``out_dir/study.db`` (SQLite) and a rerun with the same problem
resumes it (``load_if_exists``); a resumed sampler restarts its random stream, so a resumed
study matches an uninterrupted one in its finished trials only. Active learning (feeding
reference results back into training) is not done here.

:func:`design_cli` is the ``hybat design CONFIG --model RUN --out DIR`` entry point.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, Mapping, Sequence, Union

import numpy as np
import optuna
from pydantic import Field, model_validator
from tqdm import tqdm

from hybrid.design.active import ActiveLearningOptions, fine_tune, paired_cell
from hybrid.surrogate import METRICS, MassModel, MetricOptions
from hybrid.surrogate import DesignEvaluation, HybridSurrogate, OperatingConditions, ReferenceModel, RunModel, \
    ray_runtime
from sim.cells import DESIGN_VARIABLES
from sim.config import StrictModel, load_config, validate
from sim.corpus import Range
from sim.errors import ConfigError
from sim.protocols import HPPC, AgeingCampaign, ConstantCurrent, Cycling, Dynamic, Rest, Sequence as StepSequence

log = logging.getLogger(__name__)

STUDY_FILE = "study.db"
REPORT_JSON = "report.json"
REPORT_MARKDOWN = "report.md"
PLOT_FILE = "design.png"


# --- protocols with variables ---------------------------------------------------------------


class FastChargeProtocol(StrictModel):
    """Multi-stage constant-current fast charging, cycled.

    From the starting state: a discharge at ``discharge_c_rate`` to ``lower_voltage_V``, a rest,
    then ``cycles`` times: the charge stages, a rest, a discharge to the cut-off, a rest (the
    last rest dropped). Stage k charges at ``c_rates[k]`` (C) from the previous switch SOC to
    ``switch_socs[k]`` (the last stage to ``target_soc``), SOC counted from the end of the
    discharge (0); each stage also ends at ``upper_voltage_V``. Compiled by :meth:`to_sequence`
    to a plain ``sequence`` protocol, so a corpus can hold the same protocols.
    Variables: ``c_rate_1..n``, ``switch_soc_1..n-1``, ``target_soc``, ``discharge_c_rate``.
    """

    kind: Literal["fast_charge"] = "fast_charge"
    c_rates: list[Annotated[float, Field(gt=0.0, le=10.0)]] = Field(min_length=1, max_length=10)
    switch_socs: list[Annotated[float, Field(gt=0.0, lt=1.0)]] = Field(default_factory=list)
    target_soc: float = Field(0.8, gt=0.0, le=1.0)
    cycles: int = Field(3, ge=1, le=1000)
    discharge_c_rate: float = Field(1.0, gt=0.0, le=10.0)
    rest_s: float = Field(300.0, ge=0.0)
    lower_voltage_V: float = Field(2.5, gt=0.0, le=5.0)
    upper_voltage_V: float = Field(4.2, gt=0.0, le=5.0)
    period_s: float = Field(30.0, gt=0.0, le=3600.0)

    @model_validator(mode="after")
    def _stages_ordered(self) -> "FastChargeProtocol":
        if len(self.switch_socs) != len(self.c_rates) - 1:
            raise ValueError(f"{len(self.c_rates)} stages need {len(self.c_rates) - 1} switch_socs, got "
                             f"{len(self.switch_socs)}")
        socs = [0.0, *self.switch_socs, self.target_soc]
        if any(b <= a for a, b in zip(socs, socs[1:])):
            raise ValueError(f"switch_socs {self.switch_socs} then target_soc {self.target_soc}: allowed: "
                             "strictly increasing")
        return self

    def variable_names(self) -> list[str]:
        return ([f"c_rate_{k}" for k in range(1, len(self.c_rates) + 1)]
                + [f"switch_soc_{k}" for k in range(1, len(self.switch_socs) + 1)] + ["target_soc", "discharge_c_rate"])

    def with_values(self, values: Mapping[str, float]) -> "FastChargeProtocol":
        """A copy with variables set (ConfigError for an unknown name or an invalid result)."""
        data = self.model_dump()
        for name, value in values.items():
            if name not in self.variable_names():
                raise ConfigError(f"fast_charge variable '{name}': unknown; allowed: "
                                  f"{', '.join(self.variable_names())}")
            if name.startswith(("c_rate_", "switch_soc_")):
                listing = "c_rates" if name.startswith("c_rate_") else "switch_socs"
                data[listing][int(name.rsplit("_", 1)[1]) - 1] = float(value)
            else:
                data[name] = float(value)
        return validate(FastChargeProtocol, data, "fast_charge")

    def to_sequence(self) -> StepSequence:
        socs = [0.0, *self.switch_socs, self.target_soc]
        discharge = {"kind": "cc", "c_rate": self.discharge_c_rate, "until_voltage_V": self.lower_voltage_V,
                     "period_s": self.period_s}
        rest = {"kind": "rest", "duration_s": self.rest_s, "period_s": self.period_s}
        stages = [{"kind": "cc", "c_rate": -c_rate, "duration_s": round((end - start) * 3600.0 / c_rate, 6),
                   "until_voltage_V": self.upper_voltage_V, "period_s": self.period_s}
                  for c_rate, start, end in zip(self.c_rates, socs, socs[1:])]
        rests = [rest] if self.rest_s > 0 else []
        steps = [discharge, *rests]
        for _ in range(self.cycles):
            steps += [*stages, *rests, discharge, *rests]
        if rests:
            steps.pop()
        return StepSequence.model_validate({"kind": "sequence", "period_s": self.period_s, "steps": steps})


DesignProtocol = Annotated[Union[Rest, ConstantCurrent, StepSequence, Cycling, HPPC, Dynamic, AgeingCampaign,
                                 FastChargeProtocol], Field(discriminator="kind")]


def protocol_variable_names(protocol: DesignProtocol) -> list[str]:
    """The variables a protocol offers: a fast charge's stages, or any top-level number."""
    if isinstance(protocol, FastChargeProtocol):
        return protocol.variable_names()
    return [name for name, value in protocol.model_dump().items()
            if isinstance(value, (int, float)) and not isinstance(value, bool)]


def protocol_with_values(protocol: DesignProtocol, values: Mapping[str, float], label: str) -> DesignProtocol:
    """``protocol`` with variables ``values`` set; ConfigError names ``label`` if invalid."""
    if not values:
        return protocol
    if isinstance(protocol, FastChargeProtocol):
        return protocol.with_values(values)
    allowed = protocol_variable_names(protocol)
    unknown = [name for name in values if name not in allowed]
    if unknown:
        raise ConfigError(f"{label}: variable '{unknown[0]}' unknown; allowed: {', '.join(allowed)}")
    original = protocol.model_dump()
    integers = {name: int(round(value)) for name, value in values.items() if isinstance(original[name], int)}
    return validate(type(protocol), {**original, **values, **integers}, label)


def simulation_protocol(protocol: DesignProtocol):
    """The sim.protocols.steps protocol to solve (a fast charge as its sequence)."""
    return protocol.to_sequence() if isinstance(protocol, FastChargeProtocol) else protocol


# --- the problem ------------------------------------------------------------------------------


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
    """candidates: single objective, the best surrogate designs re-run on the reference per round.
    pareto_max: multi-objective, at most this many Pareto designs per round, spread along the front.
    rounds: verification rounds. After a round in which a design the surrogate called feasible
        failed a constraint on the reference, each constraint is backed off by the largest
        amount the surrogate underestimated it on the designs verified so far, and the next
        candidates are selected from the study (no new surrogate evaluations) and verified.
    budget: at most this many reference evaluations over all rounds (null: no cap).
    """

    candidates: int = Field(3, ge=1, le=100)
    pareto_max: int = Field(6, ge=1, le=100)
    rounds: int = Field(2, ge=1, le=10)
    budget: int | None = Field(None, ge=1)


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
    protocols: dict[str, DesignProtocol] = Field(min_length=1)
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
        for target in [*self.objectives, *self.constraints]:
            if target.protocol is None and len(self.protocols) > 1:
                raise ValueError(f"metric '{target.metric}' needs a protocol; allowed: {', '.join(self.protocols)}")
            if target.protocol is not None and target.protocol not in self.protocols:
                raise ValueError(f"metric '{target.metric}': no protocol '{target.protocol}'; allowed: "
                                 f"{', '.join(self.protocols)}")
        return self

    def protocol_of(self, target: Objective | Constraint) -> str:
        return target.protocol or next(iter(self.protocols))

    @property
    def directions(self) -> list[str]:
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


# --- evaluating candidates ----------------------------------------------------------------------


@dataclass
class Candidate:
    """One set of variable values, evaluated under every protocol of the problem."""

    params: dict[str, float]
    design: dict[str, float]
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)  # protocol -> metric -> value
    status: str = "ok"
    message: str = ""
    flags: list[str] = field(default_factory=list)
    trajectories: dict[str, dict[str, np.ndarray]] = field(default_factory=dict, repr=False)  # protocol -> columns

    def value(self, problem: DesignProblem, target: Objective | Constraint) -> float:
        return self.metrics.get(problem.protocol_of(target), {}).get(target.metric, float("nan"))

    def objective_values(self, problem: DesignProblem) -> list[float]:
        """Objective values; a failed candidate or a non-finite metric is the worst value (+-inf)."""
        values = []
        for objective in problem.objectives:
            value = self.value(problem, objective)
            worst = math.inf if objective.direction == "minimize" else -math.inf
            values.append(value if self.status == "ok" and math.isfinite(value) else worst)
        return values

    def constraint_values(self, problem: DesignProblem) -> list[float]:
        """One value per bound, feasible when <= 0 (in the metric's units); +inf if unknown."""
        values = []
        for constraint in problem.constraints:
            value = self.value(problem, constraint)
            for bound, sign in ((constraint.min, -1.0), (constraint.max, 1.0)):
                if bound is not None:
                    ok = self.status == "ok" and math.isfinite(value)
                    values.append(sign * (value - bound) if ok else math.inf)
        return values

    def feasible(self, problem: DesignProblem, backoff: Sequence[float] | None = None) -> bool:
        """All constraints hold (each tightened by ``backoff``, in constraint_values' order)."""
        values = np.array(self.constraint_values(problem)) + (0.0 if backoff is None else np.asarray(backoff))
        return self.status == "ok" and bool(np.all(values <= 0))

    def to_dict(self) -> dict[str, Any]:
        return _plain({"params": self.params, "design": self.design, "status": self.status,
                       "message": self.message, "flags": self.flags, "metrics": self.metrics})


def evaluate_candidates(problem: DesignProblem, model: RunModel, params_list: Sequence[Mapping[str, float]], *,
                        out_of_range: Literal["refuse", "flag"] = "refuse") -> list[Candidate]:
    """Evaluate every variable set with ``model`` (surrogate or reference) under every protocol.

    A variable set whose protocol values are invalid (e.g. switch SOCs out of order) is a
    failed candidate; a failed or truncated solve under any protocol fails the candidate.
    """
    candidates = []
    protocols: dict[str, list] = {name: [] for name in problem.protocols}
    for params in params_list:
        design, protocol_values = problem.split(params)
        candidate = Candidate(dict(params), design)
        try:
            resolved = {name: simulation_protocol(protocol_with_values(problem.protocols[name], values,
                                                                       f"protocols.{name}"))
                        for name, values in protocol_values.items()}
        except ConfigError as error:
            candidate.status, candidate.message = "failed", str(error)
            resolved = {}
        for name in problem.protocols:
            protocols[name].append(resolved.get(name))
        candidates.append(candidate)
    valid = [k for k, candidate in enumerate(candidates) if candidate.status == "ok"]
    for name in problem.protocols:
        if not valid:
            break
        evaluations = model.evaluate([candidates[k].design for k in valid], [protocols[name][k] for k in valid],
                                     conditions=problem.conditions, mass_model=problem.mass,
                                     metric_options=problem.metric_options, backend=problem.backend,
                                     out_of_range=out_of_range, workers=problem.workers)
        for k, evaluation in zip(valid, evaluations):
            _record(candidates[k], name, evaluation)
    return candidates


def _record(candidate: Candidate, protocol: str, evaluation: DesignEvaluation) -> None:
    candidate.metrics[protocol] = dict(evaluation.metrics)
    candidate.trajectories[protocol] = evaluation.columns
    candidate.flags += [flag for flag in evaluation.flags if flag not in candidate.flags]
    if evaluation.status != "ok" and candidate.status == "ok":
        candidate.status = evaluation.status
        candidate.message = f"{protocol}: {evaluation.message}"


# --- the optimiser ------------------------------------------------------------------------------


def make_sampler(options: OptimiserOptions) -> optuna.samplers.BaseSampler:
    """The seeded optuna sampler ``options`` names."""
    if options.sampler == "tpe":
        return optuna.samplers.TPESampler(seed=options.seed, n_startup_trials=options.startup_trials,
                                          constant_liar=True)
    if options.sampler == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=options.seed, population_size=options.population_size)
    return optuna.samplers.NSGAIIISampler(seed=options.seed, population_size=options.population_size)


def optimise(problem: DesignProblem, model: RunModel, out_dir: str | Path, *, progress: bool = True) -> optuna.Study:
    """Run (or resume) the problem's study on ``model`` until it holds ``optimiser.trials``
    complete trials. Trials keep their candidate (metrics, status) in ``user_attrs``.

    Raises ConfigError when ``out_dir`` holds a study of another problem.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = f"sqlite:///{(out_dir / STUDY_FILE).resolve()}"
    study = optuna.create_study(study_name=problem.name, storage=storage, load_if_exists=True,
                                sampler=make_sampler(problem.optimiser),
                                directions=problem.directions)
    # what defines the trials: everything but how many, how they are verified and where they run
    fingerprint = problem.model_dump_json(exclude={"optimiser": {"trials"}, "verify": True, "active_learning": True,
                                                   "backend": True, "workers": True})
    if study.user_attrs.get("problem", fingerprint) != fingerprint:
        raise ConfigError(f"out_dir {out_dir}: {STUDY_FILE} holds a study of another problem '{problem.name}'; "
                          "allowed: the same problem to resume it, or a new out_dir")
    study.set_user_attr("problem", fingerprint)
    study.set_user_attr("model", model.name)
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        study.tell(trial.number, state=optuna.trial.TrialState.FAIL)  # interrupted mid-batch: ask again
    done = len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))
    with tqdm(total=problem.optimiser.trials, initial=done, desc=f"{problem.name} ({model.name})", unit="trial",
              disable=not progress) as bar:
        while done < problem.optimiser.trials:
            trials = [study.ask() for _ in range(min(problem.optimiser.batch_size, problem.optimiser.trials - done))]
            params = [{name: trial.suggest_float(name, bounds.low, bounds.high, log=bounds.log)
                       for name, bounds in problem.variables.items()} for trial in trials]
            for trial, candidate in zip(trials, evaluate_candidates(problem, model, params)):
                trial.set_user_attr("candidate", candidate.to_dict())
                for k, value in enumerate(candidate.constraint_values(problem)):
                    trial.set_constraint(f"c{k}", value)
                study.tell(trial, candidate.objective_values(problem))
            done += len(trials)
            bar.update(len(trials))
    return study


def study_candidates(study: optuna.Study) -> list[tuple[int, Candidate]]:
    """(trial number, candidate) of every complete trial, in trial order."""
    result = []
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        stored = trial.user_attrs["candidate"]
        metrics = {protocol: {name: _number(value) for name, value in values.items()}
                   for protocol, values in stored["metrics"].items()}
        result.append((trial.number, Candidate(stored["params"], stored["design"], metrics, stored["status"],
                                               stored["message"], stored["flags"])))
    return result


def pareto_front(points: np.ndarray) -> np.ndarray:
    """(points,) bool: not dominated, for minimisation of every column of ``points``."""
    keep = np.ones(len(points), dtype=bool)
    for k, point in enumerate(points):
        dominated_by = np.all(points <= point, axis=1) & np.any(points < point, axis=1)
        keep[k] = not dominated_by.any()
    return keep


def minimisation_form(problem: DesignProblem, candidates: Sequence[Candidate]) -> np.ndarray:
    """(candidates, objectives) with maximised objectives negated (all minimised)."""
    signs = np.array([1.0 if direction == "minimize" else -1.0 for direction in problem.directions])
    return np.array([candidate.objective_values(problem) for candidate in candidates], dtype=float).reshape(
        len(candidates), len(signs)) * signs


def select_candidates(problem: DesignProblem, candidates: Sequence[tuple[int, Candidate]],
                      backoff: Sequence[float] | None = None) -> list[tuple[int, Candidate]]:
    """Which candidates to verify: the best ``verify.candidates`` feasible ones (single
    objective) or the feasible Pareto set, thinned evenly along the first objective to
    ``verify.pareto_max``; feasible with the constraints tightened by ``backoff``. Without a
    feasible candidate, the least violating ones."""
    feasible = [(number, c) for number, c in candidates if c.feasible(problem, backoff)]
    if not feasible:
        log.warning("%s: no feasible surrogate candidate; verifying the least violating", problem.name)
        ranked = sorted(candidates, key=lambda item: sum(max(v, 0.0) for v in item[1].constraint_values(problem)))
        return ranked[:problem.verify.candidates]
    points = minimisation_form(problem, [c for _, c in feasible])
    if len(problem.objectives) == 1:
        order = np.argsort(points[:, 0], kind="stable")
        return [feasible[k] for k in order[:problem.verify.candidates]]
    front = [k for k in np.flatnonzero(pareto_front(points)) if np.all(np.isfinite(points[k]))]
    front.sort(key=lambda k: points[k, 0])
    if len(front) > problem.verify.pareto_max:
        picks = np.unique(np.round(np.linspace(0, len(front) - 1, problem.verify.pareto_max)).astype(int))
        front = [front[k] for k in picks]
    return [feasible[k] for k in front]


def hypervolume(points: np.ndarray, reference_point: np.ndarray) -> float:
    """Hypervolume dominated by ``points`` (minimisation) up to ``reference_point``; exact, by
    slicing along the last objective (fine for the tens of points of a design front)."""
    points = np.asarray(points, dtype=float)
    points = points[np.all(np.isfinite(points), axis=1) & np.all(points < reference_point, axis=1)]
    if len(points) == 0:
        return 0.0
    if points.shape[1] == 1:
        return float(reference_point[0] - points[:, 0].min())
    points = points[np.argsort(points[:, -1])]
    volume = 0.0
    for k, point in enumerate(points):
        upper = points[k + 1, -1] if k + 1 < len(points) else reference_point[-1]
        if upper > point[-1]:
            volume += (upper - point[-1]) * hypervolume(points[:k + 1, :-1], reference_point[:-1])
    return float(volume)


# --- the loop ----------------------------------------------------------------------------------


def design_loop(problem: DesignProblem, surrogate: RunModel, reference: RunModel, out_dir: str | Path, *,
                progress: bool = True) -> dict[str, Any]:
    """Optimise on the surrogate, verify the selected candidates on the reference, report.

    Returns (and writes to ``out_dir/report.json``)::

        {"problem", "chosen": [{"trial", "params", "design", "surrogate": {PROTOCOL: {METRIC: value}},
          "reference": {...}, "surrogate_feasible", "reference_feasible", "status", "flags"}],
         "best": index into chosen (single objective: best reference objective), "objectives",
         "constraints", "surrogate_evaluations", "reference_evaluations", "wall_s", "files"}
    """
    started = time.perf_counter()
    out_dir = Path(out_dir)
    check_training_space(problem, surrogate)
    runtime = ray_runtime(problem.workers) if problem.backend == "ray" else contextlib.nullcontext()
    with runtime:
        candidates = study_candidates(optimise(problem, surrogate, out_dir, progress=progress))
        pairs, backoff = verify(problem, reference, candidates)
        surrogate_evaluations = len(candidates)
        for round_k in range(1, problem.active_learning.rounds + 1):
            if problem.verify.budget is not None and len(pairs) >= problem.verify.budget:
                break
            round_dir = out_dir / f"active_{round_k}"
            surrogate = fine_tune(surrogate, verified_cells(problem, surrogate, pairs), problem.active_learning,
                                  round_dir / "run", seed=problem.optimiser.seed)
            candidates = study_candidates(optimise(problem, surrogate, round_dir, progress=progress))
            surrogate_evaluations += len(candidates)
            more, backoff = verify(problem, reference, candidates, previous=pairs, first_round=pairs[-1][0] + 1)
            pairs += more
    chosen = [{"trial": number, "round": round_k, "params": candidate.params, "design": candidate.design,
               "surrogate": candidate.to_dict()["metrics"], "reference": checked.to_dict()["metrics"],
               "surrogate_feasible": candidate.feasible(problem), "reference_feasible": checked.feasible(problem),
               "status": {"surrogate": candidate.status, "reference": checked.status},
               "message": checked.message, "flags": checked.flags}
              for round_k, number, candidate, checked in pairs]
    report = {
        "problem": problem.name,
        "objectives": [objective.model_dump() for objective in problem.objectives],
        "constraints": [constraint.model_dump() for constraint in problem.constraints],
        "chosen": chosen,
        "best": best_verified(problem, [checked for *_, checked in pairs]),
        "constraint_backoff": dict(zip(constraint_labels(problem), backoff)),
        "surrogate_evaluations": surrogate_evaluations,
        "reference_evaluations": len(pairs),
        "wall_s": time.perf_counter() - started,
    }
    report["files"] = write_report(problem, report, candidates, out_dir)
    (out_dir / REPORT_JSON).write_text(json.dumps(_plain(report), indent=1))
    return _plain(report)


Verified = tuple[int, int, Candidate, Candidate]  # (round, trial, surrogate candidate, reference candidate)


def verify(problem: DesignProblem, reference: RunModel, candidates: Sequence[tuple[int, Candidate]], *,
           previous: Sequence[Verified] = (), first_round: int = 0) -> tuple[list[Verified], list[float]]:
    """Verify selected candidates on the reference, in up to ``verify.rounds`` rounds (see
    :class:`VerifyOptions`), numbered from ``first_round``. ``previous``: verifications of an
    earlier study (active learning): they count toward the budget, their designs are not
    verified again, and the back-off starts from theirs (kept conservative: a residual
    fine-tuned on a few records still misjudges their neighbours).
    Returns ([(round, trial, surrogate candidate, reference candidate)] of these rounds, the
    final back-off per constraint value)."""
    pairs: list[Verified] = []
    backoff = _backoff(problem, previous)
    done_before = {_params_key(candidate.params) for _, _, candidate, _ in previous}
    candidates = [(n, c) for n, c in candidates if _params_key(c.params) not in done_before]
    for round_k in range(first_round, first_round + problem.verify.rounds):
        verified = {number for _, number, _, _ in pairs}
        selected = select_candidates(problem, [(n, c) for n, c in candidates if n not in verified], backoff)
        if problem.verify.budget is not None:
            selected = selected[:max(problem.verify.budget - len(previous) - len(pairs), 0)]
        if not selected:
            break
        checked = evaluate_candidates(problem, reference, [candidate.params for _, candidate in selected],
                                      out_of_range="flag")
        pairs += [(round_k, number, candidate, result) for (number, candidate), result in zip(selected, checked)]
        surprises = [result for (_, candidate), result in zip(selected, checked)
                     if candidate.feasible(problem, backoff) and not result.feasible(problem)]
        if not surprises:
            break
        backoff = _backoff(problem, [*previous, *pairs])
        log.info("%s: round %d, %d surprise(s); constraint back-off %s", problem.name, round_k + 1,
                 len(surprises), backoff.tolist())
    return pairs, backoff.tolist()


def _params_key(params: Mapping[str, float]) -> tuple:
    return tuple(sorted((name, round(value, 12)) for name, value in params.items()))


def _backoff(problem: DesignProblem, pairs: Sequence[Verified]) -> np.ndarray:
    """Per constraint value: the largest amount by which the surrogate underestimated it (>= 0)."""
    backoff = np.zeros(len(constraint_labels(problem)))
    for _, _, candidate, result in pairs:
        underestimate = np.array(result.constraint_values(problem)) - np.array(candidate.constraint_values(problem))
        backoff = np.maximum(backoff, np.where(np.isfinite(underestimate), underestimate, 0.0))
    return backoff


def verified_cells(problem: DesignProblem, surrogate: HybridSurrogate, pairs: Sequence[Verified]) -> list:
    """Every verified reference trajectory paired with the surrogate's physics model (see
    :func:`hybrid.design.active.paired_cell`), one record per design and protocol."""
    ambient, soc, _ = surrogate.resolve_conditions(problem.conditions, out_of_range="flag")
    cells = []
    for _, _, _, checked in pairs:
        design, _ = surrogate.resolve_design(checked.design, out_of_range="flag")  # every training variable
        for columns in checked.trajectories.values():
            if columns:
                cell = paired_cell(surrogate, design, columns, ambient, soc, sample_id=len(cells))
                cells += [cell] if cell is not None else []
    return cells


def constraint_labels(problem: DesignProblem) -> list[str]:
    """A label per constraint value of Candidate.constraint_values, e.g. 'charge.charged_soc >= 0.78'."""
    labels = []
    for constraint in problem.constraints:
        name = f"{problem.protocol_of(constraint)}.{constraint.metric}"
        labels += [f"{name} {sign} {bound:g}" for bound, sign in ((constraint.min, ">="), (constraint.max, "<="))
                   if bound is not None]
    return labels


def best_verified(problem: DesignProblem, verified: Sequence[Candidate]) -> int | None:
    """Index of the best reference-verified candidate (feasible first); None for several objectives."""
    if len(problem.objectives) > 1 or not verified:
        return None
    points = minimisation_form(problem, verified)[:, 0]
    infeasible = np.array([not candidate.feasible(problem) for candidate in verified])
    return int(np.lexsort((points, infeasible))[0])


def design_cli(config_path: Path, run_dir: Path, out_dir: Path) -> dict[str, Any]:
    """``hybat design CONFIG --model RUN --out DIR``: the design loop of the problem in
    ``config_path`` on the trained run ``run_dir``, written to ``out_dir``; returns the report."""
    problem = load_problem(config_path)
    surrogate = HybridSurrogate(run_dir, model=problem.model)
    return design_loop(problem, surrogate, ReferenceModel(run_dir), out_dir)


# --- the report --------------------------------------------------------------------------------


def write_report(problem: DesignProblem, report: dict[str, Any], candidates: Sequence[tuple[int, Candidate]],
                 out_dir: Path) -> dict[str, str]:
    """Write report.md and the PNG (Pareto front or convergence); returns their paths."""
    (out_dir / REPORT_MARKDOWN).write_text(markdown_report(problem, report))
    plot_study(problem, report, candidates, out_dir / PLOT_FILE)
    return {"markdown": str(out_dir / REPORT_MARKDOWN), "plot": str(out_dir / PLOT_FILE),
            "json": str(out_dir / REPORT_JSON), "study": str(out_dir / STUDY_FILE)}


def _targets(problem: DesignProblem) -> list[tuple[str, str]]:
    """(protocol, metric) of every objective and constraint, once each, in order."""
    seen = []
    for target in [*problem.objectives, *problem.constraints]:
        key = (problem.protocol_of(target), target.metric)
        if key not in seen:
            seen.append(key)
    return seen


def markdown_report(problem: DesignProblem, report: dict[str, Any]) -> str:
    """A Markdown table of the chosen designs: variables, then surrogate / reference per metric."""
    targets = _targets(problem)
    lines = [f"# Design problem `{problem.name}`", "",
             f"{report['surrogate_evaluations']} surrogate evaluations, {report['reference_evaluations']} reference "
             f"evaluations, {report['wall_s']:.0f} s.", "",
             "Objectives: " + ", ".join(f"{o.direction} {problem.protocol_of(o)}.{o.metric}"
                                        for o in problem.objectives)]
    if problem.constraints:
        lines.append("Constraints: " + ", ".join(constraint_labels(problem)))
        lines.append("Back-off of the surrogate's constraints after verification: " + ", ".join(
            f"{label}: {value:.4g}" for label, value in report["constraint_backoff"].items()))
    header = ["trial (round)", *problem.variables, *(f"{p}.{m} surrogate / reference" for p, m in targets),
              "feasible (S/R)"]
    lines += ["", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for k, row in enumerate(report["chosen"]):
        mark = " (best)" if report["best"] == k else ""
        cells = [f"{row['trial']} ({row['round'] + 1}){mark}",
                 *(f"{row['params'][name]:.4g}" for name in problem.variables)]
        for protocol, metric in targets:
            cells.append(f"{_fmt(row['surrogate'].get(protocol, {}).get(metric))} / "
                         f"{_fmt(row['reference'].get(protocol, {}).get(metric))}")
        cells.append(f"{'yes' if row['surrogate_feasible'] else 'no'} / {'yes' if row['reference_feasible'] else 'no'}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot_study(problem: DesignProblem, report: dict[str, Any], candidates: Sequence[tuple[int, Candidate]],
               path: Path) -> None:
    """Single objective: surrogate objective per trial, best so far, and the reference values of
    the verified designs. Several: the first two objectives of every trial, the verified
    designs' surrogate and reference values joined by a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6.4, 4.4))
    objective = problem.objectives[0]
    label = [f"{problem.protocol_of(o)}.{o.metric}" for o in problem.objectives]
    numbers = np.array([number for number, _ in candidates])
    values = np.array([c.value(problem, objective) if c.status == "ok" else np.nan for _, c in candidates])
    feasible = np.array([c.feasible(problem) for _, c in candidates])

    def metric(side: dict, target: Objective) -> float:
        value = side.get(problem.protocol_of(target), {}).get(target.metric)
        return np.nan if value is None else value

    if len(problem.objectives) == 1:
        sign = 1.0 if objective.direction == "minimize" else -1.0
        best = sign * np.fmin.accumulate(np.where(feasible, sign * values, np.nan))
        axes.scatter(numbers[feasible], values[feasible], s=14, color="tab:blue", label="surrogate, feasible")
        axes.scatter(numbers[~feasible], values[~feasible], s=14, marker="x", color="tab:gray", label="infeasible")
        axes.step(numbers, best, where="post", color="tab:blue", label="best so far (surrogate)")
        axes.scatter([row["trial"] for row in report["chosen"]], [metric(row["reference"], objective)
                                                                  for row in report["chosen"]],
                     s=40, marker="D", facecolor="none", edgecolor="tab:red", label="reference (verified)")
        axes.set_xlabel("trial")
        axes.set_ylabel(label[0])
        axes.set_title(f"{problem.name}: convergence")
    else:
        second = problem.objectives[1]
        values_2 = np.array([c.value(problem, second) if c.status == "ok" else np.nan for _, c in candidates])
        axes.scatter(values[feasible], values_2[feasible], s=12, color="tab:blue", alpha=0.5,
                     label="surrogate, feasible")
        axes.scatter(values[~feasible], values_2[~feasible], s=12, marker="x", color="tab:gray", label="infeasible")
        for row in report["chosen"]:
            pair = [(metric(row[side], objective), metric(row[side], second)) for side in ("surrogate", "reference")]
            axes.plot(*zip(*pair), color="tab:red", linewidth=0.8)
            axes.scatter(*pair[0], s=30, color="tab:blue", edgecolor="black")
            axes.scatter(*pair[1], s=40, marker="D", facecolor="none", edgecolor="tab:red")
        axes.scatter([], [], s=40, marker="D", facecolor="none", edgecolor="tab:red", label="reference (verified)")
        axes.set_xlabel(f"{label[0]} ({objective.direction})")
        axes.set_ylabel(f"{label[1]} ({second.direction})")
        axes.set_title(f"{problem.name}: Pareto front")
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def _fmt(value: float | None) -> str:
    return "-" if value is None or (isinstance(value, float) and not math.isfinite(value)) else f"{value:.4g}"


def _number(value: Any) -> float:
    return float("nan") if value is None else float(value)


def _plain(value: Any) -> Any:
    """JSON-safe copy: non-finite floats become None, numpy scalars plain numbers."""
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value
