"""Optimal fast-charge current profile by IPOPT through the hybrid, against the optuna loop's best.

Usage:
    python experiments/optimal_charge.py --run runs/design [--period 60] [--max-c-rate 4] [--rounds 2] \
        [--optuna 3.67 0.43 1.85 0.68 0.57]

The problem of configs/design/fast_charge.yaml on a free profile (hybrid/design/gradient.py):
from the end of a 1C discharge to 2.5 V and a 300 s rest, the shortest charge to 80 % SOC with
the corrected voltage <= 4.18 V and the plating margin >= 10 mV. Then both the IPOPT profile
and the optuna loop's best three-stage protocol (``--optuna c_rate_1 switch_soc_1 c_rate_2
switch_soc_2 c_rate_3``, one cycle) run on the hybrid's closed loop (HybridSurrogate) and on the
reference (ReferenceModel, DFN plant), scored alike (hybrid.design.gradient.charge_metrics: the whole charge,
rests between pulses included): charge time, charged SOC, plating margin, max charge voltage.
Where the reference's top-of-charge voltage breaks 4.18 V, the limit the hybrid is held to is
backed off by the hybrid's error there and the search runs again (``--rounds``, every round
reported). Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import time

from hybrid.design.gradient import ChargeOptions, charge_metrics, verified_optimal_charge
from hybrid.surrogate import HybridSurrogate, ReferenceModel
from sim.protocols import FastCharge

OPTUNA_BEST = (3.67, 0.43, 1.85, 0.68, 0.57)  # the verified best of designs/fast_charge (27.6 min)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, help="a run trained on configs/corpus/design.yaml")
    parser.add_argument("--period", type=float, default=60.0, help="decision interval [s]")
    parser.add_argument("--max-c-rate", type=float, default=4.0)
    parser.add_argument("--rounds", type=int, default=2, help="searches at most, each backing the voltage "
                        "limit off by the hybrid's error the last one showed on the reference")
    parser.add_argument("--optuna", type=float, nargs=5, default=OPTUNA_BEST,
                        metavar=("C1", "SWITCH1", "C2", "SWITCH2", "C3"))
    args = parser.parse_args()
    options = ChargeOptions(period_s=args.period, max_c_rate=args.max_c_rate)
    surrogate, reference = HybridSurrogate(args.run), ReferenceModel(args.run)
    started = time.perf_counter()
    rounds = verified_optimal_charge(surrogate, reference, options, rounds=args.rounds)
    wall_s = time.perf_counter() - started
    c1, s1, c2, s2, c3 = args.optuna
    optuna = FastCharge(c_rates=[c1, c2, c3], switch_socs=[s1, s2], cycles=1, period_s=options.start_period_s)
    print(json.dumps({
        "ipopt": [{"max_voltage_V": round(r.max_voltage_V, 4),
                   "c_rates": [round(float(c), 3) for c in r.found.c_rates],
                   "last_interval_s": round(r.found.last_interval_s, 1), "intervals": r.found.best.intervals,
                   "predicted_charge_time_min": round(r.found.charge_time_min, 3),
                   "predicted_max_voltage_V": round(r.found.best.max_voltage_V, 4),
                   "predicted_plating_margin_V": round(r.found.best.plating_margin_V, 4),
                   "ipopt_iterations": r.found.ipopt_iterations, "ipopt_wall_s": round(r.found.ipopt_wall_s, 1),
                   "solves": [{"K": s.intervals, "charged_soc": round(s.charged_soc, 4), "status": s.status,
                               "iterations": s.iterations, "wall_s": round(s.wall_s, 1)} for s in r.found.solves],
                   "hybrid": _rounded(r.hybrid), "reference": _rounded(r.reference)} for r in rounds],
        "wall_s": round(wall_s, 1),
        "optuna": {"params": list(args.optuna), "hybrid": _scored(surrogate, optuna),
                   "reference": _scored(reference, optuna)},
    }))


def _rounded(metrics: dict[str, float]) -> dict[str, float]:
    return {name: round(value, 4) for name, value in metrics.items()}


def _scored(model, protocol) -> dict:
    """The constrained metrics of ``protocol`` on ``model`` (nominal design), with its status."""
    evaluation = model.evaluate([{}], protocol)[0]
    metrics = charge_metrics(evaluation.columns, evaluation.capacity_Ah)
    return {"status": evaluation.status} | _rounded(metrics)


if __name__ == "__main__":
    main()
