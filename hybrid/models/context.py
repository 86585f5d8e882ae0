"""The context-conditioned residual: a residual RNN told which cell it corrects.

An encoder reads a *context window* of measured data of the same cell (its online features
plus the measured voltage residual, and the temperature residual with a temperature head)
and summarises it as a cell descriptor z. The residual RNN is conditioned on z and runs open
loop over the whole record, as :class:`hybrid.models.residual_rnn.ResidualRNN` does. Without
a context (mode ``none``) z is a learned population descriptor, so one model serves cells
that were never measured (design at nominal cells) and measured ones.

The context travels in the model's state: ``state = (context, context_mask, rnn_state)``
(see :meth:`ContextResidual.context_state`), so truncated BPTT, checkpoints and prediction
need no special path; z is recomputed from the context at each call (the encoder is a small
convolution, parallel over time) so that every TBPTT segment's loss trains the encoder.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import torch
from pydantic import Field
from torch import Tensor, nn

from hybrid.models.base import State, check_sequence, recurrent_layer, require_input_size
from hybrid.models.residual_rnn import ResidualRNNConfig
from sim.errors import ConfigError

Conditioning = Literal["concat", "initial_state", "film"]


class ContextResidualConfig(ResidualRNNConfig):
    """Residual RNN conditioned on a cell descriptor from a context window.

    - ``context_size``: features per context row (set from the data: the model inputs plus the
      measured residuals, see :func:`hybrid.data.context.context_features`).
    - ``descriptor_size``: size of z; ``encoder_channels``: width of the convolutional encoder.
    - ``innovation``: the encoder also reads the *innovation*, the measured residual minus what
      the model predicts for the context rows without a context (the population residual), so
      it sees the cell's deviation from its population rather than the whole mismatch.
      ``context_targets`` (set from the data) are the output indices of the measured residual
      columns of the context, in their order.
    - ``conditioning``: how z acts: ``concat`` (z appended to every step's inputs),
      ``initial_state`` (z sets the RNN's initial state) or ``film`` (z scales and shifts the
      RNN's features before the head).
    - ``context_window_s``: the characterisation window, the first this many seconds of a
      record; null = the record's first diagnostic (its first tagged cycle entry, e.g. the first
      HPPC of an ageing campaign). Never more than ``context_max_fraction`` of the record's rows.
    - ``none_probability``: in training, the chance that a record's context is withheld, so
      that the model also learns the population-average residual (mode ``none``).
    """

    kind: ClassVar[str] = "context_residual"
    context_size: int | None = Field(None, ge=1)
    descriptor_size: int = Field(8, ge=1)
    encoder_channels: int = Field(32, ge=1)
    conditioning: Conditioning = "concat"
    innovation: bool = True
    context_targets: list[int] | None = None
    context_window_s: float | None = Field(None, gt=0.0)
    context_max_fraction: float = Field(0.5, gt=0.0, lt=1.0)
    none_probability: float = Field(0.2, ge=0.0, le=1.0)


class ContextEncoder(nn.Module):
    """(batch, rows, context_size) context + (batch, rows) mask -> (batch, descriptor_size) z.

    Two 1-D convolutions (the second dilated, ~40 rows of receptive field: a pulse and its
    relaxation) and a masked mean and max over the rows; a sequence without valid context rows
    gets the learned population descriptor.
    """

    def __init__(self, context_size: int, channels: int, descriptor_size: int) -> None:
        super().__init__()
        self.convolutions = nn.Sequential(
            nn.Conv1d(context_size, channels, kernel_size=5, padding=2), nn.GELU(),
            nn.Conv1d(channels, channels, kernel_size=5, padding=8, dilation=4), nn.GELU())
        self.project = nn.Linear(2 * channels, descriptor_size)
        self.population = nn.Parameter(torch.zeros(descriptor_size))

    def forward(self, context: Tensor | None, mask: Tensor | None, batch: int) -> Tensor:
        if context is None or mask is None:
            return self.population.expand(batch, -1)
        features = self.convolutions(context.transpose(1, 2)).transpose(1, 2)  # (batch, rows, channels)
        weights = mask.unsqueeze(-1).to(features.dtype)  # (batch, rows, 1)
        count = weights.sum(dim=1)  # (batch, 1)
        mean = (features * weights).sum(dim=1) / count.clamp(min=1.0)
        peak = features.masked_fill(~mask.unsqueeze(-1), -1e4).amax(dim=1) if mask.shape[1] else mean
        descriptor = torch.tanh(self.project(torch.cat([mean, peak], dim=-1)))  # (batch, descriptor)
        return torch.where(count > 0, descriptor, self.population.expand(batch, -1))


class ContextResidual(nn.Module):
    """Residual RNN conditioned on the descriptor of a context window (see the module docstring)."""

    def __init__(self, config: ContextResidualConfig) -> None:
        super().__init__()
        if config.bidirectional:
            raise ConfigError("ContextResidualConfig: field 'bidirectional' = True; allowed: false (it runs online)")
        if config.context_size is None:
            raise ConfigError("ContextResidualConfig: field 'context_size' = None: set it from the data "
                              "(the model inputs plus the measured residuals) before building")
        self.config = config
        self.causal = True
        input_size = require_input_size(config)
        if config.innovation and not config.context_targets:
            raise ConfigError("ContextResidualConfig: field 'context_targets' is empty with innovation = true; "
                              "allowed: the output indices of the measured residuals (set from the data)")
        encoded = config.context_size + (len(config.context_targets) if config.innovation else 0)
        self.encoder = ContextEncoder(encoded, config.encoder_channels, config.descriptor_size)
        extra = config.descriptor_size if config.conditioning == "concat" else 0
        self.rnn = recurrent_layer(config.cell, input_size + extra, config.hidden_size, config.layers, config.dropout)
        states = 2 if config.cell == "lstm" else 1
        self.to_state = (nn.Linear(config.descriptor_size, states * config.layers * config.hidden_size)
                         if config.conditioning == "initial_state" else None)
        self.film = (nn.Linear(config.descriptor_size, 2 * config.hidden_size)
                     if config.conditioning == "film" else None)
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.hidden_size, config.output_size)

    def context_state(self, context: Tensor, mask: Tensor) -> State:
        """The initial state that carries ``context`` (batch, rows, context_size) with its
        ``mask`` (batch, rows); in training each sequence's context is withheld with
        probability ``none_probability`` (it then gets the population descriptor)."""
        if self.training and self.config.none_probability > 0:
            keep = torch.rand(mask.shape[0], device=mask.device) >= self.config.none_probability
            mask = mask & keep.unsqueeze(1)
        if self.config.innovation:
            context = torch.cat([context, self._innovation(context, mask)], dim=-1)
        return (context, mask, None)

    @torch.no_grad()
    def _innovation(self, context: Tensor, mask: Tensor) -> Tensor:
        """(batch, rows, measured residuals): measured minus population-predicted residuals over
        the context rows (0 at invalid rows); data, not a graph: the encoder learns to read it."""
        inputs = context[..., : self.config.input_size]
        population, _ = self(inputs)  # (batch, rows, outputs), no context
        measured = context[..., self.config.input_size:]
        predicted = population[..., self.config.context_targets]
        return (measured - predicted) * mask.unsqueeze(-1).to(context.dtype)

    def forward(self, x: Tensor, state: State = None) -> tuple[Tensor, State]:
        """Outputs (batch, time, output_size) and the state that continues the sequence.
        ``state`` None is mode none: the population descriptor."""
        check_sequence("x", x, self.config.input_size)
        context, mask, rnn_state = state if state is not None else (None, None, None)
        descriptor = self.encoder(context, mask, x.shape[0])  # (batch, descriptor)
        if self.config.conditioning == "concat":
            x = torch.cat([x, descriptor.unsqueeze(1).expand(-1, x.shape[1], -1)], dim=-1)
        if rnn_state is None and self.to_state is not None:
            rnn_state = self._initial_rnn_state(descriptor)
        features, rnn_state = self.rnn(x, rnn_state)  # (batch, time, hidden)
        if self.film is not None:
            scale, shift = self.film(descriptor).unsqueeze(1).chunk(2, dim=-1)
            features = features * (1.0 + scale) + shift
        return self.head(self.dropout(features)), (context, mask, rnn_state)

    def _initial_rnn_state(self, descriptor: Tensor) -> Tensor | tuple[Tensor, Tensor]:
        layers, hidden = self.config.layers, self.config.hidden_size
        values = torch.tanh(self.to_state(descriptor))  # (batch, states * layers * hidden)
        parts = values.view(descriptor.shape[0], -1, layers, hidden).permute(1, 2, 0, 3).contiguous()
        return (parts[0], parts[1]) if self.config.cell == "lstm" else parts[0]
