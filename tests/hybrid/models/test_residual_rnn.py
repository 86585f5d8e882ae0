"""Facts about the residual RNN: a bidirectional one sees the future and is refused online;
its config (and the black box's) names a bad field, its value and what is allowed."""

import pytest
import torch

from hybrid.models.base import require_causal
from hybrid.models.residual_rnn import BlackBoxConfig, ResidualRNNConfig
from sim.config import validate
from sim.errors import ConfigError
from tests.hybrid.models.test_base import INPUTS, _model


def test_bidirectional_rnn_sees_the_future_and_is_refused_online():
    model = _model(ResidualRNNConfig(input_size=INPUTS, hidden_size=8, layers=1, bidirectional=True))
    x = torch.randn(2, 20, INPUTS)
    changed = x.clone()
    changed[:, 11:] += 5.0 * torch.randn(2, 9, INPUTS)
    with torch.no_grad():
        output, state = model(x)
        output_changed, _ = model(changed)
    assert (output_changed[:, :11] - output[:, :11]).abs().max() > 1e-3
    assert state is None
    with pytest.raises(ConfigError, match="design loop"):
        require_causal(model, "design loop")
    with pytest.raises(ConfigError, match="bidirectional"):
        model(x, torch.zeros(2, 2, 8))


@pytest.mark.parametrize(("config_type", "field", "value", "allowed"), [
    (ResidualRNNConfig, "cell", "transformer", "'rnn', 'gru' or 'lstm'"),
    (ResidualRNNConfig, "hidden_size", 0, "greater than or equal to 1"),
    (ResidualRNNConfig, "hidden_size", True, "valid integer"),
    (ResidualRNNConfig, "dropout", 1.0, "less than 1"),
    (ResidualRNNConfig, "bidirectional", 1, "valid boolean"),
    (BlackBoxConfig, "layers", 0, "greater than or equal to 1"),
])
def test_bad_configs_name_the_field_the_value_and_what_is_allowed(config_type, field, value, allowed):
    with pytest.raises(ConfigError, match=f"field '{field}' = {value!r}: .*{allowed}"):
        validate(config_type, {"input_size": INPUTS, field: value}, "model")
