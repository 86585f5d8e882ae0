"""Benchmark: corpus throughput serial vs Ray, parallel efficiency, machinery overhead, driver memory.

Usage:
    python experiments/bench_corpus.py [--spec configs/corpus/bench.yaml] [--cells 16]
                                       [--workers 2] [--memory-cells 4] [--keep DIR]

Prints one JSON line, every figure measured in this run:
- serial and Ray throughput on the same ``--cells`` samples (samples/s, simulated cell-hours/s,
  cell-hours per core-second); the two corpora are checked to be identical.
- parallel efficiency = serial time / (workers x Ray time). Both sides start warm: modules
  imported and model caches filled by ``--workers`` extra samples (indices past ``--cells``),
  run in the serial driver and one on each Ray worker before the clocks start. An end-to-end
  efficiency that also counts Ray's start-up and those warm-up samples is reported beside it.
  To tell Ray's own losses from other load on a shared machine: worker_busy_fraction (time
  workers spent inside samples / workers x Ray time), sample_slowdown_vs_serial, and a CPU
  efficiency = serial CPU seconds / CPU seconds of the Ray run (workers, driver, Ray's daemons),
  which is what the wall-clock efficiency tends to on cores nobody else uses.
- overhead_pct: the time of the serial run outside the bare PyBaMM solves (``Simulation.solve``
  and ``Simulation.step``, which include lazy model discretisation) over the time inside them:
  sample planning, cell preparation, model building, reading the output variables from the
  solutions (timed apart as output_columns_s), sensor model, Parquet writing, journal,
  consolidation. Beside it the overhead over the simulate() calls (pct_over_simulate), which
  hides what simulate() itself adds to the solves (model builds among it).
- peak driver memory (high-water RSS, a fresh process per size) of a Ray corpus of
  ``--memory-cells`` samples and of one four times larger: the driver keeps no data, so it
  must not grow.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pybamm

import sim.corpus.sample
from sim.config import load_config
from sim.corpus import CorpusSpec, generate_corpus
from sim.corpus import run_sample

ROOT = Path(__file__).resolve().parents[1]
TARGETS = {"parallel_efficiency": 0.9, "overhead_pct": 5.0, "driver_memory_growth": 0.05}
PYBAMM_SOLVES = ((pybamm.Simulation, "solve"), (pybamm.Simulation, "step"))


@contextlib.contextmanager
def time_spent_in(*targets: tuple[object, str]):
    """Patch each ``owner.name`` of ``targets`` to add the seconds spent in them to the yielded
    list's one entry (outermost calls only: PyBaMM's Simulation.solve calls itself)."""
    originals = [getattr(owner, name) for owner, name in targets]
    spent, depth = [0.0], [0]

    def timed(original):
        def call(*args, **kwargs):
            started = time.perf_counter()
            depth[0] += 1
            try:
                return original(*args, **kwargs)
            finally:
                depth[0] -= 1
                if depth[0] == 0:
                    spent[0] += time.perf_counter() - started
        return call

    for (owner, name), original in zip(targets, originals):
        setattr(owner, name, timed(original))
    try:
        yield spent
    finally:
        for (owner, name), original in zip(targets, originals):
            setattr(owner, name, original)


def _warm_up_sample(spec: CorpusSpec, index: int) -> int:
    """Run one sample on a Ray worker to fill its model cache; returns the worker's pid."""
    run_sample(spec, index)
    return os.getpid()


def run_serial(spec: CorpusSpec, warm_spec: CorpusSpec, warm_indices: range, out: Path) -> dict:
    started = time.perf_counter()
    for index in warm_indices:
        run_sample(warm_spec, index)
    warm_up_s = time.perf_counter() - started
    simulate_module = importlib.import_module("sim.physics.simulate")  # the package re-exports its function
    with time_spent_in((sim.corpus.sample, "simulate")) as simulate_s, time_spent_in(*PYBAMM_SOLVES) as solve_s, \
            time_spent_in((simulate_module, "output_columns")) as columns_s:
        started, cpu_started = time.perf_counter(), time.process_time()
        generate_corpus(spec, out, progress=False)
        wall_s, cpu_s = time.perf_counter() - started, time.process_time() - cpu_started
    return {"wall_s": wall_s, "cpu_s": cpu_s, "warm_up_s": warm_up_s, "simulate_s": simulate_s[0],
            "solve_s": solve_s[0], "output_columns_s": columns_s[0]}


def run_ray(spec: CorpusSpec, warm_spec: CorpusSpec, warm_indices: range, out: Path, workers: int) -> dict:
    import ray

    started = time.perf_counter()
    ray.init(num_cpus=workers, include_dashboard=False, logging_level="WARNING")
    start_s = time.perf_counter() - started
    try:
        started = time.perf_counter()
        warm = ray.remote(num_cpus=1)(_warm_up_sample)
        warmed_pids = ray.get([warm.remote(warm_spec, index) for index in warm_indices])
        warm_up_s = time.perf_counter() - started
        cpu_before, driver_before = descendants_cpu_s(), time.process_time()
        started = time.perf_counter()
        generate_corpus(spec, out, backend="ray", progress=False)  # reuses this runtime
        wall_s = time.perf_counter() - started
        cpu_after, driver_cpu_s = descendants_cpu_s(), time.process_time() - driver_before
    finally:
        ray.shutdown()
    cpu = {kind: sum(seconds - cpu_before[kind].get(pid, 0.0) for pid, seconds in cpu_after[kind].items())
           for kind in cpu_after}
    return {"wall_s": wall_s, "start_s": start_s, "warm_up_s": warm_up_s, "warmed_workers": len(set(warmed_pids)),
            "worker_cpu_s": cpu["workers"], "ray_daemons_cpu_s": cpu["daemons"], "driver_cpu_s": driver_cpu_s}


def descendants_cpu_s() -> dict[str, dict[int, float]]:
    """CPU seconds (user + system) so far of each process below this one (Linux /proc), split
    into Ray workers (whose title Ray sets to ``ray::...``) and Ray's daemons (GCS, raylet, ...)."""
    parent_of, cpu_of, title_of = {}, {}, {}
    ticks = os.sysconf("SC_CLK_TCK")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            title_of[int(entry.name)] = (entry / "cmdline").read_bytes()
        except OSError:  # ended while we looked
            continue
        parent_of[int(entry.name)] = int(fields[1])
        cpu_of[int(entry.name)] = (int(fields[11]) + int(fields[12])) / ticks  # utime + stime
    below = {pid for pid in parent_of if _has_ancestor(pid, os.getpid(), parent_of)}
    is_worker = {pid: title_of[pid].startswith(b"ray::") or b"default_worker.py" in title_of[pid] for pid in below}
    return {"workers": {pid: cpu_of[pid] for pid in below if is_worker[pid]},
            "daemons": {pid: cpu_of[pid] for pid in below if not is_worker[pid]}}


def _has_ancestor(pid: int, ancestor: int, parent_of: dict[int, int]) -> bool:
    while pid in parent_of and pid > 1:
        pid = parent_of[pid]
        if pid == ancestor:
            return True
    return False


def probe_driver_memory(spec: CorpusSpec, out: Path, workers: int) -> dict:
    """Generate ``spec`` with the Ray backend in this (fresh) process; its memory figures.

    The peak is the kernel's high-water mark of this process's own memory (VmHWM), not
    getrusage's ru_maxrss, which a child inherits from the parent it was forked from."""
    before_MiB = _memory_MiB("VmRSS")
    generate_corpus(spec, out, backend="ray", workers=workers, progress=False)
    return {"cells": spec.cells, "peak_rss_MiB": round(_memory_MiB("VmHWM"), 1),
            "rss_before_run_MiB": round(before_MiB, 1)}


def _memory_MiB(field: str) -> float:
    """A memory figure of this process from /proc/self/status (Linux), in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024.0  # kB
    raise RuntimeError(f"/proc/self/status has no {field} (the memory check needs Linux)")


def driver_memory(spec_path: Path, cells: int, workers: int, out: Path) -> dict:
    command = [sys.executable, __file__, "--spec", str(spec_path), "--workers", str(workers),
               "--probe-memory", str(cells), "--keep", str(out)]
    finished = subprocess.run(command, capture_output=True, text=True, check=False)
    if finished.returncode != 0:
        raise RuntimeError(f"memory probe of {cells} cells failed: {finished.stderr[-2000:]}")
    return json.loads(finished.stdout.strip().splitlines()[-1])


def same_corpus(left: Path, right: Path) -> bool:
    """Whether two corpora hold the same samples, series and cycles (wall times aside)."""
    def tables(corpus: Path):
        samples = pd.read_parquet(corpus / "samples.parquet").drop(columns=["wall_s"])
        series = pd.read_parquet(corpus / "series").sort_values(["sample_id", "Time [s]"], kind="stable")
        cycles = pd.read_parquet(corpus / "cycles").sort_values(["sample_id", "Source"], kind="stable")
        return [table.reset_index(drop=True) for table in (samples.sort_values("sample_id"), series, cycles)]

    return all(a.equals(b) for a, b in zip(tables(left), tables(right)))


def throughput(samples: int, cell_hours: float, wall_s: float, cores: int) -> dict:
    return {"wall_s": round(wall_s, 2), "samples_per_s": round(samples / wall_s, 4),
            "cell_hours_per_s": round(cell_hours / wall_s, 2),
            "cell_hours_per_core_s": round(cell_hours / (cores * wall_s), 2)}


def measure(args: argparse.Namespace, base: CorpusSpec, work: Path) -> dict:
    """Every timed run of the benchmark, in order, with corpora written under ``work``."""
    spec = base.model_copy(update={"cells": args.cells})
    # warm-up samples lie past the timed ones; a sample's plan does not depend on ``cells``
    warm_spec = base.model_copy(update={"cells": args.cells + args.workers})
    warm_indices = range(args.cells, args.cells + args.workers)
    serial = run_serial(spec, warm_spec, warm_indices, work / "serial")
    ray_run = run_ray(spec, warm_spec, warm_indices, work / "ray", args.workers)
    memory = [driver_memory(args.spec, cells, args.workers, work / f"memory-{cells}")
              for cells in (args.memory_cells, 4 * args.memory_cells)]
    return {"serial": serial, "ray": ray_run, "memory": memory,
            "samples": pd.read_parquet(work / "serial" / "samples.parquet"),
            "ray_sample_s": float(pd.read_parquet(work / "ray" / "samples.parquet")["wall_s"].sum()),
            "identical": same_corpus(work / "serial", work / "ray")}


def summarise(args: argparse.Namespace, measured: dict) -> dict:
    """The JSON figures of the measurements."""
    serial, ray_run, memory, samples = measured["serial"], measured["ray"], measured["memory"], measured["samples"]
    workers, cell_hours = args.workers, float(samples["simulated_hours"].sum())
    efficiency = serial["wall_s"] / (workers * ray_run["wall_s"])
    end_to_end = (serial["warm_up_s"] + serial["wall_s"]) / (
        workers * (ray_run["start_s"] + ray_run["warm_up_s"] + ray_run["wall_s"]))
    ray_cpu_s = ray_run["worker_cpu_s"] + ray_run["driver_cpu_s"] + ray_run["ray_daemons_cpu_s"]
    machinery_s = serial["wall_s"] - serial["solve_s"]
    overhead_pct = 100.0 * machinery_s / serial["solve_s"]
    growth = memory[1]["peak_rss_MiB"] / memory[0]["peak_rss_MiB"] - 1.0
    return {
        "spec": str(args.spec), "cells": args.cells, "workers": workers, "cpu_count": os.cpu_count(),
        "statuses": samples["status"].value_counts().to_dict(), "identical_corpora": measured["identical"],
        "simulated_cell_hours": round(cell_hours, 1),
        "warm_up": f"imports and model caches warm in both: {workers} extra samples run first "
                   "in the serial driver and one on each Ray worker, outside the timed runs",
        "serial": throughput(args.cells, cell_hours, serial["wall_s"], 1) | {
            "warm_up_s": round(serial["warm_up_s"], 2)},
        "ray": throughput(args.cells, cell_hours, ray_run["wall_s"], workers) | {
            "start_s": round(ray_run["start_s"], 2), "warm_up_s": round(ray_run["warm_up_s"], 2),
            "warmed_workers": ray_run["warmed_workers"],
            "worker_busy_fraction": round(measured["ray_sample_s"] / (workers * ray_run["wall_s"]), 3),
            "sample_slowdown_vs_serial": round(measured["ray_sample_s"] / float(samples["wall_s"].sum()), 3)},
        "parallel_efficiency": round(efficiency, 3),
        "parallel_efficiency_with_start_up": round(end_to_end, 3),
        "overhead_pct": round(overhead_pct, 2),
        "cpu": {"serial_s": round(serial["cpu_s"], 2), "ray_workers_s": round(ray_run["worker_cpu_s"], 2),
                "ray_driver_s": round(ray_run["driver_cpu_s"], 2),
                "ray_daemons_s": round(ray_run["ray_daemons_cpu_s"], 2),
                "serial_cpu_share": round(serial["cpu_s"] / serial["wall_s"], 3),
                "ray_worker_cpu_share": round(ray_run["worker_cpu_s"] / (workers * ray_run["wall_s"]), 3),
                "cpu_efficiency": round(serial["cpu_s"] / ray_cpu_s, 3)},
        "overhead": {"per_sample_ms": round(1000.0 * machinery_s / args.cells, 1),
                     "pct_over_pybamm_solve": round(overhead_pct, 2),
                     "pct_over_simulate":
                         round(100.0 * (serial["wall_s"] - serial["simulate_s"]) / serial["simulate_s"], 2),
                     "pybamm_solve_s": round(serial["solve_s"], 2), "simulate_s": round(serial["simulate_s"], 2),
                     "output_columns_s": round(serial["output_columns_s"], 2)},
        "driver_memory": {"small": memory[0], "large": memory[1], "peak_growth_pct": round(100.0 * growth, 2)},
        "targets_met": {"parallel_efficiency>=0.9": efficiency >= TARGETS["parallel_efficiency"],
                        "parallel_efficiency_with_start_up>=0.9": end_to_end >= TARGETS["parallel_efficiency"],
                        "overhead<=5%": overhead_pct <= TARGETS["overhead_pct"],
                        "driver_memory_flat(<5%)": growth <= TARGETS["driver_memory_growth"]},
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", type=Path, default=ROOT / "configs" / "corpus" / "bench.yaml")
    parser.add_argument("--cells", type=int, default=16, help="samples timed serially and with Ray")
    parser.add_argument("--workers", type=int, default=2, help="Ray CPUs")
    parser.add_argument("--memory-cells", type=int, default=4, help="small corpus of the memory check")
    parser.add_argument("--keep", type=Path, default=None, help="write the corpora here and keep them")
    parser.add_argument("--probe-memory", type=int, default=None, help=argparse.SUPPRESS)  # internal
    args = parser.parse_args(argv)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    base = load_config(args.spec, CorpusSpec)
    if args.probe_memory is not None:
        figures = probe_driver_memory(base.model_copy(update={"cells": args.probe_memory}), args.keep, args.workers)
        print(json.dumps(figures))
        return figures

    begun, load_at_start = time.perf_counter(), os.getloadavg()[0]
    work = args.keep or Path(tempfile.mkdtemp(prefix="bench-corpus-"))
    try:
        measured = measure(args, base, work)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    # other work on the machine slows both runs unevenly: the load puts the figures in context
    figures = summarise(args, measured) | {"load_1min": [round(load_at_start, 2), round(os.getloadavg()[0], 2)],
                                           "bench_wall_s": round(time.perf_counter() - begun, 1)}
    print(json.dumps(figures))
    return figures


if __name__ == "__main__":
    main()
