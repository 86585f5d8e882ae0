"""One corpus sample: plan it from (corpus seed, index), simulate the reference, measure it,
drive the physics model with the measured current, and return numpy columns.

Everything random about a sample comes from ``SeedSequence(corpus seed, spawn_key=(index,))``
and the design point ``index`` of a seeded quasi-random sequence, so a sample is the same
whichever worker, backend or run computes it.
"""

from __future__ import annotations

import contextlib
import json
import signal
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.stats import qmc

from sim.protocols import AgeingCampaign, CurrentTrace, Dynamic, Protocol
from sim.physics import ModelCache, simulate
from sim.plant import NOMINAL_PLANT_VOLTAGE, measure_reference
from sim.physics import Trajectory
from sim.errors import SampleTimeout
from sim.corpus.validity import left_window_message, rows_inside_window
from sim.corpus.writer import cycles_table, series_table

WORKER_CACHE = ModelCache(max_size=16)


@dataclass
class SamplePlan:
    """Everything that defines sample ``index`` of a corpus."""

    index: int
    seed: int
    design: dict[str, float]
    ambient_temperature_K: float
    protocol: Protocol
    scales: dict[str, float]
    rng: np.random.Generator = field(repr=False)


@dataclass
class SampleResult:
    """What a worker sends back: one samples-table row and numpy columns (never a Solution)."""

    record: dict[str, Any]
    series: dict[str, np.ndarray] | None = None
    cycles: dict[str, np.ndarray] | None = None


def design_point(spec, index: int) -> dict[str, float]:
    """Design variables of sample ``index`` from the spec's seeded sampler."""
    if spec.design is None or not spec.design.variables:
        return {}
    names = sorted(spec.design.variables)
    if spec.design.sampler == "sobol":
        # the first 2^m points of a Sobol sequence are a prefix of any longer draw, so point
        # ``index`` does not depend on how many cells the corpus has
        sampler = qmc.Sobol(len(names), scramble=True, seed=spec.seed)
        unit = sampler.random_base2(max(0, index.bit_length()))[index]
    else:
        unit = qmc.LatinHypercube(len(names), seed=spec.seed).random(spec.cells)[index]
    return {name: spec.design.variables[name].at(u) for name, u in zip(names, unit)}


def plan_sample(spec, index: int) -> SamplePlan:
    """The deterministic plan of sample ``index`` (depends only on the spec and the index)."""
    sequence = np.random.SeedSequence(spec.seed, spawn_key=(index,))
    rng = np.random.default_rng(sequence)
    weights = np.array([choice.weight for choice in spec.protocols])
    choice = spec.protocols[int(rng.choice(len(weights), p=weights / weights.sum()))]
    temperatures = choice.ambient_temperatures_K or spec.ambient_temperatures_K
    ambient = float(temperatures[int(rng.integers(len(temperatures)))])
    protocol = choice.protocol
    protocol = _reseed_profiles(protocol, int(rng.integers(2**31)))
    scales = spec.reference.draw_scales(rng)
    return SamplePlan(index, int(sequence.generate_state(1)[0]), design_point(spec, index), ambient,
                      protocol, scales, rng)


def _reseed_profiles(protocol: Protocol, seed: int) -> Protocol:
    """Give a sample its own dynamic profile (a profile's seed is part of the protocol)."""
    if isinstance(protocol, Dynamic) and protocol.current_csv is None and protocol.speed_csv is None:
        return protocol.model_copy(update={"seed": seed})
    if isinstance(protocol, AgeingCampaign) and "dynamic" in protocol.diagnostics:
        return protocol.model_copy(update={"dynamic": _reseed_profiles(protocol.dynamic, seed)})
    return protocol


def run_sample(spec, index: int, cache: ModelCache | None = None) -> SampleResult:
    """Simulate sample ``index``: reference, sensor, physics counterpart. Failures are data."""
    started = time.perf_counter()
    plan = plan_sample(spec, index)
    record = base_record(spec, plan)
    try:
        with _time_limit(spec.timeout_s):
            result = _simulate_pair(spec, plan, record, cache or WORKER_CACHE)
    except SampleTimeout:
        result = SampleResult({**record, "status": "failed",
                               "message": f"SampleTimeout: exceeded timeout_s = {spec.timeout_s} s"})
    result.record["wall_s"] = time.perf_counter() - started
    return result


def spread_scales(cell_scales: dict[str, float], drawn: dict[str, float]) -> dict[str, float]:
    """The plant's parameter scales: the cell's own (a calibration's, a smaller cell's) times its
    cell-to-cell draw, so variability spreads a parameter around the cell's value."""
    return {name: cell_scales.get(name, 1.0) * drawn.get(name, 1.0) for name in {**cell_scales, **drawn}}


def _simulate_pair(spec, plan: SamplePlan, record: dict, cache: ModelCache) -> SampleResult:
    base = dict(design=plan.design, ambient_temperature_K=plan.ambient_temperature_K)
    plant_cell = spec.cell.with_updates(**base, overrides={**spec.cell.overrides, **spec.reference.overrides},
                                        scales=spread_scales(spec.cell.scales, plan.scales))
    reference = simulate(plant_cell, plan.protocol, spec.reference.fidelity, cache=cache)
    if not reference.ok:
        return SampleResult({**record, "status": "failed", "message": f"reference: {reference.message}"})
    if len(reference.columns["Time [s]"]) < 2:  # stopped at its first row: nothing to measure or pair
        return SampleResult({**record, "status": "failed",
                             "message": f"reference: {reference.message} (at its first row)"})
    measured, draws = measure_reference(reference, spec.reference.sensor, plan.rng)
    boundaries = tuple(zip(reference.cycles["Tag"].tolist(), reference.cycles["Start time [s]"].tolist(),
                           reference.cycles["End time [s]"].tolist()))
    trace = CurrentTrace(measured["Time [s]"], measured["Current [A]"], measured["Discharge capacity [A.h]"],
                         boundaries)
    physics = simulate(spec.cell.with_updates(**base), trace, spec.physics, cache=cache, voltage_cutoffs=False)
    if not physics.ok:
        return SampleResult({**record, "status": "failed", "message": f"physics: {physics.message}"})
    if spec.floor:
        nominal_cell = plant_cell.with_updates(scales=dict(spec.cell.scales))
        reference.columns[NOMINAL_PLANT_VOLTAGE] = _nominal_plant_voltage(nominal_cell, trace, spec, cache)
    cut_message = _cut_where_a_model_leaves_its_window(measured, reference, physics)
    status = "ok" if reference.status == physics.status == "ok" and not cut_message else "truncated"
    record.update(status=status, message=f"reference: {reference.message}; physics: {physics.message}"
                                          + (f"; {cut_message}" if cut_message else ""),
                  rows=len(measured["Time [s]"]), simulated_hours=float(measured["Time [s]"][-1] / 3600.0),
                  capacity_Ah=reference.metadata["capacity_Ah"],
                  physics_capacity_Ah=physics.metadata["capacity_Ah"],
                  **{f"sensor_{name}": value for name, value in draws.items()})
    return SampleResult(record, series_table(plan.index, measured, physics.columns, truth=reference.columns),
                        cycles_table(plan.index, reference.cycles, physics.cycles))


def _nominal_plant_voltage(cell, trace: CurrentTrace, spec, cache: ModelCache) -> np.ndarray:
    """The plant at nominal variability driven by the measured current: its voltage at every
    measured row (NaN where its solve failed or stopped early: the floor is then unknown there,
    which is no reason to lose the sample)."""
    nominal = simulate(cell, trace, spec.reference.fidelity, cache=cache, voltage_cutoffs=False)
    voltage = np.full(len(trace.time_s), np.nan)
    if nominal.ok:
        values = nominal.columns["Voltage [V]"][: len(voltage)]
        voltage[: len(values)] = values
    return voltage


def _cut_where_a_model_leaves_its_window(measured: dict, reference: Trajectory, physics: Trajectory) -> str:
    """Driven past its own full or empty state (the plant holds more charge, or the measured
    charge counter drifted), the physics model's voltage runs off to its OCP asymptotes; so does
    a plant replaying a measured current past its voltage limits (``Dynamic.voltage_cutoffs``).
    Cut the series and the cycles where either leaves its window, in place; return why (empty
    when nothing was cut)."""
    windows = {"physics": physics, "reference": reference}
    end, name, window = min((rows_inside_window(t.columns["Voltage [V]"], t.metadata["voltage_window_V"]), name,
                             t.metadata["voltage_window_V"]) for name, t in windows.items())
    if end >= len(physics.columns["Voltage [V]"]):
        return ""
    end_time = float(measured["Time [s]"][end])
    for columns in (measured, reference.columns, physics.columns):
        for column in columns:
            columns[column] = columns[column][:end]
    for trajectory in (reference, physics):
        keep = trajectory.cycles["End time [s]"] < end_time
        trajectory.cycles = {column: values[keep] for column, values in trajectory.cycles.items()}
    return f"{name} {left_window_message(window, end_time)}"


def base_record(spec, plan: SamplePlan) -> dict[str, Any]:
    return {"sample_id": plan.index, "status": "failed", "message": "", "seed": plan.seed,
            **{f"design_{name}": value for name, value in plan.design.items()},
            **{f"scale_{name}": value for name, value in plan.scales.items()},
            "ambient_temperature_K": plan.ambient_temperature_K, "protocol_kind": plan.protocol.kind,
            "protocol": json.dumps(plan.protocol.model_dump(mode="json"), sort_keys=True)}


@contextlib.contextmanager
def _time_limit(seconds: float | None):
    """Raise SampleTimeout in this block after ``seconds`` (main thread only; checked when
    the solver hands control back to Python, i.e. between experiment steps)."""
    if seconds is None or threading.current_thread() is not threading.main_thread():
        yield
        return

    def _expire(signum, frame):
        raise SampleTimeout()

    previous = signal.signal(signal.SIGALRM, _expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
