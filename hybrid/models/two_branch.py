"""The physics-informed two-branch residual and its config.

A stable reversible branch (relaxes to equilibrium at zero current) plus a monotone
irreversible accumulator (ageing never heals), plus an optional memoryless term.
"""

from __future__ import annotations

import math
from typing import ClassVar, NamedTuple

import torch
from pydantic import Field, ValidationInfo, field_validator
from torch import Tensor, nn
from torch.nn import functional as F

from hybrid.models.base import ModelConfigBase, check_sequence, require_input_size


class TwoBranchConfig(ModelConfigBase):
    """Physics-informed two-branch residual (see :class:`TwoBranchResidual`).

    Time constants are in sampling steps of the (uniform) data grid.

    - ``current_index``: which input feature is the applied current. The caller must make
      zero current map to a zero feature (normalise current by a scale only, no shift);
      the reversible branch's input drive is that feature times a learned gain.
    - ``fastest_time_constant``, ``slowest_time_constant``: the reversible modes start with
      time constants log-spaced over this range.
    - ``time_constant_limit``: no mode can ever be slower than this, whatever the
      parameters; it bounds the spectral radius by exp(-1 / time_constant_limit) < 1.
    - ``irreversible_states``: number of monotone accumulators.
    - ``increment_scale``: largest typical accumulator increment per step (ψ is this times
      a softplus), small so ageing builds up over many cycles.
    - ``feedforward``: add a memoryless term f(x_t) (ohmic effects, OCV mismatch as a
      function of physics state of charge); it need not vanish at zero current.
    """

    kind: ClassVar[str] = "two_branch"
    hidden_size: int = Field(32, ge=1)
    reversible_states: int = Field(8, ge=1)
    irreversible_states: int = Field(2, ge=1)
    current_index: int = Field(0, ge=0)
    # float32 must tell exp(-1 / limit) from 1 and hold expm1(1 / fastest): hence the bounds;
    # the limit comes before the time constants so that their checks can read it
    time_constant_limit: float = Field(10000.0, ge=1.0, le=1e6)
    fastest_time_constant: float = 1.0
    slowest_time_constant: float = 1000.0
    increment_scale: float = Field(1e-3, gt=0.0, allow_inf_nan=False)
    feedforward: bool = True

    @field_validator("current_index")
    @classmethod
    def _index_of_an_input(cls, current_index: int, info: ValidationInfo) -> int:
        input_size = info.data.get("input_size")
        if input_size is not None and current_index >= input_size:
            raise ValueError(f"expected an index below input_size ({input_size})")
        return current_index

    @field_validator("fastest_time_constant", "slowest_time_constant")
    @classmethod
    def _below_the_limit(cls, value: float, info: ValidationInfo) -> float:
        low = info.data.get("fastest_time_constant", 0.1) if info.field_name == "slowest_time_constant" else 0.1
        limit = info.data.get("time_constant_limit", math.inf)
        if not low <= value < limit:
            raise ValueError(f"expected a number in [{low}, {limit})")
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

    Per step t (after the update, so x_t acts on y_t at once):

        z_t = a ⊙ z_{t-1} + i_t · g(x_t)     reversible, a_j = exp(-r_j), r_j >= 1 / limit
        s_t = s_{t-1} + ψ(x_t),  ψ >= 0      irreversible, ψ = increment_scale · softplus(h(x_t))
        y_t = C z_t + W s_t + f(x_t)

    where i_t is the current feature, g, h, f are small MLPs and C, W are linear maps without
    bias (W's sign is free: ageing can push the residual either way).

    Stability: the transition is diagonal with eigenvalues a_j in (0, exp(-1 / limit)], so
    its spectral radius is below 1 for every parameter value. The drive vanishes at zero
    current, so at rest z (and C z) decays to 0 geometrically: the residual relaxes to
    W s + f(x_rest). Monotonicity: s never decreases, since ψ is a softplus times a positive
    constant and the sum is accumulated step by step.

    A reversible effect that persists indefinitely at rest (OCP hysteresis) can only be
    held for about ``time_constant_limit`` steps by the reversible branch.
    """

    def __init__(self, config: TwoBranchConfig) -> None:
        super().__init__()
        self.config = config
        self.causal = True
        self.minimum_rate = 1.0 / config.time_constant_limit
        time_constants = torch.logspace(
            math.log10(config.fastest_time_constant),
            math.log10(config.slowest_time_constant),
            config.reversible_states,
        )
        # inverse softplus, so that rate = minimum_rate + softplus(raw) starts at 1 / time constant
        initial_excess = 1.0 / time_constants - self.minimum_rate
        self.raw_rate = nn.Parameter(torch.log(torch.expm1(initial_excess)))
        input_size = require_input_size(config)
        self.drive = _mlp(input_size, config.hidden_size, config.reversible_states)
        self.reversible_readout = nn.Linear(config.reversible_states, config.output_size, bias=False)
        self.increment = _mlp(input_size, config.hidden_size, config.irreversible_states)
        self.irreversible_readout = nn.Linear(config.irreversible_states, config.output_size, bias=False)
        self.feedforward = (
            _mlp(input_size, config.hidden_size, config.output_size) if config.feedforward else None
        )

    def decay(self) -> Tensor:
        """Eigenvalues of the reversible transition, (reversible_states,), each in (0, 1)."""
        return torch.exp(-(self.minimum_rate + F.softplus(self.raw_rate)))

    def spectral_radius(self) -> float:
        """Largest |eigenvalue| of the reversible transition (diagonal, so the largest decay)."""
        return self.decay().detach().max().item()

    def irreversible_increments(self, x: Tensor) -> Tensor:
        """ψ(x): accumulator increments (batch, time, irreversible_states), all >= 0."""
        return self.config.increment_scale * F.softplus(self.increment(x))

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
        decay = self.decay()  # (reversible_states,)
        current = x[..., self.config.current_index : self.config.current_index + 1]  # (batch, time, 1)
        # (1 - decay) gives every mode unit gain at steady state, so slow modes do not swamp
        # the output on long records; the drive is still 0 wherever the current is 0
        drive = current * self.drive(x) * (1 - decay)  # (batch, time, reversible_states)
        increments = self.irreversible_increments(x)  # (batch, time, irreversible_states)
        reversible_states, irreversible_states = [], []
        for t in range(x.shape[1]):
            reversible_state = decay * reversible_state + drive[:, t]
            irreversible_state = irreversible_state + increments[:, t]
            reversible_states.append(reversible_state)
            irreversible_states.append(irreversible_state)
        z = torch.stack(reversible_states, dim=1)  # (batch, time, reversible_states)
        s = torch.stack(irreversible_states, dim=1)  # (batch, time, irreversible_states)
        reversible = self.reversible_readout(z)  # (batch, time, output_size)
        feedforward = self.feedforward(x) if self.feedforward is not None else torch.zeros_like(reversible)
        return TwoBranchTrace(reversible, self.irreversible_readout(s), feedforward, z, s)

    def forward(
        self, x: Tensor, state: tuple[Tensor, Tensor] | None = None
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """Residual (batch, time, output_size) and the final (z, s) state for the next chunk."""
        trace = self.branches(x, state)
        output = trace.reversible + trace.irreversible + trace.feedforward
        return output, (trace.reversible_states[:, -1], trace.irreversible_states[:, -1])
