"""Protocols: what the cycler does to the cell, generated locally (no downloads).

Protocol specs are pydantic models told apart by ``kind``: ``rest``, ``cc``, ``sequence``
(rest, CC and CV steps in order), ``cycling`` (CC or CCCV), ``fast_charge`` (multi-stage CC
charges, cycled, between optional reference tests: :mod:`sim.protocols.fast_charge`), ``hppc``, ``dynamic`` (drive-cycle-like current from a vehicle model or a
user's CSV) and ``ageing_campaign`` (N cycles at a coarse output period with high-rate
diagnostics every k cycles). :func:`compile_protocol` turns one into *blocks* of PyBaMM
experiment steps (one block = one experiment cycle with a tag used in the per-cycle summary),
or into a plain current trace when the protocol is purely current-driven (solved ~14x faster
as an interpolant than as an experiment step).

Currents are given as C-rates relative to the cell's own capacity (passed to PyBaMM through
"Nominal cell capacity [A.h]" as a solver input), so a design change does not rebuild the
experiment. Discharge is positive.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal, Union

import numpy as np
import pybamm
from pydantic import Field, model_serializer, model_validator

from sim.protocols import drive_cycles as drive_cycles
from sim.protocols.base import ProtocolBase
from sim.protocols.fast_charge import FastCharge
from sim.protocols.profile_csv import read_current_csv, read_speed_csv

# A CC step to a voltage cut-off is given this much longer than 1/C so that it ends on the
# cut-off, not on PyBaMM's default 2 h step limit; CV holds end on current or on this cap.
CC_DURATION_MARGIN = 1.5
CV_MAX_DURATION_S = 3 * 3600.0


class Rest(ProtocolBase):
    kind: Literal["rest"] = "rest"
    duration_s: float = Field(gt=0.0)


class ConstantCurrent(ProtocolBase):
    """One CC step; c_rate > 0 discharges, < 0 charges; ends at a voltage or after a time."""

    kind: Literal["cc"] = "cc"
    c_rate: float = Field(ge=-10.0, le=10.0)
    until_voltage_V: float | None = Field(None, gt=0.0, le=5.0)
    duration_s: float | None = Field(None, gt=0.0)

    @model_validator(mode="after")
    def _has_end(self) -> "ConstantCurrent":
        if self.c_rate == 0.0:
            raise ValueError("c_rate must be non-zero (use kind: rest for a rest)")
        if self.until_voltage_V is None and self.duration_s is None:
            raise ValueError("give until_voltage_V or duration_s")
        return self


class ConstantVoltage(ProtocolBase):
    """One CV hold at ``voltage_V``; ends when |current| falls to ``until_c_rate`` (C) or after
    ``duration_s`` (a step of a sequence, after a CC step that brought the cell there)."""

    kind: Literal["cv"] = "cv"
    voltage_V: float = Field(gt=0.0, le=5.0)
    until_c_rate: float | None = Field(None, gt=0.0, le=10.0)
    duration_s: float | None = Field(None, gt=0.0)

    @model_validator(mode="after")
    def _has_end(self) -> "ConstantVoltage":
        if self.until_c_rate is None and self.duration_s is None:
            raise ValueError("give until_c_rate or duration_s")
        return self


class Sequence(ProtocolBase):
    """A user-written list of rest, CC and CV steps run once, in order."""

    kind: Literal["sequence"] = "sequence"
    steps: list[Annotated[Union[Rest, ConstantCurrent, ConstantVoltage], Field(discriminator="kind")]] = Field(
        min_length=1)


class Cycling(ProtocolBase):
    """CC or CCCV cycling between the cell's voltage cut-offs (or the given ones).

    cv_cutoff_c_rate: end of the constant-voltage hold as a C-rate; null for CC-only charge.
    start: which half-cycle comes first ("discharge" suits a cell starting full).
    """

    kind: Literal["cycling"] = "cycling"
    cycles: int = Field(1, ge=1, le=10000)
    discharge_c_rate: float = Field(1.0, gt=0.0, le=10.0)
    charge_c_rate: float = Field(0.5, gt=0.0, le=10.0)
    cv_cutoff_c_rate: float | None = Field(0.05, gt=0.0, le=1.0)
    rest_s: float = Field(600.0, ge=0.0)
    start: Literal["discharge", "charge"] = "discharge"
    lower_voltage_V: float | None = Field(None, gt=0.0, le=5.0)
    upper_voltage_V: float | None = Field(None, gt=0.0, le=5.0)


class HPPC(ProtocolBase):
    """Hybrid pulse power characterisation from the starting SOC down in ``soc_step`` steps:
    at each level a discharge pulse, a rest, a charge pulse, a rest, then a CC discharge of
    ``soc_step`` and a long relaxation (where hysteresis and diffusion show)."""

    kind: Literal["hppc"] = "hppc"
    soc_step: float = Field(0.1, gt=0.01, le=0.5)
    levels: int = Field(9, ge=1, le=50)
    pulse_c_rate: float = Field(2.0, gt=0.0, le=10.0)
    pulse_s: float = Field(10.0, gt=0.0, le=600.0)
    charge_pulse_c_rate: float = Field(1.5, ge=0.0, le=10.0)
    charge_pulse_s: float = Field(10.0, gt=0.0, le=600.0)
    pulse_rest_s: float = Field(40.0, ge=0.0)
    step_c_rate: float = Field(1.0, gt=0.0, le=5.0)
    relax_s: float = Field(1800.0, ge=0.0)


class Dynamic(ProtocolBase):
    """Drive-cycle-like current: a stochastic speed trace (seeded) or a user's speed CSV
    through a vehicle model, or a user's current CSV; scaled so the peak discharge current is
    ``peak_c_rate``. The seed makes the profile reproducible."""

    kind: Literal["dynamic"] = "dynamic"
    duration_s: float = Field(1800.0, gt=0.0, le=7 * 86400.0)
    style: Literal["urban", "highway", "mixed"] = "urban"
    peak_c_rate: float = Field(3.0, gt=0.0, le=10.0)
    seed: int = Field(0, ge=0)
    speed_csv: Path | None = None
    current_csv: Path | None = None
    # False for a replay of a measured current: the measured cell followed it wherever its
    # voltage went, so the simulated one does too (a plant whose limits differ from the
    # measured cell's would otherwise stop early, e.g. at an HPPC test's opening top-up charge)
    voltage_cutoffs: bool = True

    @model_serializer(mode="wrap")
    def _without_default_cutoffs(self, handler):
        # the field came later: a protocol that keeps its cut-offs dumps (and fingerprints) as before
        data = handler(self)
        if self.voltage_cutoffs and isinstance(data, dict):
            data.pop("voltage_cutoffs", None)
        return data

    @model_validator(mode="after")
    def _one_source(self) -> "Dynamic":
        if self.speed_csv is not None and self.current_csv is not None:
            raise ValueError("give speed_csv or current_csv, not both")
        return self

    def current_c_rate(self) -> tuple[np.ndarray, np.ndarray]:
        """(time [s], current as C-rate) on the fast output grid, starting at t = 0."""
        if self.current_csv is not None:
            time, current = read_current_csv(self.current_csv)
            return time - time[0], current / np.max(np.abs(current)) * self.peak_c_rate
        if self.speed_csv is not None:
            time, speed = read_speed_csv(self.speed_csv)
            current = drive_cycles.speed_to_cell_current(time, speed, drive_cycles.Vehicle())
        else:
            time, current = drive_cycles.dynamic_current_profile(
                self.duration_s, self.fast_period_s, self.seed, style=self.style)
        return time - time[0], current / np.max(current) * self.peak_c_rate


class AgeingCampaign(ProtocolBase):
    """``cycles`` cycles of ``cycling`` at the coarse period, with diagnostics (at the fast
    period) before the first cycle, every ``diagnostic_every`` cycles, and after the last."""

    kind: Literal["ageing_campaign"] = "ageing_campaign"
    cycles: int = Field(50, ge=1, le=10000)
    cycling: Cycling = Cycling(period_s=120.0)
    diagnostic_every: int = Field(10, ge=1)
    diagnostics: tuple[Literal["capacity", "hppc", "dynamic"], ...] = ("capacity", "hppc")
    capacity_c_rate: float = Field(0.5, gt=0.0, le=5.0)
    hppc: HPPC = HPPC(levels=3, soc_step=0.2, relax_s=1200.0)
    dynamic: Dynamic = Dynamic(duration_s=600.0)


Protocol = Annotated[Union[Rest, ConstantCurrent, Sequence, Cycling, HPPC, Dynamic, AgeingCampaign, FastCharge],
                     Field(discriminator="kind")]


@dataclass(frozen=True, eq=False)
class CurrentTrace:
    """A given current [A] vs time [s] (a measured or sensor-reported current), held through
    each sample interval (see :func:`zero_order_hold`) and solved on the interpolant path with
    outputs at exactly these times. ``discharge_Ah`` is the matching charge counter, if known.
    Not a YAML protocol: it carries arrays. ``boundaries`` optionally names cycles as
    (tag, start [s], end [s]) so the per-cycle summary matches the source trajectory."""

    time_s: np.ndarray
    current_A: np.ndarray
    discharge_Ah: np.ndarray | None = None
    boundaries: tuple[tuple[str, float, float], ...] = ()
    kind: str = "trace"
    ripple: None = None

    def describe(self) -> dict:
        """What the trace is, for metadata and cache keys (a digest, not the arrays)."""
        arrays = [self.time_s, self.current_A] + ([self.discharge_Ah] if self.discharge_Ah is not None else [])
        digest = hashlib.sha1(b"".join(np.ascontiguousarray(a, dtype=float).tobytes() for a in arrays)).hexdigest()
        return {"kind": self.kind, "samples": int(len(self.time_s)),
                "duration_s": float(self.time_s[-1] - self.time_s[0]), "sha1": digest}


def zero_order_hold(time_s: np.ndarray, current: np.ndarray,
                    discharge_Ah: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Knots of a linear interpolant that holds one current through each sample interval.

    The held value is the interval's mean current from the charge counter when one is given
    (cyclers log it; it keeps the charge exact even where the current changed inside a
    coarse interval, as at the start of a CV hold), else the sample at the interval's start.
    """
    time_s, current = np.asarray(time_s, dtype=float), np.asarray(current, dtype=float)
    if discharge_Ah is not None:
        held = np.diff(np.asarray(discharge_Ah, dtype=float)) * 3600.0 / np.diff(time_s)
    else:
        held = current[:-1]
    # each interval [t_k, t_k+1) holds held[k]; the jump to held[k+1] takes a tiny ramp at t_k+1
    ramp = 1e-6 * np.minimum(1.0, np.diff(time_s))
    knots_t = np.column_stack([time_s[:-1], time_s[1:] - ramp]).reshape(-1)
    knots_i = np.repeat(held, 2)
    return np.append(knots_t, time_s[-1]), np.append(knots_i, held[-1])


@dataclass(frozen=True)
class VoltageWindow:
    """The cell's operating window [V]."""

    lower: float
    upper: float


@dataclass
class CompiledProtocol:
    """A protocol ready for PyBaMM: experiment blocks (each with a tag) or a current trace."""

    blocks: list[tuple[str, list[pybamm.step.BaseStep]]] = field(default_factory=list)
    trace: tuple[np.ndarray, np.ndarray] | None = None  # (time [s], current in trace_unit)
    trace_unit: Literal["C", "A"] = "C"
    trace_tag: str = "dynamic"

    def experiment(self) -> pybamm.Experiment:
        return pybamm.Experiment([tuple(steps) for _, steps in self.blocks])

    @property
    def tags(self) -> list[str]:
        return [tag for tag, _ in self.blocks]


def compile_protocol(protocol: Protocol | CurrentTrace, window: VoltageWindow) -> CompiledProtocol:
    """Blocks of PyBaMM steps (or a current trace) for ``protocol`` in voltage ``window``."""
    if isinstance(protocol, CurrentTrace):
        return CompiledProtocol(trace=zero_order_hold(protocol.time_s, protocol.current_A, protocol.discharge_Ah),
                                trace_unit="A", trace_tag="trace")
    if isinstance(protocol, Dynamic):
        return CompiledProtocol(trace=protocol.current_c_rate())
    return CompiledProtocol(blocks=_blocks(protocol, window))


def _blocks(protocol: Protocol, window: VoltageWindow) -> list[tuple[str, list]]:
    if isinstance(protocol, Rest):
        return [("rest", [_rest(protocol.duration_s, protocol.period_s)])]
    if isinstance(protocol, ConstantCurrent):
        return [("cc", [_cc(protocol.c_rate, protocol.period_s, protocol.until_voltage_V,
                            protocol.duration_s)])]
    if isinstance(protocol, ConstantVoltage):
        termination = f"C/{1 / protocol.until_c_rate:g}" if protocol.until_c_rate is not None else None
        return [("cv", [pybamm.step.voltage(protocol.voltage_V, duration=protocol.duration_s or CV_MAX_DURATION_S,
                                            termination=termination, period=protocol.period_s)])]
    if isinstance(protocol, FastCharge):
        return [("fast_charge", _blocks(protocol.to_sequence(), window)[0][1])]
    if isinstance(protocol, Sequence):
        return [("sequence", [step for part in protocol.steps for step in _blocks(part, window)[0][1]])]
    if isinstance(protocol, Cycling):
        return [("cycle", _cycle_steps(protocol, window))] * protocol.cycles
    if isinstance(protocol, HPPC):
        return [("hppc", _hppc_steps(protocol, window))]
    if isinstance(protocol, AgeingCampaign):
        return _campaign_blocks(protocol, window)
    raise TypeError(f"no compiler for protocol kind {protocol.kind!r}")


def _rest(duration_s: float, period_s: float) -> pybamm.step.BaseStep:
    return pybamm.step.rest(duration=duration_s, period=period_s)


def _cc(c_rate: float, period_s: float, until_voltage_V: float | None = None,
        duration_s: float | None = None) -> pybamm.step.BaseStep:
    duration = duration_s or CC_DURATION_MARGIN * 3600.0 / abs(c_rate)
    termination = f"{until_voltage_V} V" if until_voltage_V is not None else None
    return pybamm.step.c_rate(c_rate, duration=duration, termination=termination, period=period_s)


def _cycle_steps(cycling: Cycling, window: VoltageWindow) -> list:
    lower = cycling.lower_voltage_V or window.lower
    upper = cycling.upper_voltage_V or window.upper
    discharge = [_cc(cycling.discharge_c_rate, cycling.period_s, lower)]
    charge = [_cc(-cycling.charge_c_rate, cycling.period_s, upper)]
    if cycling.cv_cutoff_c_rate is not None:
        charge.append(pybamm.step.voltage(upper, duration=CV_MAX_DURATION_S,
                                          termination=f"C/{1 / cycling.cv_cutoff_c_rate:g}",
                                          period=cycling.period_s))
    rest = [_rest(cycling.rest_s, cycling.period_s)] if cycling.rest_s > 0 else []
    halves = (discharge + rest, charge + rest)
    return halves[0] + halves[1] if cycling.start == "discharge" else halves[1] + halves[0]


def _hppc_steps(hppc: HPPC, window: VoltageWindow) -> list:
    fast = hppc.fast_period_s
    level = [_cc(hppc.pulse_c_rate, fast, window.lower, hppc.pulse_s)]
    if hppc.pulse_rest_s > 0:
        level.append(_rest(hppc.pulse_rest_s, fast))
    if hppc.charge_pulse_c_rate > 0:
        level.append(_cc(-hppc.charge_pulse_c_rate, fast, window.upper, hppc.charge_pulse_s))
        if hppc.pulse_rest_s > 0:
            level.append(_rest(hppc.pulse_rest_s, fast))
    level.append(_cc(hppc.step_c_rate, hppc.period_s, window.lower,
                     hppc.soc_step * 3600.0 / hppc.step_c_rate))
    if hppc.relax_s > 0:
        level.append(_rest(hppc.relax_s, hppc.period_s))
    return level * hppc.levels


def _full_charge(cycling: Cycling, window: VoltageWindow) -> list:
    charge = _with_start(cycling, "charge")
    return _cycle_steps(charge, window)[: 2 if cycling.cv_cutoff_c_rate is not None else 1]


def _with_start(cycling: Cycling, start: Literal["discharge", "charge"]) -> Cycling:
    return cycling.model_copy(update={"start": start})


def _diagnostic_blocks(campaign: AgeingCampaign, window: VoltageWindow) -> list[tuple[str, list]]:
    """Diagnostics run from full charge; each is followed by a recharge so cycling resumes full."""
    recharge = _full_charge(campaign.cycling, window) + [_rest(600.0, campaign.cycling.period_s)]
    blocks = []
    for name in campaign.diagnostics:
        if name == "capacity":
            steps = [_cc(campaign.capacity_c_rate, campaign.cycling.period_s, window.lower),
                     _rest(1800.0, campaign.cycling.period_s)]
        elif name == "hppc":
            steps = _hppc_steps(campaign.hppc, window)
        else:
            # start below full so the profile's regenerative pulses have headroom
            time, c_rate = campaign.dynamic.current_c_rate()
            steps = [_cc(1.0, campaign.cycling.period_s, window.lower, 0.1 * 3600.0),
                     pybamm.step.c_rate(np.column_stack([time, c_rate]),
                                        period=campaign.dynamic.fast_period_s)]
        blocks.append((name, steps + recharge))
    return blocks


def _campaign_blocks(campaign: AgeingCampaign, window: VoltageWindow) -> list[tuple[str, list]]:
    cycle = ("cycle", _cycle_steps(_with_start(campaign.cycling, "discharge"), window))
    diagnostics = _diagnostic_blocks(campaign, window)
    blocks = list(diagnostics)
    for index in range(1, campaign.cycles + 1):
        blocks.append(cycle)
        if index % campaign.diagnostic_every == 0 or index == campaign.cycles:
            blocks.extend(diagnostics)
    return blocks
