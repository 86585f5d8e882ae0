"""The encoder-decoder forecaster and its config."""

from __future__ import annotations

from typing import ClassVar, Literal

import torch
from pydantic import Field
from torch import Tensor, nn

from hybrid.models.base import (
    ModelConfigBase,
    check_sequence,
    recurrent_layer,
    require_input_size,
)


class ForecasterConfig(ModelConfigBase):
    """Encoder-decoder forecaster of the next ``horizon`` steps.

    ``causal_mask=False`` deliberately lets every decoder step see the whole true future
    target sequence (a leakage experiment); it is never causal.
    """

    kind: ClassVar[str] = "forecaster"
    hidden_size: int = Field(64, ge=1)
    layers: int = Field(1, ge=1)
    cell: Literal["rnn", "gru", "lstm"] = "gru"
    horizon: int = Field(60, ge=1)
    causal_mask: bool = True


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

