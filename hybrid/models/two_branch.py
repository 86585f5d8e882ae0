"""The physics-informed two-branch residual and its config.

A stable reversible branch (relaxes to equilibrium at zero current) plus a monotone
irreversible accumulator (ageing never heals), plus an optional memoryless term. Its
dynamics run in physical time: a record gives the same prediction on any sample grid.
"""

from __future__ import annotations

import math
from typing import ClassVar, NamedTuple

import torch
from pydantic import Field, ValidationInfo, field_validator
from torch import Tensor, nn
from torch.nn import functional as F

from hybrid.models.base import ModelConfigBase, check_sequence, require_input_size

SECONDS_PER_HOUR = 3600.0


class TwoBranchConfig(ModelConfigBase):
    """Physics-informed two-branch residual (see :class:`TwoBranchResidual`).

    - ``current_index``: which input feature is the applied current. The caller must make
      zero current map to a zero feature (normalise current by a scale only, no shift);
      the reversible branch's input drive is that feature times a learned gain.
    - ``time_step_index``: which input feature is the time since the previous sample, normalised
      as (Δt - ``time_step_mean_s``) / ``time_step_std_s``; the model undoes that to get Δt [s]
      and reads it for its dynamics only (the learned maps never see it). None: a uniform grid,
      every step ``time_step_mean_s`` long.
    - ``fastest_time_constant_s``, ``slowest_time_constant_s``: the reversible modes start with
      time constants [s] log-spaced over this range.
    - ``time_constant_limit_s``: no mode can ever be slower than this [s], whatever the
      parameters; over a step Δt the transition contracts by exp(-Δt / limit) < 1 at least.
    - ``irreversible_states``: number of monotone accumulators.
    - ``increment_scale``: typical accumulator increment per hour of operation and per hour
      of charge throughput at the current feature's unit (ψ is this times softplus terms),
      small so ageing builds up over many cycles.
    - ``feedforward``: add a memoryless term f(x_t) (ohmic effects, OCV mismatch as a
      function of physics state of charge); it need not vanish at zero current.
    """

    kind: ClassVar[str] = "two_branch"
    hidden_size: int = Field(32, ge=1)
    reversible_states: int = Field(8, ge=1)
    irreversible_states: int = Field(2, ge=1)
    current_index: int = Field(0, ge=0)
    time_step_index: int | None = Field(None, ge=0)
    time_step_mean_s: float = Field(1.0, gt=0.0, allow_inf_nan=False)
    time_step_std_s: float = Field(1.0, gt=0.0, allow_inf_nan=False)
    # float32 must tell exp(-1 s / limit) from 1 and hold expm1(1 / fastest): hence the bounds;
    # the limit comes before the time constants so that their checks can read it
    time_constant_limit_s: float = Field(1e5, ge=1.0, le=1e6)
    fastest_time_constant_s: float = 1.0
    slowest_time_constant_s: float = 3600.0
    increment_scale: float = Field(1e-2, gt=0.0, allow_inf_nan=False)
    feedforward: bool = True

    @field_validator("current_index", "time_step_index")
    @classmethod
    def _index_of_an_input(cls, index: int | None, info: ValidationInfo) -> int | None:
        input_size = info.data.get("input_size")
        if index is not None and input_size is not None and index >= input_size:
            raise ValueError(f"expected an index below input_size ({input_size})")
        if info.field_name == "time_step_index" and index is not None and index == info.data.get("current_index"):
            raise ValueError("expected another feature than current_index")
        return index

    @field_validator("fastest_time_constant_s", "slowest_time_constant_s")
    @classmethod
    def _below_the_limit(cls, value: float, info: ValidationInfo) -> float:
        slowest = info.field_name == "slowest_time_constant_s"
        low = info.data.get("fastest_time_constant_s", 0.1) if slowest else 0.1
        limit = info.data.get("time_constant_limit_s", math.inf)
        if not low <= value < limit:
            raise ValueError(f"expected a number of seconds in [{low}, {limit})")
        return value


def _mlp(input_size: int, hidden_size: int, output_size: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(input_size, hidden_size), nn.Tanh(), nn.Linear(hidden_size, output_size))


class TwoBranchTrace(NamedTuple):
    """Per-step contributions and states of :class:`TwoBranchResidual`."""

    reversible: Tensor  # (batch, time, output_size), C z_t
    irreversible: Tensor  # (batch, time, output_size), W s_t
    feedforward: Tensor  # (batch, time, output_size), f(x_t) or zeros
    reversible_states: Tensor  # (batch, time, reversible_states), z_t
    irreversible_states: Tensor  # (batch, time, irreversible_states), s_t


class TwoBranchResidual(nn.Module):
    """Physics-informed residual: stable reversible branch + monotone irreversible branch.

    Row k at time t_k carries the current i_k applied over the interval (t_{k-1}, t_k] that
    ends at it, of length Δt_k (0 at a record's first row). The inputs x_k other than Δt are
    held over that interval too (zero-order hold), which makes the reversible update exact:

        z_k = a_k ⊙ z_{k-1} + (1 - a_k) ⊙ i_k g(x_k)     a_k = exp(-Δt_k / τ), τ <= limit [s]
        s_k = s_{k-1} + ψ_k,  ψ_k >= 0                     irreversible accumulator
        ψ_k = increment_scale · Δt_k / 1 h · (softplus(h_time(x_k)) + |i_k| softplus(h_charge(x_k)))
        y_k = C z_k + W s_k + f(x_k)

    where i_k is the current feature, g, h, f are small MLPs that do not read Δt, and C, W are
    linear maps without bias (W's sign is free: ageing can push the residual either way). The
    accumulator grows with time (calendar ageing) and with charge throughput |i| Δt (cycling).
    The (1 - a) factor gives each mode unit gain at steady state, so slow modes do not swamp
    the output on long records. Since only Δt enters the dynamics, resampling a record whose
    inputs are piecewise constant on the coarser grid leaves the outputs at shared times as they
    were (up to how fast the other inputs vary within a step).

    Stability: the transition is diagonal, each rate 1/τ_j >= 1/limit, so over a step Δt its
    spectral radius is at most exp(-Δt / limit) < 1 for every parameter value. The drive
    vanishes at zero current, so at rest z (and C z) decays to 0: the residual relaxes to
    W s + f(x_rest). Monotonicity: s never decreases, since ψ is softplus terms times
    nonnegative factors and the sum is accumulated step by step.

    Δt comes from the normalised time-step feature, clamped at 0. Features are clipped to
    ±FEATURE_CLIP standard deviations (hybrid.data.features.cell_inputs), so a step longer than
    time_step_mean_s + FEATURE_CLIP · time_step_std_s (rare on train, by that construction)
    reaches the model shortened to that bound.

    A reversible effect that persists indefinitely at rest (OCP hysteresis) can only be
    held for about ``time_constant_limit_s`` by the reversible branch.
    """

    def __init__(self, config: TwoBranchConfig) -> None:
        super().__init__()
        self.config = config
        self.causal = True
        self.minimum_rate = 1.0 / config.time_constant_limit_s  # [1/s]
        time_constants = torch.logspace(
            math.log10(config.fastest_time_constant_s),
            math.log10(config.slowest_time_constant_s),
            config.reversible_states,
        )
        # inverse softplus, so that rate = minimum_rate + softplus(raw) starts at 1 / time constant
        initial_excess = 1.0 / time_constants - self.minimum_rate
        self.raw_rate = nn.Parameter(torch.log(torch.expm1(initial_excess)))
        input_size = require_input_size(config)
        # the learned maps read every feature but the time step: reading it would make the
        # outputs depend on the sample grid
        self.learned_features = [k for k in range(input_size) if k != config.time_step_index]
        learned_size = len(self.learned_features)
        self.drive = _mlp(learned_size, config.hidden_size, config.reversible_states)
        self.reversible_readout = nn.Linear(config.reversible_states, config.output_size, bias=False)
        self.increment = _mlp(learned_size, config.hidden_size, 2 * config.irreversible_states)
        self.irreversible_readout = nn.Linear(config.irreversible_states, config.output_size, bias=False)
        self.feedforward = (
            _mlp(learned_size, config.hidden_size, config.output_size) if config.feedforward else None
        )

    def rates(self) -> Tensor:
        """Decay rates of the reversible modes [1/s], (reversible_states,), each >= 1 / limit."""
        return self.minimum_rate + F.softplus(self.raw_rate)

    def spectral_radius(self, time_step_s: float) -> float:
        """Largest |eigenvalue| of the reversible transition over a step of ``time_step_s``."""
        return math.exp(-time_step_s * self.rates().detach().min().item())

    def time_steps(self, x: Tensor) -> Tensor:
        """Δt [s] of every row of x (batch, time, input_size): (batch, time, 1), >= 0."""
        config = self.config
        if config.time_step_index is None:
            return x.new_full((*x.shape[:2], 1), config.time_step_mean_s)
        feature = x[..., config.time_step_index : config.time_step_index + 1]
        return (feature * config.time_step_std_s + config.time_step_mean_s).clamp(min=0.0)

    def _current(self, x: Tensor) -> Tensor:
        return x[..., self.config.current_index : self.config.current_index + 1]  # (batch, time, 1)

    def irreversible_increments(self, x: Tensor) -> Tensor:
        """ψ(x): accumulator increments (batch, time, irreversible_states), all >= 0."""
        hours = self.time_steps(x) / SECONDS_PER_HOUR  # (batch, time, 1)
        per_hour, per_charge = F.softplus(self.increment(x[..., self.learned_features])).chunk(2, dim=-1)
        return self.config.increment_scale * hours * (per_hour + self._current(x).abs() * per_charge)

    def initial_state(self, batch: int, like: Tensor) -> tuple[Tensor, Tensor]:
        """Equilibrium, unaged state: z = 0 (batch, reversible_states), s = 0 (batch, irreversible_states)."""
        zeros = like.new_zeros
        return zeros(batch, self.config.reversible_states), zeros(batch, self.config.irreversible_states)

    def branches(self, x: Tensor, state: tuple[Tensor, Tensor] | None = None) -> TwoBranchTrace:
        """Run both branches over x (batch, time, input_size); return every contribution and state."""
        check_sequence("x", x, self.config.input_size)
        reversible_state, irreversible_state = (
            state if state is not None else self.initial_state(x.shape[0], x)
        )
        learned_inputs = x[..., self.learned_features]  # (batch, time, input_size - 1 with a time step)
        decay_exponent = -self.time_steps(x) * self.rates()  # (batch, time, reversible_states)
        decay = torch.exp(decay_exponent)
        # -expm1 is 1 - decay, accurate for slow modes on short steps
        drive = -torch.expm1(decay_exponent) * self._current(x) * self.drive(learned_inputs)
        increments = self.irreversible_increments(x)  # (batch, time, irreversible_states)
        reversible_states, irreversible_states = [], []
        # unbind once: per-step indexing would cost a full-size gradient buffer per step in backward
        for step_decay, step_drive, step_increment in zip(decay.unbind(1), drive.unbind(1), increments.unbind(1)):
            reversible_state = step_decay * reversible_state + step_drive
            irreversible_state = irreversible_state + step_increment
            reversible_states.append(reversible_state)
            irreversible_states.append(irreversible_state)
        z = torch.stack(reversible_states, dim=1)  # (batch, time, reversible_states)
        s = torch.stack(irreversible_states, dim=1)  # (batch, time, irreversible_states)
        reversible = self.reversible_readout(z)  # (batch, time, output_size)
        feedforward = (
            self.feedforward(learned_inputs) if self.feedforward is not None else torch.zeros_like(reversible)
        )
        return TwoBranchTrace(reversible, self.irreversible_readout(s), feedforward, z, s)

    def forward(
        self, x: Tensor, state: tuple[Tensor, Tensor] | None = None
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """Residual (batch, time, output_size) and the final (z, s) state for the next chunk."""
        trace = self.branches(x, state)
        output = trace.reversible + trace.irreversible + trace.feedforward
        return output, (trace.reversible_states[:, -1], trace.irreversible_states[:, -1])
