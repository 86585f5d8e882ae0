"""The design loop: optimise on the surrogate, verify the picks on the reference, optionally
fine-tune the surrogate on them and search again (active learning), and report.

    problem --optimise--> study.db --select_candidates--> picks
      --verify (ReferenceModel)--> reference metrics --> report.json, report.md, PNG

:func:`design_cli` is the ``hybat design CONFIG --model RUN --out DIR`` entry point.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from hybrid.design.active import fine_tune, paired_cell
from hybrid.design.candidates import Candidate, score_candidates
from hybrid.design.optimise import minimisation_form, optimise, select_candidates, study_candidates
from hybrid.design.problem import DesignProblem, check_training_space, constraint_labels, load_problem
from hybrid.design.report import REPORT_JSON, write_report
from hybrid.evaluate import json_safe
from hybrid.surrogate import HybridSurrogate, ReferenceModel, RunModel
from sim.backends import ray_runtime

log = logging.getLogger(__name__)
Verified = tuple[int, int, Candidate, Candidate]  # (round, trial, surrogate candidate, reference candidate)


def design_loop(problem: DesignProblem, surrogate: RunModel, reference: RunModel, out_dir: str | Path, *,
                progress: bool = True) -> dict[str, Any]:
    """Optimise on the surrogate, verify the selected candidates on the reference (with
    ``active_learning.rounds``, fine-tune the surrogate on them and search again), report.

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
    report = {
        "problem": problem.name,
        "objectives": [objective.model_dump() for objective in problem.objectives],
        "constraints": [constraint.model_dump() for constraint in problem.constraints],
        "chosen": [_chosen_row(problem, pair) for pair in pairs],
        "best": best_verified(problem, [checked for *_, checked in pairs]),
        "constraint_backoff": dict(zip(constraint_labels(problem), backoff)),
        "surrogate_evaluations": surrogate_evaluations,
        "reference_evaluations": len(pairs),
        "wall_s": time.perf_counter() - started,
    }
    report["files"] = write_report(problem, report, candidates, out_dir)
    (out_dir / REPORT_JSON).write_text(json.dumps(json_safe(report), indent=1))
    return json_safe(report)


def _chosen_row(problem: DesignProblem, pair: Verified) -> dict[str, Any]:
    """A verified design as a row of the report's ``chosen``: surrogate and reference side by side."""
    round_k, number, candidate, checked = pair
    return {"trial": number, "round": round_k, "params": candidate.params, "design": candidate.design,
            "surrogate": candidate.to_dict()["metrics"], "reference": checked.to_dict()["metrics"],
            "surrogate_feasible": candidate.feasible(problem), "reference_feasible": checked.feasible(problem),
            "status": {"surrogate": candidate.status, "reference": checked.status},
            "message": checked.message, "flags": checked.flags}



def verify(problem: DesignProblem, reference: RunModel, candidates: Sequence[tuple[int, Candidate]], *,
           previous: Sequence[Verified] = (), first_round: int = 0) -> tuple[list[Verified], list[float]]:
    """Verify selected candidates on the reference, in up to ``verify.rounds`` rounds (see
    :class:`hybrid.design.problem.VerifyOptions`), numbered from ``first_round``. ``previous``: verifications of an
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
        checked = score_candidates(problem, reference, [candidate.params for _, candidate in selected],
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
