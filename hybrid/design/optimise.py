"""The optimiser: optuna's TPE (single- and multi-objective) or NSGA-II/III, seeded, querying a
model (the hybrid surrogate) ``batch_size`` trials at a time, and the choice of what to verify.

    problem --optimise--> study.db (every trial: variables, surrogate metrics)
      --select_candidates--> best designs (single objective) or the Pareto set

A batch is asked together so that the surrogate solves it together (one batched residual
pass; parallel solves with the Ray backend); TPE uses the constant liar so a batch spreads
out. The study lives in ``out_dir/study.db`` (SQLite) and a rerun with the same problem resumes
it (``load_if_exists``); a resumed sampler restarts its random stream, so a resumed study
matches an uninterrupted one in its finished trials only.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import optuna
from tqdm import tqdm

from hybrid.design.candidates import Candidate, score_candidates
from hybrid.design.problem import DesignProblem, OptimiserOptions, constraint_labels, unit_positions
from hybrid.surrogate import RunModel
from sim.errors import ConfigError

if TYPE_CHECKING:  # (uncertainty imports this module)
    from hybrid.design.uncertainty import Calibration

log = logging.getLogger(__name__)

STUDY_FILE = "study.db"


def make_sampler(options: OptimiserOptions) -> optuna.samplers.BaseSampler:
    """The seeded optuna sampler ``options`` names."""
    if options.sampler == "tpe":
        return optuna.samplers.TPESampler(seed=options.seed, n_startup_trials=options.startup_trials,
                                          constant_liar=True)
    if options.sampler == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=options.seed, population_size=options.population_size)
    return optuna.samplers.NSGAIIISampler(seed=options.seed, population_size=options.population_size)


def optimise(problem: DesignProblem, model: RunModel, out_dir: str | Path, *,
             calibration: Calibration | None = None, progress: bool = True) -> optuna.Study:
    """Run (or resume) the problem's study on ``model`` until it holds ``optimiser.trials``
    complete trials. Trials keep their candidate (metrics, status) in ``user_attrs``.

    With ``calibration`` (:mod:`hybrid.design.uncertainty`, fitted on the designs verified
    before the search) the sampler sees each constraint value as the reference is expected to
    give it: the model's value plus the calibration's offset and local bias at the design.
    Without it the sampler steers by the model's raw values, and a constraint the model
    underestimates walls off the region near its bound, where the optimum of a constrained
    problem usually lies.

    Raises ConfigError when ``out_dir`` holds a study of another problem or other offsets.
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
    fingerprint += steering_key(problem, calibration)
    if study.user_attrs.get("problem", fingerprint) != fingerprint:
        raise ConfigError(f"out_dir {out_dir}: {STUDY_FILE} holds a study of another problem '{problem.name}' "
                          "(or of other constraint offsets); allowed: the same problem to resume it, or a new out_dir")
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
            shift = (np.zeros((len(params), len(constraint_labels(problem)))) if calibration is None else
                     calibration.shift(unit_positions(problem, params))[:, len(problem.objectives):])
            for trial, candidate, offset in zip(trials, score_candidates(problem, model, params), shift):
                trial.set_user_attr("candidate", candidate.to_dict())
                for k, value in enumerate(np.asarray(candidate.constraint_values(problem)) + offset):
                    trial.set_constraint(f"c{k}", float(value))
                study.tell(trial, candidate.objective_values(problem))
            done += len(trials)
            bar.update(len(trials))
    return study


def steering_key(problem: DesignProblem, calibration: Calibration | None) -> str:
    """What of ``calibration`` the sampler sees, for the study's fingerprint: nothing without it;
    the constraint offsets where any is nonzero (so a study steered by offsets alone keeps the
    fingerprint it always had) and a digest of each constraint's local bias where any has one."""
    if calibration is None:
        return ""
    constraints = range(len(problem.objectives), len(calibration.labels))
    offset = [round(float(calibration.offset[k]), 12) for k in constraints]
    key = f" constraint_offset={offset}" if any(offset) else ""
    bias = [calibration.bias[k].key() if calibration.bias and calibration.bias[k] is not None else None
            for k in constraints]
    return key + (f" constraint_bias={bias}" if any(bias) else "")


def study_candidates(study: optuna.Study) -> list[tuple[int, Candidate]]:
    """(trial number, candidate) of every complete trial, in trial order."""
    result = []
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        stored = trial.user_attrs["candidate"]
        metrics, spread = ({protocol: {name: _number(value) for name, value in values.items()}
                            for protocol, values in stored.get(key, {}).items()} for key in ("metrics", "spread"))
        result.append((trial.number, Candidate(stored["params"], stored["design"], metrics, spread, stored["status"],
                                               stored["message"], stored["flags"])))
    return result


def pareto_front(points: np.ndarray) -> np.ndarray:
    """(points,) bool: not dominated, for minimisation of every column of ``points``."""
    points = np.asarray(points, dtype=float)
    no_worse = np.all(points[:, None, :] <= points[None, :, :], axis=2)  # [i, j]: i is nowhere worse than j
    better = np.any(points[:, None, :] < points[None, :, :], axis=2)
    return ~np.any(no_worse & better, axis=0)


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


def _number(value: Any) -> float:
    return float("nan") if value is None else float(value)
