"""Benchmark: BatchedStepper against PhysicsStepper, cost per design-interval and accuracy.

Usage:
    python experiments/bench_batched_physics.py [--sizes 1 16 256] [--threads 1] [--repeats 3] [--quick]

Cells: the designs of configs/corpus/design.yaml (its seeded Sobol points, cell spec and
physics fidelity: SPM + lumped thermal + SEI).

- Speed, per scheme and batch size N: wall time of BatchedStepper.advance (every cell's new
  state and output row) over successive 60 s intervals of 1C cycles (45 intervals of discharge
  from full, 45 of charge, again), best of ``--repeats``; us per design-interval = wall /
  (intervals x N). Baseline in the same run: PhysicsStepper on
  the first cell over 48 of the same intervals, one interval a call (as a batch would drive it)
  and all 48 in one call (closed_loop solves stretches of up to 64 when no cut-off or CV hold
  intervenes). ``design_s_2000`` = the cost of a design protocol of 2000 intervals at the
  largest N (issue 14 wants <= ~0.09 s a design, everything included).
- Accuracy, per scheme: max |V - V_IDAKLU| [mV] over the rows of a 1C discharge (3000 s, 60 s
  intervals, from full), 2C pulses (10 s on, 40 s rest, 1 s intervals, from 80 %) and a 1C
  charge (2400 s, 60 s intervals, from 20 %), on the first design; IDAKLU is
  PhysicsStepper, whose own error (rtol 1e-4) is of the same order (0.1 mV; 0.8 mV at the end
  of a deep discharge).
- Setup: seconds to prepare a cell (electrode balance) and to build and compile a scheme.

``--quick``: sizes 1 and 16, one repeat, two schemes. Prints one JSON line; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from sim.cells import CellSpec
from sim.config import load_config
from sim.corpus import CorpusSpec
from sim.corpus.sample import design_point
from sim.physics import prepare_cell
from sim.physics.batched import BatchedStepper, StepScheme
from sim.physics.stepper import PhysicsStepper

CORPUS = Path(__file__).parents[1] / "configs" / "corpus" / "design.yaml"
SCHEMES = {
    "sdirk3_2sub_1newton": StepScheme("sdirk3", substeps=2, newton_iterations=1),
    "sdirk2_2sub_2newton": StepScheme("sdirk2", substeps=2, newton_iterations=2),
    "sdirk3_1sub_1newton": StepScheme("sdirk3", substeps=1, newton_iterations=1),
    "sdirk3_2sub_1newton_interpreted": StepScheme("sdirk3", substeps=2, newton_iterations=1, jit=False),
    "cvodes": StepScheme("cvodes", jit=False),
}
QUICK_SCHEMES = ("sdirk3_2sub_1newton", "cvodes")
TIMED_CELL_INTERVALS = 4000  # per timing: fewer intervals at larger N


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 16, 256])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    sizes, repeats = ([1, 16], 1) if args.quick else (args.sizes, args.repeats)
    schemes = {name: SCHEMES[name] for name in (QUICK_SCHEMES if args.quick else SCHEMES)}
    spec = load_config(CORPUS, CorpusSpec)
    cells = [spec.cell.with_updates(design=design_point(spec, index)) for index in range(max(sizes))]
    result = {"fidelity": spec.physics.label, "threads": args.threads, "sizes": sizes,
              "setup": _setup_costs(cells[: min(16, len(cells))], spec),
              "baseline_physics_stepper_us_per_interval": _baseline(cells[0], spec, repeats), "schemes": {}}
    for name, scheme in schemes.items():
        _progress(f"scheme {name}")
        started = time.perf_counter()
        BatchedStepper(cells[:1], spec.physics, scheme)  # build (and compile) once, untimed below
        figures = {"build_s": round(time.perf_counter() - started, 2),
                   "us_per_design_interval": {size: _batched_cost(cells[:size], spec, scheme, args.threads, repeats)
                                              for size in sizes},
                   "max_abs_dV_mV": _accuracy(cells[0], spec, scheme)}
        figures["design_s_2000"] = round(figures["us_per_design_interval"][max(sizes)] * 2000 * 1e-6, 4)
        result["schemes"][name] = figures
    print(json.dumps(result))


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _setup_costs(cells: list[CellSpec], spec: CorpusSpec) -> dict:
    started = time.perf_counter()
    for cell in cells:
        prepare_cell(cell, spec.physics)
    return {"prepare_cell_s": round((time.perf_counter() - started) / len(cells), 4)}


def _cycles(capacity_Ah: np.ndarray | float, intervals: int) -> tuple[np.ndarray, np.ndarray]:
    """(interval end times [s], held currents [A] (intervals, cells)): 1C cycles at 60 s
    intervals, 45 intervals of discharge then 45 of charge."""
    times = 60.0 * np.arange(1, intervals + 1)
    direction = np.where(np.arange(intervals) // 45 % 2 == 0, 1.0, -1.0)
    return times, np.multiply.outer(direction, capacity_Ah)


def _baseline(cell: CellSpec, spec: CorpusSpec, repeats: int) -> dict:
    """PhysicsStepper's us per interval, one interval a call and 48 (the whole stretch) a call."""
    stepper = PhysicsStepper(cell, spec.physics)
    times, current = _cycles(stepper.capacity_Ah, 48)
    stepper.advance(stepper.initial_state(), times[:2], current[:2])  # warm
    costs = {}
    for per_call in (1, len(times)):
        best = np.inf
        for _ in range(repeats):
            state, started = stepper.initial_state(), time.perf_counter()
            for first in range(0, len(times), per_call):
                state, _ = stepper.advance(state, times[first: first + per_call], current[first: first + per_call])
            best = min(best, time.perf_counter() - started)
        costs[f"{per_call}_per_call"] = round(best / len(times) * 1e6, 1)
    return costs


def _batched_cost(cells: list[CellSpec], spec: CorpusSpec, scheme: StepScheme, threads: int, repeats: int) -> float:
    batch = BatchedStepper(cells, spec.physics, scheme, threads=threads)
    intervals = max(5, TIMED_CELL_INTERVALS // len(cells))
    _, current = _cycles(batch.capacity_Ah, intervals)  # (intervals, cells)
    batch.advance(batch.initial_state(), 60.0, current[0])  # warm (the map over N cells)
    best = np.inf
    for _ in range(repeats):
        state, started = batch.initial_state(), time.perf_counter()
        for held in current:
            state, _ = batch.advance(state, 60.0, held)
        best = min(best, time.perf_counter() - started)
    _progress(f"  N={len(cells)}: {best / intervals / len(cells) * 1e6:.1f} us per design-interval")
    return round(best / intervals / len(cells) * 1e6, 2)


def _accuracy(cell: CellSpec, spec: CorpusSpec, scheme: StepScheme) -> dict:
    """Max |dV| [mV] against PhysicsStepper on the three protocols (rows at every sample)."""
    capacity = prepare_cell(cell, spec.physics).capacity_Ah
    discharge, pulses, charge = (np.arange(60.0, 3001.0, 60.0), np.arange(1.0, 301.0, 1.0),
                                 np.arange(60.0, 2401.0, 60.0))
    protocols = {"discharge_1C_60s": (1.0, discharge, np.full(len(discharge), capacity)),
                 "pulses_2C_1s": (0.8, pulses, np.where((pulses - 1.0) % 50.0 < 10.0, 2.0 * capacity, 0.0)),
                 "charge_1C_60s": (0.2, charge, np.full(len(charge), -capacity))}
    errors = {}
    for name, (soc, times, held) in protocols.items():
        cell_at = cell.with_updates(initial_soc=soc)
        stepper = PhysicsStepper(cell_at, spec.physics)
        _, reference = stepper.advance(stepper.initial_state(), times, held)
        batch = BatchedStepper([cell_at], spec.physics, scheme)
        state, voltage = batch.initial_state(), []
        for k, dt in enumerate(np.diff(times, prepend=0.0)):
            state, columns = batch.advance(state, dt, held[k], held[min(k + 1, len(held) - 1)])
            voltage.append(columns["Voltage [V]"][0])
        errors[name] = round(float(np.abs(np.array(voltage) - reference["Voltage [V]"]).max() * 1e3), 4)
    _progress(f"  accuracy [mV]: {errors}")
    return errors


if __name__ == "__main__":
    main()
