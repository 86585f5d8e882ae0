"""The design loop: calibrate the surrogate's uncertainty on a few reference designs, optimise on
the surrogate, verify picks on the reference (:mod:`hybrid.design.verify`), optionally fine-tune
the surrogate on them and search again (active learning), spend what is left of the reference
budget polishing the best verified design (:mod:`hybrid.design.polish`), and report. Each
search steers by the surrogate's constraint values as calibrated on the designs verified before
it (offset and local bias, :mod:`hybrid.design.uncertainty`), so a constraint the surrogate is
biased on does not wall off the region where the reference meets it.

    problem --calibration designs--> --optimise--> study.db --verify (acquisition)--> picks
      --ReferenceModel--> reference metrics --polish--> report.json, report.md, PNG

:func:`design_cli` is the ``hybat design CONFIG --model RUN --out DIR`` entry point.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from hybrid.design.active import fine_tune, paired_cell
from hybrid.design.candidates import Candidate, score_candidates
from hybrid.design.optimise import minimisation_form, optimise, study_candidates
from hybrid.design.problem import DesignProblem, check_training_space, constraint_labels, load_problem
from hybrid.design.report import REPORT_JSON, write_report
from hybrid.design.uncertainty import (
    Calibration,
    coverage,
    design_positions,
    inside_interval,
    target_arrays,
    target_labels,
)
from hybrid.design.polish import polish
from hybrid.design.verify import Verified, best_verified, calibrated, calibration_designs, verify
from hybrid.evaluate import json_safe
from hybrid.surrogate import HybridSurrogate, ReferenceModel, RunModel
from hybrid.surrogate.ensemble import Z_90
from sim.backends import ray_runtime

log = logging.getLogger(__name__)


def design_loop(problem: DesignProblem, surrogate: RunModel, reference: RunModel, out_dir: str | Path, *,
                progress: bool = True) -> dict[str, Any]:
    """Verify the calibration designs, optimise on the surrogate, verify picks on the reference
    (with ``active_learning.rounds``, fine-tune the surrogate on everything verified and search
    again; with ``verify.polish_steps``, polish the best verified design), report.

    Returns (and writes to ``out_dir/report.json``)::

        {"problem", "chosen": [{"trial", "round", "purpose", "params", "design",
          "surrogate": {PROTOCOL: {METRIC: value}}, "spread": {...}, "interval": {TARGET: [lo, hi]},
          "reference": {...}, "surrogate_feasible", "reference_feasible", "status", "flags"}],
         "best": index into chosen (single objective: best reference objective), "objectives",
         "constraints", "uncertainty": {"calibration", "coverage", "coverage_raw", "active_learning"},
         "surrogate_evaluations", "reference_evaluations", "wall_s", "files"}
    """
    started = time.perf_counter()
    out_dir = Path(out_dir)
    check_training_space(problem, surrogate)
    runtime = ray_runtime(problem.workers) if problem.backend == "ray" else contextlib.nullcontext()
    shrinkage = []
    with runtime:
        calibration = calibration_designs(problem, surrogate, reference)
        candidates = study_candidates(optimise(problem, surrogate, out_dir, progress=progress,
                                               calibration=calibrated(problem, calibration)))
        pairs, backoff = verify(problem, reference, candidates, previous=calibration,
                                first_round=1 if calibration else 0)
        pairs = calibration + pairs
        surrogate_evaluations = len(calibration) + len(candidates)
        for round_k in range(1, problem.active_learning.rounds + 1):
            if problem.verify.budget is not None and len(pairs) >= problem.verify.budget:
                break
            round_dir = out_dir / f"active_{round_k}"
            tuned = fine_tune(surrogate, verified_cells(problem, surrogate, pairs), problem.active_learning,
                              round_dir / "run", seed=problem.optimiser.seed)
            shrinkage.append(uncertainty_shrinkage(problem, tuned, candidates, pairs))
            surrogate = tuned
            candidates = study_candidates(optimise(problem, surrogate, round_dir, progress=progress,
                                                   calibration=calibrated(problem, pairs)))
            surrogate_evaluations += len(candidates)
            more, backoff = verify(problem, reference, candidates, previous=pairs, first_round=pairs[-1].round + 1)
            pairs += more
        pairs += polish(problem, surrogate, reference, pairs)
    report = {
        "problem": problem.name,
        "objectives": [objective.model_dump() for objective in problem.objectives],
        "constraints": [constraint.model_dump() for constraint in problem.constraints],
        "chosen": [_chosen_row(problem, pair) for pair in pairs],
        "best": best_verified(problem, [pair.reference for pair in pairs]),
        "constraint_backoff": dict(zip(constraint_labels(problem), backoff)),
        "uncertainty": _uncertainty(problem, pairs, shrinkage),
        "surrogate_evaluations": surrogate_evaluations,
        "reference_evaluations": len(pairs),
        "wall_s": time.perf_counter() - started,
    }
    report["files"] = write_report(problem, report, candidates, out_dir)
    (out_dir / REPORT_JSON).write_text(json.dumps(json_safe(report), indent=1))
    return json_safe(report)


def _chosen_row(problem: DesignProblem, pair: Verified) -> dict[str, Any]:
    """A verified design as a row of the report's ``chosen``: surrogate (mean, spread, calibrated
    90 % interval per target, as judged when it was picked) beside the reference."""
    candidate, checked = pair.surrogate, pair.reference
    (mean,), (spread,) = target_arrays(problem, [candidate])
    (mean,) = pair.calibration.mean(mean[None, :], design_positions(problem, pair.calibration, [candidate]))
    half = Z_90 * pair.calibration.sigma(spread)
    return {"trial": pair.trial, "round": pair.round, "purpose": pair.purpose, "params": candidate.params,
            "design": candidate.design, "surrogate": candidate.to_dict()["metrics"],
            "spread": candidate.to_dict()["spread"],
            "interval": {label: [m - h, m + h] for label, m, h in zip(target_labels(problem), mean, half)},
            "inside": dict(zip(target_labels(problem), inside_interval(problem, pair.calibration, candidate, checked))),
            "reference": checked.to_dict()["metrics"],
            "surrogate_feasible": candidate.feasible(problem), "reference_feasible": checked.feasible(problem),
            "status": {"surrogate": candidate.status, "reference": checked.status},
            "message": checked.message, "flags": checked.flags}


def _uncertainty(problem: DesignProblem, pairs: Sequence[Verified], shrinkage: list[dict]) -> dict[str, Any]:
    """The final calibration, the coverage of the search picks' 90 % intervals (each judged by the
    calibration it was picked with) and of the raw ensemble's on every verified design, and
    what each active-learning round did to the spread."""
    raw = Calibration.raw(problem)
    return {"calibration": calibrated(problem, pairs).to_dict(),
            "coverage": coverage(problem, [(p.calibration, p.surrogate, p.reference) for p in pairs
                                           if p.purpose == "search"]),
            "coverage_raw": coverage(problem, [(raw, p.surrogate, p.reference) for p in pairs]),
            "active_learning": shrinkage}


def uncertainty_shrinkage(problem: DesignProblem, tuned: RunModel, candidates: Sequence[tuple[int, Candidate]],
                          pairs: Sequence[Verified], probes: int = 16) -> dict[str, Any]:
    """The mean ensemble spread per target on ``probes`` designs the fine-tuning did not see (the
    study's best unverified candidates by surrogate objective), before and after fine-tuning."""
    seen = {pair.trial for pair in pairs}
    unseen = [c for n, c in candidates if n not in seen and c.status == "ok"]
    order = np.argsort(minimisation_form(problem, unseen)[:, 0], kind="stable") if unseen else []
    probe = [unseen[k] for k in order[:probes]]
    if not probe:
        return {"probe_designs": 0}
    again = score_candidates(problem, tuned, [c.params for c in probe])
    (_, before), (_, after) = target_arrays(problem, probe), target_arrays(problem, again)
    labels = target_labels(problem)
    mean_before, mean_after = np.nanmean(before, axis=0), np.nanmean(after, axis=0)
    return {"probe_designs": len(probe),
            "spread_before": dict(zip(labels, mean_before.tolist())),
            "spread_after": dict(zip(labels, mean_after.tolist())),
            "ratio": {label: (a / b if b > 0 else None) for label, a, b in zip(labels, mean_after, mean_before)}}


def verified_cells(problem: DesignProblem, surrogate: HybridSurrogate, pairs: Sequence[Verified]) -> list:
    """Every verified reference trajectory paired with the surrogate's physics model (see
    :func:`hybrid.design.active.paired_cell`), one record per design and protocol."""
    ambient, soc, _ = surrogate.resolve_conditions(problem.conditions, out_of_range="flag")
    cells = []
    for pair in pairs:
        design, _ = surrogate.resolve_design(pair.reference.design, out_of_range="flag")  # every training variable
        for columns in pair.reference.trajectories.values():
            if columns:
                cell = paired_cell(surrogate, design, columns, ambient, soc, sample_id=len(cells))
                cells += [cell] if cell is not None else []
    return cells


def design_cli(config_path: Path, run_dir: Path, out_dir: Path) -> dict[str, Any]:
    """``hybat design CONFIG --model RUN --out DIR``: the design loop of the problem in
    ``config_path`` on the trained run ``run_dir``, written to ``out_dir``; returns the report."""
    problem = load_problem(config_path)
    surrogate = HybridSurrogate(run_dir, model=problem.model)
    return design_loop(problem, surrogate, ReferenceModel(run_dir), out_dir)
