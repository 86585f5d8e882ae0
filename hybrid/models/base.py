"""What the model families share: the config base class, the recurrent layer, state handling,
shape checks and the causality guard.

Common interface of the sequence models (not the forecaster):
``forward(x, state=None) -> (output, state)`` with ``x`` shaped (batch, time, input_size) and
``output`` shaped (batch, time, output_size). ``state`` is None, a Tensor or a (nested) tuple
of Tensors that continues the sequence in the next chunk (truncated BPTT); :func:`detach_state`
cuts its graph. Every model has ``causal`` (output at t depends on inputs up to t only);
:func:`require_causal` guards online uses against offline models.
"""

from __future__ import annotations

from typing import ClassVar, TypeAlias

from pydantic import ConfigDict, Field
from torch import Tensor, nn

from sim.config import StrictModel
from sim.errors import ConfigError

State: TypeAlias = Tensor | tuple["State", ...] | None

CELLS: dict[str, type[nn.RNNBase]] = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}


class ModelConfigBase(StrictModel):
    """A model config: frozen, unknown keys rejected, no type coercion (``hidden_size: true`` or
    ``bidirectional: 1`` are errors, as are strings for numbers).

    ``input_size`` and ``output_size`` come from the data set (features and targets per step);
    ``input_size`` is None until they are known, so that a YAML model entry validates without
    them; a model refuses a config whose ``input_size`` is None (:func:`require_input_size`).
    ``kind`` names the model family in checkpoints.
    """

    model_config = ConfigDict(strict=True)

    kind: ClassVar[str]
    input_size: int | None = Field(None, ge=1)
    output_size: int = Field(1, ge=1)


def require_input_size(config: ModelConfigBase) -> int:
    """``config.input_size``; ConfigError if it is still None (the sizes come from the data)."""
    if config.input_size is None:
        raise ConfigError(f"{type(config).__name__}: field 'input_size' = None: a model needs it; allowed: the "
                          "number of input features per step (set from the data set before building)")
    return config.input_size


def recurrent_layer(
    cell: str,
    input_size: int,
    hidden_size: int,
    layers: int,
    dropout: float = 0.0,
    bidirectional: bool = False,
) -> nn.RNNBase:
    """A batch-first torch RNN/GRU/LSTM stack: (batch, time, input_size) -> (batch, time, hidden_size)."""
    # torch warns about dropout on a single layer, where it has nothing to act between
    return CELLS[cell](
        input_size,
        hidden_size,
        num_layers=layers,
        batch_first=True,
        dropout=dropout if layers > 1 else 0.0,
        bidirectional=bidirectional,
    )


def check_sequence(name: str, tensor: Tensor, features: int) -> None:
    """Raise ValueError unless ``tensor`` is shaped (batch, time, features)."""
    if tensor.dim() != 3 or tensor.shape[-1] != features:
        raise ValueError(f"{name}: expected shape (batch, time, {features}), got {tuple(tensor.shape)}")


def detach_state(state: State) -> State:
    """``state`` with every tensor detached from the graph: None as is, a Tensor detached, a tuple
    or list part by part (recursively, keeping its type); TypeError for anything else."""
    if state is None:
        return None
    if isinstance(state, Tensor):
        return state.detach()
    if isinstance(state, (tuple, list)):
        return type(state)(detach_state(part) for part in state)
    raise TypeError(f"hidden state of type {type(state).__name__}; expected None, a Tensor or a tuple of Tensors")


def require_causal(model: nn.Module, purpose: str) -> None:
    """Raise ConfigError if ``model`` sees future inputs, which ``purpose`` cannot allow."""
    if not getattr(model, "causal", False):
        name = type(getattr(model, "config", model)).__name__
        raise ConfigError(
            f"{purpose} needs a causal model (output at t from inputs up to t), got a non-causal "
            f"{type(model).__name__} ({name}); use bidirectional=False / causal_mask=True"
        )
