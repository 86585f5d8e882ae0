"""Where does each model's protocol stop? The surrogate (hybrid in the loop), the physics model
alone and the plant, on the same designs and protocol.

Usage:
    python experiments/cutoff_agreement.py --run RUN [--designs 8] [--seed 0] [--model NAME]
        [--c-rate 1.0] [--period 60] [--cv-cutoff 0.2]

Designs are drawn uniformly (seeded) inside the run's training design space. Each runs one
CCCV cycle of the corpus kind (discharge at ``--c-rate`` to the lower cut-off, charge at the
same rate to the upper one, CV to ``--cv-cutoff`` C, rests; outputs every ``--period`` s) on
three models: the run's plant (:class:`hybrid.surrogate.ReferenceModel`, the truth here), the
run's physics model alone (its own voltage meets the cut-offs) and the hybrid surrogate (the
corrected voltage meets them). For the end of the discharge and the end of the CC charge it
reports, per model, the mean |stop time - plant's stop time| and the share of designs within
one output period of the plant. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from hybrid.surrogate import HybridSurrogate, OperatingConditions, ReferenceModel
from hybrid.surrogate.phases import current_phases
from sim.physics import simulate
from sim.protocols import Cycling


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    surrogate = HybridSurrogate(args.run, model=args.model)
    reference = ReferenceModel(args.run)
    protocol = Cycling(cycles=1, discharge_c_rate=args.c_rate, charge_c_rate=args.c_rate,
                       cv_cutoff_c_rate=args.cv_cutoff, rest_s=300.0, period_s=args.period)
    designs = draw_designs(surrogate, args.designs, args.seed)
    plant = [evaluation.columns for evaluation in reference.evaluate(designs, protocol)]
    hybrid = [evaluation.columns for evaluation in surrogate.evaluate(designs, protocol)]
    ambient, soc, _ = surrogate.resolve_conditions(OperatingConditions())
    physics = [simulate(surrogate.cell(surrogate.resolve_design(design)[0], ambient, soc), protocol,
                        surrogate.fidelity).columns for design in designs]
    result = {"experiment": "cutoff_agreement", "run": str(args.run), "model": surrogate.model_name,
              "designs": len(designs), "seed": args.seed, "period_s": args.period, "protocol": protocol.model_dump()}
    for event in ("discharge_end", "cc_charge_end"):
        truth = np.array([stop_time(columns, event) for columns in plant])
        result[event] = {name: agreement(np.array([stop_time(columns, event) for columns in runs]), truth,
                                         args.period)
                         for name, runs in (("surrogate", hybrid), ("physics", physics))}
    print(json.dumps(result))
    return result


def stop_time(columns: dict[str, np.ndarray], event: str) -> float:
    """When the first discharge ended, or the constant-current part of the first charge."""
    time_s, current = columns["Time [s]"], columns["Current [A]"]
    phases = current_phases(time_s, current, threshold_A=1e-3)
    if event == "discharge_end":
        sign, start, stop = next(phase for phase in phases if phase[0] == 1)
        return float(time_s[min(stop, len(time_s) - 1)])
    sign, start, stop = next(phase for phase in phases if phase[0] == -1)
    charge = np.abs(current[start:stop])
    tapering = np.flatnonzero(charge < 0.99 * charge[0])  # the CV hold's current falls below the CC one
    return float(time_s[start + tapering[0]] if len(tapering) else time_s[min(stop, len(time_s) - 1)])


def agreement(stops: np.ndarray, truth: np.ndarray, period_s: float) -> dict:
    error = np.abs(stops - truth)
    return {"mean_abs_error_s": float(np.mean(error)), "max_abs_error_s": float(np.max(error)),
            "within_one_period": float(np.mean(error <= period_s))}


def draw_designs(model: HybridSurrogate, count: int, seed: int) -> list[dict[str, float]]:
    rng = np.random.default_rng(seed)
    designs = []
    for _ in range(count):
        design = {}
        for name, bounds in model.design_space.items():
            low, high = (np.log(bounds.low), np.log(bounds.high)) if bounds.log else (bounds.low, bounds.high)
            value = rng.uniform(low, high)
            design[name] = float(np.exp(value) if bounds.log else value)
        designs.append(design)
    return designs


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, help="a run directory written by hybat train")
    parser.add_argument("--model", default=None, help="the run's hybrid (default: its first)")
    parser.add_argument("--designs", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--c-rate", type=float, default=1.0)
    parser.add_argument("--cv-cutoff", type=float, default=0.2, help="CV hold ends at this C-rate")
    parser.add_argument("--period", type=float, default=60.0, help="output period [s]")
    return parser.parse_args(argv)


if __name__ == "__main__":
    main(sys.argv[1:])
