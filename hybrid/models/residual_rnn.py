"""The residual RNN and the black-box baseline, with their configs.

- :class:`ResidualRNN` (:class:`ResidualRNNConfig`): vanilla RNN / GRU / LSTM plus a linear
  head. Unidirectional for online use; bidirectional is offline smoothing only.
- Black-box baseline (:class:`BlackBoxConfig`): the same :class:`ResidualRNN`, fed no physics
  features and trained to predict the voltage itself rather than the residual. The data
  pipeline chooses those features and targets; the config kind only records in checkpoints
  that the model is the baseline.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field
from torch import Tensor, nn

from hybrid.models.base import (
    ModelConfigBase,
    State,
    check_sequence,
    recurrent_layer,
    require_input_size,
)
from sim.errors import ConfigError


class ResidualRNNConfig(ModelConfigBase):
    """Recurrent residual model: RNN/GRU/LSTM over the features, linear head per step.

    ``dropout`` acts between stacked layers and on the features entering the head.
    ``bidirectional`` makes an offline smoother (not causal; state cannot be carried).
    """

    kind: ClassVar[str] = "residual_rnn"
    cell: Literal["rnn", "gru", "lstm"] = "gru"
    hidden_size: int = Field(64, ge=1)
    layers: int = Field(2, ge=1)
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    bidirectional: bool = False


class BlackBoxConfig(ResidualRNNConfig):
    """The black-box baseline: a :class:`ResidualRNN` that predicts voltage without physics."""

    kind: ClassVar[str] = "black_box"


class ResidualRNN(nn.Module):
    """RNN/GRU/LSTM over (batch, time, input_size) features, linear head to output_size."""

    def __init__(self, config: ResidualRNNConfig) -> None:
        super().__init__()
        self.config = config
        self.causal = not config.bidirectional
        self.rnn = recurrent_layer(
            config.cell,
            require_input_size(config),
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
        check_sequence("x", x, self.config.input_size)
        if self.config.bidirectional and state is not None:
            raise ConfigError(
                "ResidualRNNConfig: field 'bidirectional' = True: a bidirectional model cannot carry "
                "state across chunks; pass state=None or use a unidirectional model"
            )
        features, state = self.rnn(x, state)  # (batch, time, directions * hidden)
        output = self.head(self.dropout(features))  # (batch, time, output_size)
        return output, (None if self.config.bidirectional else state)
