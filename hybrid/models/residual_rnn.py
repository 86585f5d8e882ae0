"""The residual models and their config dataclasses.

Four models, each a plain ``torch.nn.Module`` built from a frozen config by
:func:`build_model`:

- :class:`ResidualRNN` (:class:`ResidualRNNConfig`): vanilla RNN / GRU / LSTM plus a linear
  head. Unidirectional for online use; bidirectional is offline smoothing only.
- :class:`TwoBranchResidual` (:class:`TwoBranchConfig`): physics-informed residual with a
  stable reversible branch (relaxes to equilibrium at zero current) and a monotone
  irreversible accumulator (ageing never heals).
- :class:`Seq2SeqForecaster` (:class:`ForecasterConfig`): encoder-decoder that forecasts the
  next ``horizon`` steps from a context window and the planned (known) future inputs.
- Black-box baseline (:class:`BlackBoxConfig`): the same :class:`ResidualRNN`, fed no physics
  features and trained to predict the voltage itself rather than the residual. The data
  pipeline chooses those features and targets; the config kind only records in checkpoints
  that the model is the baseline.

Common interface of the sequence models (not the forecaster):
``forward(x, state=None) -> (output, state)`` with ``x`` shaped (batch, time, input_size) and
``output`` shaped (batch, time, output_size). ``state`` is a Tensor or a tuple of Tensors that
continues the sequence in the next chunk (truncated BPTT); :func:`detach_state` cuts its
graph. Every model has ``causal`` (output at t depends on inputs up to t only);
:func:`require_causal` guards online uses against offline models.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, NamedTuple, NoReturn, TypeAlias

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from sim.errors import ConfigError

State: TypeAlias = Tensor | tuple["State", ...] | None

CELLS: dict[str, type[nn.RNNBase]] = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}


# --- config validation --------------------------------------------------------------------


def _fail(config: object, field: str, expected: str) -> NoReturn:
    value = getattr(config, field)
    raise ConfigError(f"{type(config).__name__}: field '{field}' = {value!r}: expected {expected}")


def _require_int(config: object, field: str, minimum: int) -> None:
    value = getattr(config, field)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        _fail(config, field, f"an integer >= {minimum}")


def _require_number(
    config: object,
    field: str,
    low: float,
    high: float,
    *,
    include_low: bool = True,
    include_high: bool = False,
) -> None:
    value = getattr(config, field)
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    above = is_number and (value >= low if include_low else value > low)
    below = is_number and (value <= high if include_high else value < high)
    if not (above and below):
        _fail(
            config,
            field,
            f"a number in {'[' if include_low else '('}{low}, {high}{']' if include_high else ')'}",
        )


def _require_bool(config: object, field: str) -> None:
    if not isinstance(getattr(config, field), bool):
        _fail(config, field, "true or false")


def _require_cell(config: ResidualRNNConfig | ForecasterConfig) -> None:
    if config.cell not in CELLS:
        _fail(config, "cell", "one of " + ", ".join(repr(name) for name in CELLS))


# --- configs ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ResidualRNNConfig:
    """Recurrent residual model: RNN/GRU/LSTM over the features, linear head per step.

    ``dropout`` acts between stacked layers and on the features entering the head.
    ``bidirectional`` makes an offline smoother (not causal; state cannot be carried).
    """

    kind: ClassVar[str] = "residual_rnn"
    input_size: int
    output_size: int = 1
    cell: Literal["rnn", "gru", "lstm"] = "gru"
    hidden_size: int = 64
    layers: int = 2
    dropout: float = 0.0
    bidirectional: bool = False

    def __post_init__(self) -> None:
        for field in ("input_size", "output_size", "hidden_size", "layers"):
            _require_int(self, field, 1)
        _require_cell(self)
        _require_number(self, "dropout", 0.0, 1.0)
        _require_bool(self, "bidirectional")


@dataclass(frozen=True)
class BlackBoxConfig(ResidualRNNConfig):
    """The black-box baseline: a :class:`ResidualRNN` that predicts voltage without physics."""

    kind: ClassVar[str] = "black_box"


@dataclass(frozen=True)
class TwoBranchConfig:
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
    input_size: int
    output_size: int = 1
    hidden_size: int = 32
    reversible_states: int = 8
    irreversible_states: int = 2
    current_index: int = 0
    fastest_time_constant: float = 1.0
    slowest_time_constant: float = 1000.0
    time_constant_limit: float = 10000.0
    increment_scale: float = 1e-3
    feedforward: bool = True

    def __post_init__(self) -> None:
        for field in ("input_size", "output_size", "hidden_size", "reversible_states", "irreversible_states"):
            _require_int(self, field, 1)
        _require_int(self, "current_index", 0)
        if self.current_index >= self.input_size:
            _fail(self, "current_index", f"an index below input_size ({self.input_size})")
        # float32 must tell exp(-1 / limit) from 1 and hold expm1(1 / fastest): hence the bounds
        _require_number(self, "time_constant_limit", 1.0, 1e6, include_high=True)
        _require_number(self, "fastest_time_constant", 0.1, self.time_constant_limit)
        _require_number(self, "slowest_time_constant", self.fastest_time_constant, self.time_constant_limit)
        _require_number(self, "increment_scale", 0.0, math.inf, include_low=False)
        _require_bool(self, "feedforward")


@dataclass(frozen=True)
class ForecasterConfig:
    """Encoder-decoder forecaster of the next ``horizon`` steps.

    ``causal_mask=False`` deliberately lets every decoder step see the whole true future
    target sequence (a leakage experiment); it is never causal.
    """

    kind: ClassVar[str] = "forecaster"
    input_size: int
    output_size: int = 1
    hidden_size: int = 64
    layers: int = 1
    cell: Literal["rnn", "gru", "lstm"] = "gru"
    horizon: int = 60
    causal_mask: bool = True

    def __post_init__(self) -> None:
        for field in ("input_size", "output_size", "hidden_size", "layers", "horizon"):
            _require_int(self, field, 1)
        _require_cell(self)
        _require_bool(self, "causal_mask")


ModelConfig: TypeAlias = ResidualRNNConfig | TwoBranchConfig | ForecasterConfig | BlackBoxConfig


# --- models -------------------------------------------------------------------------------


def _check_sequence(name: str, tensor: Tensor, features: int) -> None:
    if tensor.dim() != 3 or tensor.shape[-1] != features:
        raise ValueError(f"{name}: expected shape (batch, time, {features}), got {tuple(tensor.shape)}")


def _recurrent(
    cell: str,
    input_size: int,
    hidden_size: int,
    layers: int,
    dropout: float = 0.0,
    bidirectional: bool = False,
) -> nn.RNNBase:
    # torch warns about dropout on a single layer, where it has nothing to act between
    return CELLS[cell](
        input_size,
        hidden_size,
        num_layers=layers,
        batch_first=True,
        dropout=dropout if layers > 1 else 0.0,
        bidirectional=bidirectional,
    )


class ResidualRNN(nn.Module):
    """RNN/GRU/LSTM over (batch, time, input_size) features, linear head to output_size."""

    def __init__(self, config: ResidualRNNConfig) -> None:
        super().__init__()
        self.config = config
        self.causal = not config.bidirectional
        self.rnn = _recurrent(
            config.cell,
            config.input_size,
            config.hidden_size,
            config.layers,
            config.dropout,
            config.bidirectional,
        )
        self.dropout = nn.Dropout(config.dropout)
        directions = 2 if config.bidirectional else 1
        self.head = nn.Linear(directions * config.hidden_size, config.output_size)

    def forward(self, x: Tensor, state: State = None) -> tuple[Tensor, State]:
        """Outputs (batch, time, output_size) and the state that continues the sequence.

        A bidirectional model refuses a carried state and returns None: its backward pass
        would need inputs from the next chunk.
        """
        _check_sequence("x", x, self.config.input_size)
        if self.config.bidirectional and state is not None:
            raise ConfigError(
                "ResidualRNNConfig: field 'bidirectional' = True: a bidirectional model cannot carry "
                "state across chunks; pass state=None or use a unidirectional model"
            )
        features, state = self.rnn(x, state)  # (batch, time, directions * hidden)
        output = self.head(self.dropout(features))  # (batch, time, output_size)
        return output, (None if self.config.bidirectional else state)


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
        self.drive = _mlp(config.input_size, config.hidden_size, config.reversible_states)
        self.reversible_readout = nn.Linear(config.reversible_states, config.output_size, bias=False)
        self.increment = _mlp(config.input_size, config.hidden_size, config.irreversible_states)
        self.irreversible_readout = nn.Linear(config.irreversible_states, config.output_size, bias=False)
        self.feedforward = (
            _mlp(config.input_size, config.hidden_size, config.output_size) if config.feedforward else None
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
        _check_sequence("x", x, self.config.input_size)
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


class Seq2SeqForecaster(nn.Module):
    """Encode a context window, decode ``horizon`` steps given the planned future inputs.

    Decoder step k sees the future inputs up to k and the targets before k: the true ones
    under teacher forcing, its own predictions otherwise (the causal mask is that one-step
    shift plus a unidirectional decoder). With ``causal_mask=False`` every step also sees a
    bidirectional summary of the whole true future target sequence when ``future_y`` is
    given, and zeros when it is not (as at deployment): the leakage experiment.
    """

    def __init__(self, config: ForecasterConfig) -> None:
        super().__init__()
        self.config = config
        self.causal = config.causal_mask
        step_size = config.input_size + config.output_size
        self.encoder = _recurrent(config.cell, step_size, config.hidden_size, config.layers)
        leak_size = 0 if config.causal_mask else 2 * config.hidden_size
        self.decoder = _recurrent(config.cell, step_size + leak_size, config.hidden_size, config.layers)
        self.head = nn.Linear(config.hidden_size, config.output_size)
        self.future_target_encoder = (
            None
            if config.causal_mask
            else nn.GRU(config.output_size, config.hidden_size, batch_first=True, bidirectional=True)
        )

    def forward(
        self,
        context_x: Tensor,
        context_y: Tensor,
        future_x: Tensor,
        future_y: Tensor | None = None,
        teacher_forcing: bool = True,
    ) -> Tensor:
        """Predictions (batch, horizon, output_size).

        context_x (batch, context, input_size), context_y (batch, context, output_size),
        future_x (batch, horizon, input_size), future_y (batch, horizon, output_size) or None.
        """
        self._check_shapes(context_x, context_y, future_x, future_y)
        _, state = self.encoder(torch.cat([context_x, context_y], dim=-1))
        leak = self._future_target_summary(future_x, future_y)  # (batch, horizon, 2 * hidden) or None
        last_y = context_y[:, -1:]  # (batch, 1, output_size)
        if teacher_forcing and future_y is not None:
            previous_y = torch.cat([last_y, future_y[:, :-1]], dim=1)  # (batch, horizon, output_size)
            decoded, _ = self.decoder(self._decoder_input(future_x, previous_y, leak), state)
            return self.head(decoded)
        predictions = []
        for k in range(self.config.horizon):
            step_leak = None if leak is None else leak[:, k : k + 1]
            decoded, state = self.decoder(
                self._decoder_input(future_x[:, k : k + 1], last_y, step_leak), state
            )
            last_y = self.head(decoded)  # (batch, 1, output_size)
            predictions.append(last_y)
        return torch.cat(predictions, dim=1)

    def _future_target_summary(self, future_x: Tensor, future_y: Tensor | None) -> Tensor | None:
        if self.future_target_encoder is None:
            return None
        if future_y is None:
            future_y = future_x.new_zeros(future_x.shape[0], self.config.horizon, self.config.output_size)
        summary, _ = self.future_target_encoder(future_y)  # (batch, horizon, 2 * hidden)
        return summary

    @staticmethod
    def _decoder_input(future_x: Tensor, previous_y: Tensor, leak: Tensor | None) -> Tensor:
        parts = [future_x, previous_y] if leak is None else [future_x, previous_y, leak]
        return torch.cat(parts, dim=-1)

    def _check_shapes(
        self, context_x: Tensor, context_y: Tensor, future_x: Tensor, future_y: Tensor | None
    ) -> None:
        config = self.config
        _check_sequence("context_x", context_x, config.input_size)
        batch, context = context_x.shape[:2]
        expected = {
            "context_y": (context_y, (batch, context, config.output_size)),
            "future_x": (future_x, (batch, config.horizon, config.input_size)),
            "future_y": (future_y, (batch, config.horizon, config.output_size)),
        }
        for name, (tensor, shape) in expected.items():
            if tensor is not None and tuple(tensor.shape) != shape:
                raise ValueError(f"{name}: expected shape {shape}, got {tuple(tensor.shape)}")
        if context == 0:
            raise ValueError("context_x: the context window is empty; give at least one step")


# --- construction, checkpoints and guards -------------------------------------------------

_MODELS: dict[str, tuple[type, type[nn.Module]]] = {
    config_type.kind: (config_type, model_type)
    for config_type, model_type in (
        (ResidualRNNConfig, ResidualRNN),
        (BlackBoxConfig, ResidualRNN),
        (TwoBranchConfig, TwoBranchResidual),
        (ForecasterConfig, Seq2SeqForecaster),
    )
}


def build_model(config: ModelConfig) -> nn.Module:
    """The model described by ``config`` (the config's type decides which model)."""
    entry = _MODELS.get(getattr(config, "kind", None))
    if entry is None or type(config) is not entry[0]:
        allowed = ", ".join(config_type.__name__ for config_type, _ in _MODELS.values())
        raise ConfigError(f"model config: got {type(config).__name__}, expected one of {allowed}")
    return entry[1](config)


def config_to_dict(config: ModelConfig) -> dict[str, Any]:
    """Plain JSON-able dict of ``config`` with its ``kind`` (for checkpoints)."""
    return {"kind": config.kind, **dataclasses.asdict(config)}


def config_from_dict(data: dict[str, Any]) -> ModelConfig:
    """Inverse of :func:`config_to_dict`; raises ConfigError on an unknown kind or key."""
    kind = data.get("kind")
    if kind not in _MODELS:
        raise ConfigError(
            f"model config: field 'kind' = {kind!r}: expected one of {', '.join(map(repr, _MODELS))}"
        )
    config_type = _MODELS[kind][0]
    fields = {field.name for field in dataclasses.fields(config_type)}
    values = {key: value for key, value in data.items() if key != "kind"}
    unknown = sorted(set(values) - fields)
    if unknown:
        raise ConfigError(
            f"{config_type.__name__}: unknown key '{unknown[0]}'; allowed keys: {', '.join(sorted(fields))}"
        )
    missing = sorted(
        field.name
        for field in dataclasses.fields(config_type)
        if field.name not in values and field.default is dataclasses.MISSING
    )
    if missing:
        raise ConfigError(f"{config_type.__name__}: field '{missing[0]}' is required")
    return config_type(**values)


def detach_state(state: State) -> State:
    """``state`` with every tensor detached from the graph (tuples recursively, None as is)."""
    if state is None:
        return None
    if isinstance(state, Tensor):
        return state.detach()
    return tuple(detach_state(part) for part in state)


def require_causal(model: nn.Module, purpose: str) -> None:
    """Raise ConfigError if ``model`` sees future inputs, which ``purpose`` cannot allow."""
    if not getattr(model, "causal", False):
        name = type(getattr(model, "config", model)).__name__
        raise ConfigError(
            f"{purpose} needs a causal model (output at t from inputs up to t), got a non-causal "
            f"{type(model).__name__} ({name}); use bidirectional=False / causal_mask=True"
        )
