"""Benchmark: model build vs solve time per fidelity, and build-once-solve-many vs rebuild.

Usage:
    python experiments/bench_simulate.py [--solves 20] [--cycles 1]

Prints one JSON line. For each fidelity: the first simulate() call (build + solve) and the
mean of later calls on the cached model with a different cell (solve only); then the time of
``--solves`` simulations of different cells (porosity swept) with a shared model cache
against the same simulations with a fresh build each time, measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from sim.cells import CellSpec
from sim.physics import Fidelity
from sim.protocols import Cycling
from sim.physics import ModelCache, simulate

FIDELITIES = {"spm": Fidelity(model="spm"), "spme": Fidelity(model="spme"), "dfn": Fidelity(model="dfn"),
              "spm+lumped+sei": Fidelity(model="spm", thermal="lumped", sei="solvent-diffusion limited")}


def _cells(count: int) -> list[CellSpec]:
    return [CellSpec(design={"negative_porosity": float(p)}) for p in np.linspace(0.22, 0.32, count)]


def _timed(cells, protocol, fidelity, cache_for_each) -> float:
    started = time.perf_counter()
    for cell in cells:
        simulate(cell, protocol, fidelity, cache=cache_for_each(), raise_on_failure=True)
    return time.perf_counter() - started


def build_vs_solve(protocol, fidelity, repeats: int = 5) -> dict:
    cache = ModelCache()
    cells = _cells(repeats + 1)
    first = _timed(cells[:1], protocol, fidelity, lambda: cache)
    solve = _timed(cells[1:], protocol, fidelity, lambda: cache) / repeats
    return {"first_call_s": round(first, 4), "solve_s": round(solve, 4), "build_s": round(first - solve, 4)}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--solves", type=int, default=20)
    parser.add_argument("--cycles", type=int, default=1)
    args = parser.parse_args(argv)
    protocol = Cycling(cycles=args.cycles, period_s=60.0)
    figures = {"protocol": f"{args.cycles} CCCV cycle(s), 1C/0.5C", "fidelities": {}}
    for name, fidelity in FIDELITIES.items():
        figures["fidelities"][name] = build_vs_solve(protocol, fidelity)
    spm = FIDELITIES["spm"]
    shared = ModelCache()
    reuse_s = _timed(_cells(args.solves), protocol, spm, lambda: shared)
    rebuild_s = _timed(_cells(args.solves), protocol, spm, ModelCache)
    figures["reuse"] = {"fidelity": "spm", "solves": args.solves, "build_once_s": round(reuse_s, 3),
                        "rebuild_every_time_s": round(rebuild_s, 3), "speedup": round(rebuild_s / reuse_s, 2)}
    print(json.dumps(figures))
    return figures


if __name__ == "__main__":
    main()
