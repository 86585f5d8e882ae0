"""Facts about the forecaster: the causal mask hides targets from step k on, without it the
future leaks, free-running equals teacher forcing on its own predictions; bad configs named.
Over time windows (forward, a training run): a forecast from origin t is blind to the measured
voltage from t on, teacher-forced step k to the targets from k on, padding and TBPTT segments
change nothing."""

import numpy as np
import pytest
import torch

from hybrid.data.windows import window_batch, window_sequences
from hybrid.models.base import require_causal
from hybrid.models.forecaster import ForecasterConfig
from sim.config import validate
from sim.errors import ConfigError
from tests.hybrid.data.test_windows import NORMALISATION, WINDOWS, record
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
        predictions = model.forecast(context_x, context_y, future_x, future_y)
        predictions_changed = model.forecast(context_x, context_y, future_x, changed_y)
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
        predictions = model.forecast(context_x, context_y, future_x, future_y)
        predictions_changed = model.forecast(context_x, context_y, future_x, changed_y)
    assert not model.causal
    assert (predictions_changed[:, :4] - predictions[:, :4]).abs().max() > 1e-3
    with pytest.raises(ConfigError, match="online forecasting"):
        require_causal(model, "online forecasting")


def test_forecaster_autoregressive_equals_teacher_forcing_on_its_own_predictions():
    config = ForecasterConfig(input_size=INPUTS, hidden_size=8, horizon=6, layers=2)
    model = _model(config)
    context_x, context_y, future_x, _ = _forecaster_data(config)
    with torch.no_grad():
        free_running = model.forecast(context_x, context_y, future_x, teacher_forcing=False)
        teacher_forced = model.forecast(context_x, context_y, future_x, free_running, teacher_forcing=True)
    torch.testing.assert_close(teacher_forced, free_running, rtol=0, atol=1e-6)


@pytest.mark.parametrize(("field", "value", "allowed"), [
    ("cell", "lstm2", "'rnn', 'gru' or 'lstm'"),
    ("horizon", 0, "greater than or equal to 1"),
    ("causal_mask", None, "valid boolean"),
    ("horizon_s", -600.0, "greater than 0"),
    ("teacher_forcing", "yes", "valid boolean"),
])
def test_bad_configs_name_the_field_the_value_and_what_is_allowed(field, value, allowed):
    with pytest.raises(ConfigError, match=f"field '{field}' = {value!r}: .*{allowed}"):
        validate(ForecasterConfig, {"input_size": INPUTS, field: value}, "model")


# --- time windows (forward) ----------------------------------------------------------------

TIME_CONFIG = ForecasterConfig(input_size=len(NORMALISATION["features"]), hidden_size=8, context_s=WINDOWS.context_s,
                               horizon_s=WINDOWS.horizon_s, stride_s=WINDOWS.stride_s)


def _windows(cell, spans=None):
    """The batch of ``cell``'s windows (all rows scored), and their spans."""
    scored = np.ones(cell.rows, dtype=bool)
    spans = WINDOWS.spans(cell, scored) if spans is None else spans
    return window_batch(window_sequences(cell, NORMALISATION, spans, scored)), spans


def _forecast(model, batch):
    with torch.no_grad():
        return model(batch.inputs, model.context_state(batch.context, batch.context_mask))[0]  # (windows, rows, 1)


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_a_forecast_from_t_is_blind_to_the_measured_voltage_from_t_on(cell):
    model = _model(TIME_CONFIG.model_copy(update={"cell": cell}))
    original = record()
    batch, spans = _windows(original)
    chosen = 3
    origin = spans[chosen].origin
    later, earlier = record(), record()
    later.columns["Voltage [V]"][origin:] += 0.05 * np.random.default_rng(1).normal(size=original.rows - origin)
    earlier.columns["Voltage [V]"][origin - 1] += 0.05
    forecast = _forecast(model, batch)[chosen]
    torch.testing.assert_close(_forecast(model, _windows(later, spans)[0])[chosen], forecast, rtol=0, atol=0)
    assert (_forecast(model, _windows(earlier, spans)[0])[chosen] - forecast).abs().max() > 1e-4  # it reads history


def test_teacher_forced_step_k_does_not_see_the_targets_at_or_after_k():
    model = _model(TIME_CONFIG).train()
    original = record()
    batch, spans = _windows(original)
    chosen, k = 0, 40
    origin = spans[chosen].origin
    changed = record()
    changed.columns["Voltage [V]"][origin + k:] += 0.05
    with torch.no_grad():
        forecast = model(batch.inputs, model.context_state(batch.context, batch.context_mask))[0][chosen]
        changed_batch = _windows(changed, spans)[0]
        changed_forecast = model(changed_batch.inputs, model.context_state(changed_batch.context,
                                                                           changed_batch.context_mask))[0][chosen]
    torch.testing.assert_close(changed_forecast[:k + 1], forecast[:k + 1], rtol=0, atol=0)
    assert (changed_forecast[k + 1:] - forecast[k + 1:]).abs().max() > 1e-4


def test_free_running_never_reads_the_horizon_targets_and_equals_teacher_forcing_on_its_predictions():
    model = _model(TIME_CONFIG)
    batch, _ = _windows(record())
    free_running = _forecast(model, batch)
    scrambled = batch.inputs.clone()
    scrambled[..., -1] = torch.randn(scrambled.shape[:2])
    torch.testing.assert_close(_forecast(model, type(batch)(scrambled, batch.targets, batch.mask, batch.context,
                                                            batch.context_mask)), free_running, rtol=0, atol=0)
    own = batch.inputs.clone()
    own[:, 1:, -1] = free_running[:, :-1, 0]  # each step fed the prediction of the step before
    with torch.no_grad():
        teacher_forced = model.train()(own, model.context_state(batch.context, batch.context_mask))[0]
    torch.testing.assert_close(teacher_forced, free_running, rtol=0, atol=1e-5)


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_padding_and_tbptt_segments_change_no_forecast(mode):
    model = _model(TIME_CONFIG).train(mode == "train")
    cell = record()
    batch, spans = _windows(cell)
    whole = _forecast(model, batch)
    for row, span in enumerate(spans[:3]):  # alone: no padding in the history or the horizon
        alone = _forecast(model, _windows(cell, [span])[0])
        torch.testing.assert_close(alone[0], whole[row, :span.stop - span.origin], rtol=0, atol=1e-5)
    with torch.no_grad():
        first, state = model(batch.inputs[:, :100], model.context_state(batch.context, batch.context_mask))
        second, _ = model(batch.inputs[:, 100:], state)
    torch.testing.assert_close(torch.cat([first, second], dim=1), whole, rtol=0, atol=1e-5)


def test_without_teacher_forcing_training_runs_as_deployed():
    model = _model(TIME_CONFIG.model_copy(update={"teacher_forcing": False}))
    batch, _ = _windows(record())
    free_running = _forecast(model, batch)
    torch.testing.assert_close(_forecast(model.train(), batch), free_running, rtol=0, atol=0)


def test_forward_refuses_a_missing_history_and_the_leaky_variant():
    batch, _ = _windows(record())
    with pytest.raises(ConfigError, match="state = None"):
        _model(TIME_CONFIG)(batch.inputs)
    leaky = _model(TIME_CONFIG.model_copy(update={"causal_mask": False}))
    with pytest.raises(ConfigError, match="field 'causal_mask' = False"):
        leaky(batch.inputs, leaky.context_state(batch.context, batch.context_mask))
