"""Gradient-based protocol design: the optimal fast-charge current profile through the hybrid, by IPOPT.

The optuna loop (:mod:`hybrid.design.optimise`) searches a few protocol numbers (three C-rates
and two switch SOCs) by sampling. Here the whole current profile is the decision: the hybrid
(SPM physics of :class:`sim.physics.batched.BatchedStepper` + the residual's one-step function of
:mod:`hybrid.export.casadi`) is chained symbolically in CasADi, so IPOPT gets exact gradients.

The problem (``configs/design/fast_charge.yaml``'s constraints on a free profile):

- start: the end of a 1C discharge to 2.5 V and a 300 s rest from the corpus cell's SOC, run by
  the surrogate's closed loop (:class:`hybrid.surrogate.closed_loop.Lockstep`, the cut-off on
  the corrected voltage) with the same functions. This is the state the optuna loop's
  fast charges start from, so both answer the same question (SOC 0 from the physics' initial
  function would skip the residual's memory of the discharge and the relaxation);
- decisions: a charge C-rate c_k in [0, max_c_rate] held over each of K intervals of ``period_s``;
- constraints at every row, the charge's first to its last: corrected voltage <= max_voltage_V
  and the physics' plating margin (x-averaged negative surface potential difference) >=
  min_plating_margin_V, both at the end of each interval with its own current (the loaded
  voltage a cycler's limits act on) and at the same instant with the next current (the row the
  residual reads, as in training);
- objective: the shortest charge reaching ``target_soc``. With a fixed grid, time is the number
  of intervals, an integer: for a given K, IPOPT maximises the charged SOC (linear in c)
  plus EARLY_WEIGHT times the mean SOC over the intervals (once the end voltage bounds the
  total, idle stretches cost nothing without it, and the profile is cut at the target); a
  longer horizon never charges less (zero current keeps every constraint), so the shortest K
  reaching the target is found by bracketing and bisection, each solve from a cold start. The
  charge time is that profile cut where it reaches the target (within its last interval).

Single shooting (K ~ 30-60 rows of the 44-state SPM and the residual), L-BFGS Hessian: the
exact Hessian through the implicit SDIRK step would cost more than it saves.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import casadi
import numpy as np

from hybrid.data.columns import VOLTAGE, VOLTAGE_RESIDUAL
from hybrid.export.casadi import NEXT_STATE, STATE
from hybrid.surrogate import HybridSurrogate, OperatingConditions
from hybrid.surrogate.batches import SOC, ResidualBatch
from hybrid.surrogate.closed_loop import Lockstep
from hybrid.surrogate.control import control_steps
from hybrid.surrogate.metrics import NEGATIVE_POTENTIAL
from sim.errors import ConfigError
from sim.physics.batched import BatchedStepper, StepScheme
from sim.physics.summary import OUTPUT_VARIABLES
from sim.protocols import Sequence as StepSequence, compile_protocol

SECONDS_PER_HOUR = 3600.0
EARLY_WEIGHT = 0.1      # of the mean SOC in the objective, beside the final SOC


@dataclass(frozen=True)
class ChargeOptions:
    """The optimal-charge problem. C-rates charge positive; voltages [V]; times [s]."""

    period_s: float = 60.0             # each decision interval
    max_c_rate: float = 4.0
    target_soc: float = 0.8            # charged SOC from the end of the discharge
    max_voltage_V: float = 4.18
    min_plating_margin_V: float = 0.01
    discharge_c_rate: float = 1.0
    lower_voltage_V: float = 2.5
    upper_voltage_V: float = 4.2       # the cycler's cut-off on every replayed stage
    rest_s: float = 300.0
    start_period_s: float = 30.0       # output period of the discharge and rest (the corpus protocol's)
    max_intervals: int = 90            # bisection's upper bound on K
    max_iterations: int = 300          # IPOPT iterations per solve

    def __post_init__(self):
        if self.period_s <= 0 or self.max_c_rate <= 0 or not 0 < self.target_soc < 1:
            raise ConfigError(f"ChargeOptions: period_s ({self.period_s}) and max_c_rate ({self.max_c_rate}) must "
                              f"be > 0 and target_soc ({self.target_soc}) in (0, 1)")


class HybridCell:
    """One cell of a trained run as CasADi expressions: the physics step and the residual step,
    numeric (DM) or symbolic (MX) alike, with the rows built as in the closed loop."""

    def __init__(self, surrogate: HybridSurrogate):
        design, _ = surrogate.resolve_design({})
        ambient, soc, _ = surrogate.resolve_conditions(OperatingConditions())
        self.cell = surrogate.cell(design, ambient, soc)
        # interpreted: IPOPT needs the step's derivatives, which a compiled step would compile
        # again one by one at NLP construction (minutes); the interpreted ones build at once
        self.physics = BatchedStepper([self.cell], surrogate.fidelity, StepScheme(jit=False))
        self.residual = ResidualBatch(surrogate.trained, [design])
        self.capacity_Ah = float(self.physics.capacity_Ah[0])
        self.parameters = self.physics.inputs[0]
        self.names = [OUTPUT_VARIABLES[name] for name in self.physics.functions.output_names]
        self.memory_size = self.residual.function.size1_in(STATE)

    def reread(self, y, memory_before, time_step_s, current_A):
        """The last row again with ``current_A`` flowing from its instant (a step boundary):
        (memory after it, corrected columns)."""
        outputs = self.physics.functions.row(y, current_A, self.parameters)
        return self._corrected(outputs, memory_before, time_step_s)

    def advance(self, y, memory, dt_s, current_A, next_current_A):
        """One interval holding ``current_A`` [A] (discharge positive): (y, memory, corrected row
        at its end, showing ``next_current_A``)."""
        y, outputs = self.physics.functions.step(y, dt_s, current_A, next_current_A, self.parameters)
        memory, row = self._corrected(outputs, memory, dt_s)
        return y, memory, row

    def _corrected(self, outputs, memory, time_step_s):
        physics = {name: outputs[k] for k, name in enumerate(self.names)}
        physics[SOC] = self.cell.initial_soc - physics["Discharge capacity [A.h]"] / self.capacity_Ah
        physics["Ambient temperature [K]"] = self.cell.ambient_temperature_K
        # the closed loop's own feature mapping (Physics columns, design values, time step)
        features = [self.residual._feature(name, physics, time_step_s, np.array([0])) for name in self.residual.features]
        features = [float(value[0]) if isinstance(value, np.ndarray) else value for value in features]
        results = self.residual.function.call(dict(zip(self.residual.features, features)) | {STATE: memory})
        row = dict(physics) | {VOLTAGE: physics[VOLTAGE] + results[VOLTAGE_RESIDUAL]}
        return results[NEXT_STATE], row



@dataclass(frozen=True)
class ChargeStart:
    """Where the charge starts: the physics state y, the residual's memory before the last row
    (the charge's first row replaces it, as at a cycler's step boundary) and that row's time step."""

    y: np.ndarray
    memory_before: np.ndarray
    time_step_s: float


def charge_start(cell: HybridCell, options: ChargeOptions) -> ChargeStart:
    """The hybrid's state after a ``discharge_c_rate`` discharge to ``lower_voltage_V`` and a
    ``rest_s`` rest, run by the surrogate's own closed loop (the cut-off on the corrected voltage)."""
    start = StepSequence.model_validate({"kind": "sequence", "period_s": options.start_period_s,
                                         "steps": _start_steps(options)})
    steps = control_steps(compile_protocol(start, cell.physics.windows[0]), cell.capacity_Ah)
    loop = Lockstep(cell.physics, cell.residual, [steps])
    loop.run()
    state, memory_before, time_step = loop.end_state(0)
    return ChargeStart(state.y[0], memory_before, time_step)


@dataclass
class ChargeNLP:
    """The NLP for K intervals: ``nlp`` (x: C-rates (K,), f: see :func:`charge_nlp`, g: corrected
    voltages (2K,) then plating margins (2K,): the start's row, then each interval's loaded row and
    boundary row), its bounds, and IPOPT on it."""

    intervals: int
    nlp: dict
    bounds: dict
    solver: casadi.Function


def charge_nlp(cell: HybridCell, start: ChargeStart, intervals: int, options: ChargeOptions) -> ChargeNLP:
    """The single-shooting NLP of the module docstring for ``intervals`` decision intervals
    (objective: minus the charged SOC, minus EARLY_WEIGHT times the mean SOC over the intervals)."""
    c_rates = casadi.MX.sym("c_rate", intervals)
    current = -c_rates * cell.capacity_Ah                               # (K,) A, discharge positive
    memory, row = cell.reread(start.y, start.memory_before, start.time_step_s, current[0])
    rows, y = [row], casadi.DM(start.y)
    for k in range(intervals):
        # the cycler's limits act on the loaded voltage at the interval's end (its own current)...
        y_end, _, loaded = cell.advance(y, memory, options.period_s, current[k], current[k])
        rows.append(loaded)
        if k + 1 < intervals:  # ...and the residual reads the row there with the next current, as in training
            memory, boundary = cell.reread(y_end, memory, options.period_s, current[k + 1])
            rows.append(boundary)
        y = y_end
    voltage = casadi.vertcat(*(row[VOLTAGE] for row in rows))           # (2K,)
    plating = casadi.vertcat(*(row[NEGATIVE_POTENTIAL] for row in rows))  # (2K,)
    charged = casadi.cumsum(c_rates) * options.period_s / SECONDS_PER_HOUR  # (K,) SOC after each interval
    # the final charge, and a little of the mean SOC: once the end voltage bounds the total,
    # many profiles charge as much, and the one charging earliest is the one to cut at the target
    objective = -(charged[-1] + EARLY_WEIGHT * casadi.sum1(charged) / intervals)
    nlp = {"x": c_rates, "f": objective, "g": casadi.vertcat(voltage, plating)}
    inf = np.inf
    bounds = {"lbx": np.zeros(intervals), "ubx": np.full(intervals, options.max_c_rate),
              "lbg": np.r_[np.full(len(rows), -inf), np.full(len(rows), options.min_plating_margin_V)],
              "ubg": np.r_[np.full(len(rows), options.max_voltage_V), np.full(len(rows), inf)]}
    solver = casadi.nlpsol("optimal_charge", "ipopt", nlp, {
        "ipopt.hessian_approximation": "limited-memory", "ipopt.max_iter": options.max_iterations,
        "ipopt.tol": 1e-6, "ipopt.acceptable_tol": 1e-4, "ipopt.print_level": 0, "print_time": False, "ipopt.sb": "yes"})
    return ChargeNLP(intervals, nlp, bounds, solver)


@dataclass
class ChargeSolve:
    """One IPOPT solve: K intervals, the C-rates (K,), the charged SOC, the largest corrected
    voltage and the smallest plating margin over its rows, IPOPT's status, iterations and wall time."""

    intervals: int
    c_rates: np.ndarray
    charged_soc: float
    max_voltage_V: float
    plating_margin_V: float
    status: str
    iterations: int
    wall_s: float

    @property
    def feasible(self) -> bool:
        return self.status in ("Solve_Succeeded", "Solved_To_Acceptable_Level")


def solve_charge(cell: HybridCell, start: ChargeStart, intervals: int, options: ChargeOptions,
                 guess: np.ndarray | None = None) -> ChargeSolve:
    """The most charge in ``intervals`` intervals under the constraints, from ``guess`` (C-rates;
    default: the constant rate reaching the target over the horizon)."""
    problem = charge_nlp(cell, start, intervals, options)
    constant = min(options.target_soc * SECONDS_PER_HOUR / (intervals * options.period_s), options.max_c_rate)
    x0 = np.full(intervals, constant) if guess is None else _resized(guess, intervals)
    started = time.perf_counter()
    result = problem.solver(x0=x0, **problem.bounds)
    wall = time.perf_counter() - started
    stats = problem.solver.stats()
    g = np.asarray(result["g"]).ravel()
    c_rates = np.clip(np.asarray(result["x"]).ravel(), 0.0, options.max_c_rate)
    charged = float(c_rates.sum() * options.period_s / SECONDS_PER_HOUR)
    return ChargeSolve(intervals, c_rates, charged, float(g[:len(g) // 2].max()), float(g[len(g) // 2:].min()),
                       stats["return_status"], int(stats["iter_count"]), wall)


def _resized(c_rates: np.ndarray, intervals: int) -> np.ndarray:
    """A warm start of another length: cut, or padded with its last rate."""
    return np.r_[c_rates, np.full(max(intervals - len(c_rates), 0), c_rates[-1])][:intervals]


@dataclass
class OptimalCharge:
    """The shortest profile found: the solve at the smallest K that reaches the target, the
    profile cut at the target (C-rates (K,), the last interval's duration), the charge time to
    the target [min], and every solve of the search."""

    best: ChargeSolve
    c_rates: np.ndarray
    last_interval_s: float
    charge_time_min: float
    solves: list[ChargeSolve] = field(default_factory=list)

    @property
    def ipopt_iterations(self) -> int:
        return sum(solve.iterations for solve in self.solves)

    @property
    def ipopt_wall_s(self) -> float:
        return sum(solve.wall_s for solve in self.solves)


def optimal_charge(surrogate: HybridSurrogate, options: ChargeOptions = ChargeOptions()) -> OptimalCharge:
    """The shortest charge to ``target_soc`` through ``surrogate``'s hybrid (module docstring):
    bracket K from a 30 min guess, scaling K by target / charged, then bisect."""
    cell = HybridCell(surrogate)
    start = charge_start(cell, options)
    shortest = int(np.ceil(options.target_soc * SECONDS_PER_HOUR / (options.max_c_rate * options.period_s)))
    low, high = shortest - 1, None     # low: known short of the target; high: the best known to reach it
    intervals, solves = max(round(1800.0 / options.period_s), shortest), []
    while high is None or high.intervals - low > 1:
        # cold starts: a longer horizon's optimum, cut, carries its idle stretches along
        solve = solve_charge(cell, start, intervals, options)
        solves.append(solve)
        if solve.feasible and solve.charged_soc >= options.target_soc:
            high = solve
        else:
            low = intervals
        intervals = _next_intervals(low, high, intervals, solve, options)
        if intervals is None:
            raise ConfigError(f"optimal_charge: no profile reaches target_soc {options.target_soc} within "
                              f"max_intervals {options.max_intervals} x {options.period_s} s; allowed: a larger "
                              "max_intervals or max_c_rate, or looser constraints")
    c_rates, last = cut_at_target(high.c_rates, options)
    charge_time = ((len(c_rates) - 1) * options.period_s + last) / 60.0
    return OptimalCharge(high, c_rates, last, charge_time, solves)


@dataclass
class VerifiedRound:
    """One round of :func:`verified_optimal_charge`: the voltage limit the hybrid was held to,
    the profile found and its figures on the hybrid's closed loop and on the reference."""

    max_voltage_V: float
    found: OptimalCharge
    hybrid: dict[str, float]
    reference: dict[str, float]


def verified_optimal_charge(surrogate: HybridSurrogate, reference, options: ChargeOptions = ChargeOptions(),
                            rounds: int = 2) -> list[VerifiedRound]:
    """:func:`optimal_charge`, each profile replayed on the hybrid and on ``reference`` (a
    :class:`hybrid.surrogate.ReferenceModel`); where the reference's top-of-charge voltage
    exceeds ``max_voltage_V``, the hybrid's limit is backed off by the hybrid's error there and
    the search runs again (at most ``rounds`` searches), as the optuna loop backs off its
    constraints by the errors its verifications show."""
    results, limit = [], options.max_voltage_V
    for _ in range(rounds):
        held = replace(options, max_voltage_V=limit)
        found = optimal_charge(surrogate, held)
        profile = charge_protocol(found.c_rates, found.last_interval_s, held)
        scored = [charge_metrics(evaluation.columns, evaluation.capacity_Ah)
                  for model in (surrogate, reference) for evaluation in model.evaluate([{}], profile)]
        results.append(VerifiedRound(limit, found, *scored))
        excess = scored[1]["max_charge_voltage_V"] - options.max_voltage_V
        if excess <= 0:
            break
        limit -= max(scored[1]["max_charge_voltage_V"] - scored[0]["max_charge_voltage_V"], excess)
    return results


def _next_intervals(low: int, high: ChargeSolve | None, intervals: int, solve: ChargeSolve,
                    options: ChargeOptions) -> int | None:
    """Bisection once bracketed; before, K scaled by target / charged (outside the bracket)."""
    if high is not None:
        return (low + high.intervals) // 2
    if intervals >= options.max_intervals:
        return None
    scaled = int(np.ceil(intervals * options.target_soc / max(solve.charged_soc, 1e-3)))
    return min(max(scaled, intervals + 1), options.max_intervals)


def cut_at_target(c_rates: np.ndarray, options: ChargeOptions) -> tuple[np.ndarray, float]:
    """The profile up to where its charge reaches ``target_soc``: (C-rates, last interval [s])."""
    charged = np.cumsum(c_rates) * options.period_s / SECONDS_PER_HOUR
    last = int(np.searchsorted(charged, options.target_soc - 1e-12))
    if last >= len(c_rates):
        raise ConfigError(f"cut_at_target: the profile charges {charged[-1]:.3f} < target_soc {options.target_soc}")
    before = charged[last - 1] if last else 0.0
    duration = (options.target_soc - before) * SECONDS_PER_HOUR / c_rates[last]
    return c_rates[: last + 1].copy(), float(duration)


def charge_protocol(c_rates: np.ndarray, last_interval_s: float, options: ChargeOptions) -> StepSequence:
    """The discharge and rest of the start, the profile (one CC step an interval, each also
    ending at ``upper_voltage_V`` as a cycler's would) and a rest: the protocol to replay on
    the hybrid's closed loop or the reference, scored by :func:`trajectory_metrics`."""
    rest = {"kind": "rest", "duration_s": options.rest_s, "period_s": options.start_period_s}
    durations = np.r_[np.full(len(c_rates) - 1, options.period_s), last_interval_s]
    stages = [{"kind": "cc", "c_rate": -float(c_rate), "duration_s": float(duration),
               "until_voltage_V": options.upper_voltage_V, "period_s": options.period_s}
              if c_rate > 1e-6 else {"kind": "rest", "duration_s": float(duration), "period_s": options.period_s}
              for c_rate, duration in zip(c_rates, durations)]
    return StepSequence.model_validate({"kind": "sequence", "period_s": options.start_period_s,
                                        "steps": [*_start_steps(options), *stages, rest]})


def _start_steps(options: ChargeOptions) -> list[dict]:
    """Where every charge starts: a discharge to the lower cut-off and a rest."""
    return [{"kind": "cc", "c_rate": options.discharge_c_rate, "until_voltage_V": options.lower_voltage_V,
             "period_s": options.start_period_s},
            {"kind": "rest", "duration_s": options.rest_s, "period_s": options.start_period_s}]


def charge_metrics(columns: dict[str, np.ndarray], capacity_Ah: float, rest_c_rate: float = 0.02) -> dict[str, float]:
    """The constrained figures of the whole charge, from its first charging row to the row after
    its last: charge time [min], charged SOC, plating margin and max voltage over the charging
    rows. :func:`trajectory_metrics` scores only the first charging run, and an optimal profile
    may rest between pulses; for a charge without rests both agree."""
    time_s, current = columns["Time [s]"], columns["Current [A]"]
    charging = -current > rest_c_rate * capacity_Ah
    rows = np.flatnonzero(charging)
    first, end = rows[0], min(rows[-1] + 1, len(time_s) - 1)
    discharged = columns["Discharge capacity [A.h]"]
    return {"charge_time_min": float(time_s[end] - time_s[first]) / 60.0,
            "charged_soc": float(discharged[first] - discharged[end]) / capacity_Ah,
            "plating_margin_V": float(columns[NEGATIVE_POTENTIAL][charging].min()),
            "max_charge_voltage_V": float(columns[VOLTAGE][charging].max())}
