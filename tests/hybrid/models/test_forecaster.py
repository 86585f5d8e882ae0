"""Facts about the forecaster: the causal mask hides targets from step k on, without it the
future leaks, free-running equals teacher forcing on its own predictions; bad configs named."""

import pytest
import torch

from hybrid.models.base import require_causal
from hybrid.models.forecaster import ForecasterConfig
from sim.config import validate
from sim.errors import ConfigError
from tests.hybrid.models.test_base import INPUTS, _model


def _forecaster_data(config: ForecasterConfig, batch: int = 2, context: int = 8):
    torch.manual_seed(1)
    return (
        torch.randn(batch, context, config.input_size),
        torch.randn(batch, context, config.output_size),
        torch.randn(batch, config.horizon, config.input_size),
        torch.randn(batch, config.horizon, config.output_size),
    )


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_forecaster_causal_mask_hides_targets_from_step_k_on(cell):
    config = ForecasterConfig(input_size=INPUTS, hidden_size=8, cell=cell, horizon=10)
    model = _model(config)
    context_x, context_y, future_x, future_y = _forecaster_data(config)
    k = 4
    changed_y = future_y.clone()
    changed_y[:, k:] += 5.0
    with torch.no_grad():
        predictions = model(context_x, context_y, future_x, future_y)
        predictions_changed = model(context_x, context_y, future_x, changed_y)
    assert model.causal
    assert predictions.shape == (2, 10, 1)
    torch.testing.assert_close(predictions_changed[:, : k + 1], predictions[:, : k + 1], rtol=0, atol=1e-6)
    assert (predictions_changed[:, k + 1 :] - predictions[:, k + 1 :]).abs().max() > 1e-3


def test_forecaster_without_causal_mask_leaks_future_targets():
    config = ForecasterConfig(input_size=INPUTS, hidden_size=8, horizon=10, causal_mask=False)
    model = _model(config)
    context_x, context_y, future_x, future_y = _forecaster_data(config)
    changed_y = future_y.clone()
    changed_y[:, 4:] += 5.0
    with torch.no_grad():
        predictions = model(context_x, context_y, future_x, future_y)
        predictions_changed = model(context_x, context_y, future_x, changed_y)
    assert not model.causal
    assert (predictions_changed[:, :4] - predictions[:, :4]).abs().max() > 1e-3
    with pytest.raises(ConfigError, match="online forecasting"):
        require_causal(model, "online forecasting")


def test_forecaster_autoregressive_equals_teacher_forcing_on_its_own_predictions():
    config = ForecasterConfig(input_size=INPUTS, hidden_size=8, horizon=6, layers=2)
    model = _model(config)
    context_x, context_y, future_x, _ = _forecaster_data(config)
    with torch.no_grad():
        free_running = model(context_x, context_y, future_x, teacher_forcing=False)
        teacher_forced = model(context_x, context_y, future_x, free_running, teacher_forcing=True)
    torch.testing.assert_close(teacher_forced, free_running, rtol=0, atol=1e-6)


@pytest.mark.parametrize(("field", "value", "allowed"), [
    ("cell", "lstm2", "'rnn', 'gru' or 'lstm'"),
    ("horizon", 0, "greater than or equal to 1"),
    ("causal_mask", None, "valid boolean"),
])
def test_bad_configs_name_the_field_the_value_and_what_is_allowed(field, value, allowed):
    with pytest.raises(ConfigError, match=f"field '{field}' = {value!r}: .*{allowed}"):
        validate(ForecasterConfig, {"input_size": INPUTS, field: value}, "model")
