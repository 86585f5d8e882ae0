"""Does the design plant age a cell faster when it charges faster? The fast-charge test of a
design problem run on the plant of a corpus spec at a few settings, slow to fast.

Usage:
    python experiments/fast_charge_ageing.py [--corpus configs/corpus/design.yaml]
        [--problem configs/design/fast_charge.yaml] [--plating irreversible] [--plating-acceleration 1]
        [--activation-energy 38000] [--ageing-acceleration 100]

The plant is the corpus's reference (fidelity, cell, overrides; nominal: no variability, no
sensor) with the options given changed; each setting is the problem's fast-charge protocol
(``charge``) with its stage C-rates and switch SOCs. Prints one JSON line per setting:
capacity retention (the problem's metric options), charge time and charged SOC of the fast
charge, lithium inventory lost [%], lithium lost to plating [A.h] and the highest temperature.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from hybrid.design import load_problem
from hybrid.surrogate.metrics import trajectory_metrics
from sim.config import load_config
from sim.corpus import CorpusSpec
from sim.physics import simulate

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = [([1.0, 1.0, 0.5], [0.4, 0.65]), ([2.0, 1.5, 0.7], [0.4, 0.65]), ([3.0, 2.0, 1.0], [0.3, 0.6]),
            ([4.0, 2.5, 1.5], [0.4, 0.65])]
ACTIVATION = "SEI growth activation energy [J.mol-1]"
PLATED = "Loss of capacity to negative lithium plating [A.h]"


def plant(spec: CorpusSpec, args: argparse.Namespace):
    """(cell, fidelity) of the corpus's nominal plant with the command line's changes."""
    updates = {key: value for key, value in (("plating", args.plating), ("plating_acceleration",
                                                                          args.plating_acceleration),
                                             ("ageing_acceleration", args.ageing_acceleration)) if value is not None}
    fidelity = spec.reference.fidelity.model_copy(update=updates)
    overrides = {**spec.cell.overrides, **spec.reference.overrides}
    if args.activation_energy is not None:
        overrides[ACTIVATION] = args.activation_energy
    return spec.cell.with_updates(overrides=overrides), fidelity


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=ROOT / "configs" / "corpus" / "design.yaml")
    parser.add_argument("--problem", type=Path, default=ROOT / "configs" / "design" / "fast_charge.yaml")
    parser.add_argument("--plating", choices=["reversible", "irreversible", "partially reversible"], default=None)
    parser.add_argument("--plating-acceleration", type=float, default=None)
    parser.add_argument("--activation-energy", type=float, default=None, help=f"{ACTIVATION}")
    parser.add_argument("--ageing-acceleration", type=float, default=None)
    args = parser.parse_args(argv)
    spec, problem = load_config(args.corpus, CorpusSpec), load_problem(args.problem)
    cell, fidelity = plant(spec, args)
    template = problem.protocols["charge"]
    for c_rates, switch_socs in SETTINGS:
        protocol = template.model_copy(update={"c_rates": c_rates, "switch_socs": switch_socs})
        started = time.perf_counter()
        trajectory = simulate(cell, protocol, fidelity)
        columns = trajectory.columns
        metrics = trajectory_metrics(columns, capacity_Ah=trajectory.metadata["capacity_Ah"],
                                     window_V=tuple(trajectory.metadata["voltage_window_V"]),
                                     options=problem.metric_options) if columns else {}
        print(json.dumps({"c_rates": c_rates, "switch_socs": switch_socs, "fidelity": fidelity.label,
                          "activation_energy": cell.named_parameters().get(ACTIVATION), "status": trajectory.status,
                          **{key: metrics.get(key) for key in ("capacity_retention_pct", "charge_time_min",
                                                               "charged_soc", "max_temperature_K")},
                          "lli_pct": float(columns["Loss of lithium inventory [%]"][-1]) if columns else None,
                          "plated_Ah": float(columns[PLATED][-1]) if PLATED in columns else None,
                          "wall_s": time.perf_counter() - started}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
