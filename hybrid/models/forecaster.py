"""The encoder-decoder forecaster and its config.

Two ways to call it:

- :meth:`Seq2SeqForecaster.forecast`: one row window (``context`` rows, then ``horizon``
  rows), all sequences of the same length (experiments/causality.py);
- ``forward(x, state) -> (y, state)``, the interface of the sequence models, over time windows
  of variable length (a training run, ``hybat train``): the state starts from
  :meth:`Seq2SeqForecaster.context_state` (the measured history before the origin) and ``x`` is
  the horizon (see :mod:`hybrid.data.windows`). In training mode the decoder is teacher forced
  with the measured targets in ``x`` (unless ``teacher_forcing`` is off); in eval mode it feeds
  back its own predictions and never reads them, as at deployment, so the validation loss of
  :func:`hybrid.train.loop.fit` is free-running.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import torch
from pydantic import Field, SerializerFunctionWrapHandler, model_serializer
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence

from hybrid.models.base import (
    ModelConfigBase,
    State,
    check_sequence,
    recurrent_layer,
    require_input_size,
)
from sim.errors import ConfigError

# time-window fields at their defaults are left out of the dict (see _without_default_windows)
_TIME_WINDOW_DEFAULTS = {"context_s": None, "horizon_s": None, "stride_s": None, "teacher_forcing": True}


class ForecasterConfig(ModelConfigBase):
    """Encoder-decoder forecaster of the next steps given the planned inputs.

    - ``horizon``: decoder steps of a row window (:meth:`Seq2SeqForecaster.forecast`); a
      time window decodes however many rows it holds and does not read it.
    - ``context_s``, ``horizon_s``, ``stride_s``: the time windows of a training run: the
      history [t - context_s, t) and the horizon [t, t + horizon_s) in seconds, origins t every
      ``stride_s`` (null: ``horizon_s``, each row forecast once); see :mod:`hybrid.data.windows`.
    - ``teacher_forcing``: how a time-windowed forecaster trains: fed the measured targets
      (parallel over the horizon, but on a fine grid it learns to lean on the last true value)
      or its own predictions, as deployed (a step at a time, slower).
    - ``causal_mask=False`` deliberately lets every decoder step see the whole true future
      target sequence (a leakage experiment of ``forecast``); it is never causal.
    """

    kind: ClassVar[str] = "forecaster"
    hidden_size: int = Field(64, ge=1)
    layers: int = Field(1, ge=1)
    cell: Literal["rnn", "gru", "lstm"] = "gru"
    horizon: int = Field(60, ge=1)
    causal_mask: bool = True
    context_s: float | None = Field(None, gt=0.0)
    horizon_s: float | None = Field(None, gt=0.0)
    stride_s: float | None = Field(None, gt=0.0)
    teacher_forcing: bool = True

    @model_serializer(mode="wrap")
    def _without_default_windows(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # a row-window config writes back exactly the dict that checkpoints held before time windows
        data = handler(self)
        return {key: value for key, value in data.items()
                if key not in _TIME_WINDOW_DEFAULTS or value != _TIME_WINDOW_DEFAULTS[key]}


class Seq2SeqForecaster(nn.Module):
    """Encode a context window, decode the horizon given the planned future inputs.

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
        step_size = require_input_size(config) + config.output_size
        self.encoder = recurrent_layer(config.cell, step_size, config.hidden_size, config.layers)
        leak_size = 0 if config.causal_mask else 2 * config.hidden_size
        self.decoder = recurrent_layer(config.cell, step_size + leak_size, config.hidden_size, config.layers)
        self.head = nn.Linear(config.hidden_size, config.output_size)
        self.future_target_encoder = (
            None
            if config.causal_mask
            else nn.GRU(config.output_size, config.hidden_size, batch_first=True, bidirectional=True)
        )

    def forecast(
        self,
        context_x: Tensor,
        context_y: Tensor,
        future_x: Tensor,
        future_y: Tensor | None = None,
        teacher_forcing: bool = True,
    ) -> Tensor:
        """Predictions (batch, horizon, output_size) of one row window.

        context_x (batch, context, input_size), context_y (batch, context, output_size),
        future_x (batch, horizon, input_size), future_y (batch, horizon, output_size) or None.
        """
        self._check_shapes(context_x, context_y, future_x, future_y)
        state, last_y = self._encode(torch.cat([context_x, context_y], dim=-1), None)
        leak = self._future_target_summary(future_x, future_y)  # (batch, horizon, 2 * hidden) or None
        if teacher_forcing and future_y is not None:
            previous_y = torch.cat([last_y, future_y[:, :-1]], dim=1)  # (batch, horizon, output_size)
            return self._teacher_forced(future_x, previous_y, state, leak)[0]
        return self._free_running(future_x, last_y, state, leak)[0]

    def context_state(self, context: Tensor, mask: Tensor) -> State:
        """The state a time-windowed forecast starts from: ``context`` (batch, rows, input_size
        + output_size), the inputs and measured targets of the history rows, and ``mask``
        (batch, rows), True on those rows and False on the padding after them."""
        return (context, mask, None, None)

    def forward(self, x: Tensor, state: State = None) -> tuple[Tensor, State]:
        """Forecasts (batch, rows, output_size) over a time window's horizon, and the state that
        continues it.

        x (batch, rows, input_size + output_size): the planned inputs of each horizon row and
        the measured target of the row before it, read in training mode with ``teacher_forcing`` only.
        state: :meth:`context_state`, or the state a previous call returned.
        """
        if not self.causal:
            raise ConfigError("ForecasterConfig: field 'causal_mask' = False: the leaky forecaster only runs "
                              "through forecast(); allowed: causal_mask: true for time windows")
        if state is None:
            raise ConfigError("Seq2SeqForecaster: state = None: a forecaster is not an open-loop model, it needs "
                              "the measured history; allowed: state = context_state(context, mask)")
        input_size = require_input_size(self.config)
        check_sequence("x", x, input_size + self.config.output_size)
        context, mask, decoder_state, last_y = state
        if decoder_state is None:
            decoder_state, last_y = self._encode(context, mask.sum(dim=1))
        future_x, previous_y = x.split([input_size, self.config.output_size], dim=-1)
        if self.training and self.config.teacher_forcing:
            predictions, decoder_state = self._teacher_forced(future_x, previous_y, decoder_state, None)
        else:
            predictions, decoder_state = self._free_running(future_x, last_y, decoder_state, None)
        return predictions, (context, mask, decoder_state, predictions[:, -1:])

    def _encode(self, context: Tensor, lengths: Tensor | None) -> tuple[State, Tensor]:
        """Encoder state after each sequence's last context row, and the target there
        (batch, 1, output_size). ``lengths`` (batch,): rows of each context (None: all)."""
        if lengths is None:
            _, state = self.encoder(context)
            return state, context[:, -1:, -self.config.output_size:]
        if bool((lengths == 0).any()):
            raise ValueError("context: a window has no history rows; give at least one")
        # packed: the state stops at each sequence's own last row, not at the padding
        packed = pack_padded_sequence(context, lengths.cpu(), batch_first=True, enforce_sorted=False)
        _, state = self.encoder(packed)
        last = context[torch.arange(context.shape[0], device=context.device), lengths - 1,
                       -self.config.output_size:]
        return state, last.unsqueeze(1)

    def _teacher_forced(self, future_x: Tensor, previous_y: Tensor, state: State,
                        leak: Tensor | None) -> tuple[Tensor, State]:
        decoded, state = self.decoder(self._decoder_input(future_x, previous_y, leak), state)
        return self.head(decoded), state

    def _free_running(self, future_x: Tensor, last_y: Tensor, state: State,
                      leak: Tensor | None) -> tuple[Tensor, State]:
        predictions = []
        for k in range(future_x.shape[1]):
            step_leak = None if leak is None else leak[:, k : k + 1]
            decoded, state = self.decoder(self._decoder_input(future_x[:, k : k + 1], last_y, step_leak), state)
            last_y = self.head(decoded)  # (batch, 1, output_size)
            predictions.append(last_y)
        return torch.cat(predictions, dim=1), state

    def _future_target_summary(self, future_x: Tensor, future_y: Tensor | None) -> Tensor | None:
        if self.future_target_encoder is None:
            return None
        if future_y is None:
            future_y = future_x.new_zeros(future_x.shape[0], future_x.shape[1], self.config.output_size)
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
        check_sequence("context_x", context_x, config.input_size)
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
