"""Config -> model, and configs to and from the plain dicts stored in checkpoints.

A checkpoint's ``model_config`` is :func:`config_to_dict` of the config the model was built
with: the config's fields plus its ``kind``; :func:`config_from_dict` reads it back (and
validates a YAML model entry, where the sizes are left out until the data set is known).
"""

from __future__ import annotations

from typing import Any, TypeAlias

from torch import nn

from hybrid.models.base import ModelConfigBase
from hybrid.models.context import ContextResidual, ContextResidualConfig
from hybrid.models.forecaster import ForecasterConfig, Seq2SeqForecaster
from hybrid.models.residual_rnn import BlackBoxConfig, ResidualRNN, ResidualRNNConfig
from hybrid.models.two_branch import TwoBranchConfig, TwoBranchResidual
from sim.config import validate
from sim.errors import ConfigError

ModelConfig: TypeAlias = (ResidualRNNConfig | TwoBranchConfig | ForecasterConfig | BlackBoxConfig
                          | ContextResidualConfig)

_MODELS: dict[str, tuple[type[ModelConfigBase], type[nn.Module]]] = {
    config_type.kind: (config_type, model_type)
    for config_type, model_type in (
        (ResidualRNNConfig, ResidualRNN),
        (BlackBoxConfig, ResidualRNN),
        (TwoBranchConfig, TwoBranchResidual),
        (ContextResidualConfig, ContextResidual),
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
    return {"kind": config.kind, **config.model_dump(mode="json")}


def config_from_dict(data: dict[str, Any]) -> ModelConfig:
    """Inverse of :func:`config_to_dict`: the config of ``data["kind"]`` with the other keys.

    Raises ConfigError naming the field, the value and what is allowed on an unknown kind, an
    unknown key or an invalid value.
    """
    kind = data.get("kind")
    if kind not in _MODELS:
        raise ConfigError(
            f"model config: field 'kind' = {kind!r}: expected one of {', '.join(map(repr, _MODELS))}"
        )
    config_type = _MODELS[kind][0]
    values = {key: value for key, value in data.items() if key != "kind"}
    return validate(config_type, values, config_type.__name__)
