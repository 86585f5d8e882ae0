"""Facts about the residual models: causality, state carrying, stability, monotonicity."""

import json
import math

import pytest
import torch

from hybrid.models.residual_rnn import (
    BlackBoxConfig,
    ForecasterConfig,
    ResidualRNN,
    ResidualRNNConfig,
    Seq2SeqForecaster,
    TwoBranchConfig,
    TwoBranchResidual,
    build_model,
    config_from_dict,
    config_to_dict,
    detach_state,
    require_causal,
)
from sim.errors import ConfigError

INPUTS = 3
SEQUENCE_CONFIGS = [
    ResidualRNNConfig(INPUTS, cell="rnn", hidden_size=8, layers=2),
    ResidualRNNConfig(INPUTS, cell="gru", hidden_size=8, layers=2),
    ResidualRNNConfig(INPUTS, cell="lstm", hidden_size=8, layers=2),
    BlackBoxConfig(INPUTS, cell="gru", hidden_size=8, layers=1),
    TwoBranchConfig(INPUTS, hidden_size=8, reversible_states=4, slowest_time_constant=50.0),
]


def _model(config):
    torch.manual_seed(0)
    return build_model(config).eval()


def _perturb_all_parameters(model: torch.nn.Module, scale: float) -> None:
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(scale * torch.randn_like(parameter))


@pytest.mark.parametrize("config", SEQUENCE_CONFIGS, ids=lambda c: f"{c.kind}-{getattr(c, 'cell', '')}")
def test_unidirectional_outputs_ignore_later_inputs(config):
    model = _model(config)
    x = torch.randn(2, 20, INPUTS)
    changed = x.clone()
    changed[:, 11:] += 5.0 * torch.randn(2, 9, INPUTS)
    with torch.no_grad():
        output, _ = model(x)
        output_changed, _ = model(changed)
    assert model.causal
    require_causal(model, "online estimation")
    torch.testing.assert_close(output_changed[:, :11], output[:, :11], rtol=0, atol=1e-6)
    assert (output_changed[:, 11:] - output[:, 11:]).abs().max() > 1e-3


def test_bidirectional_rnn_sees_the_future_and_is_refused_online():
    model = _model(ResidualRNNConfig(INPUTS, hidden_size=8, layers=1, bidirectional=True))
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


@pytest.mark.parametrize("config", SEQUENCE_CONFIGS, ids=lambda c: f"{c.kind}-{getattr(c, 'cell', '')}")
def test_chunked_forward_with_carried_state_equals_full_sequence(config):
    model = _model(config)
    x = torch.randn(2, 30, INPUTS)
    with torch.no_grad():
        full, _ = model(x)
        state, chunks = None, []
        for start, stop in ((0, 7), (7, 20), (20, 30)):
            output, state = model(x[:, start:stop], state)
            state = detach_state(state)
            chunks.append(output)
    torch.testing.assert_close(torch.cat(chunks, dim=1), full, rtol=0, atol=1e-6)


def test_detach_state_cuts_the_graph_of_tensors_and_nested_tuples():
    leaf = torch.ones(2, requires_grad=True)
    state = (2 * leaf, (3 * leaf, 4 * leaf))
    detached = detach_state(state)
    assert not detached[0].requires_grad and not detached[1][1].requires_grad
    torch.testing.assert_close(detached[1][0], 3 * torch.ones(2))
    assert detach_state(None) is None


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("scale", [0.0, 10.0, 1000.0])
def test_two_branch_spectral_radius_below_one_for_any_parameters(seed, scale):
    config = TwoBranchConfig(INPUTS, reversible_states=6, time_constant_limit=1e4)
    torch.manual_seed(seed)
    model = TwoBranchResidual(config)
    _perturb_all_parameters(model, scale)
    assert model.spectral_radius() <= math.exp(-1.0 / config.time_constant_limit) + 1e-7
    assert model.spectral_radius() < 1.0
    with torch.no_grad():
        for extreme in (-1e30, 1e30):
            model.raw_rate.fill_(extreme)
            assert 0.0 <= model.spectral_radius() < 1.0


def test_two_branch_reversible_state_relaxes_at_zero_current():
    config = TwoBranchConfig(INPUTS, reversible_states=5, current_index=1, slowest_time_constant=100.0)
    model = _model(config)
    steps = 2000
    x = torch.randn(3, steps, INPUTS)
    x[..., config.current_index] = 0.0  # rest: other features (temperature, SOC) still vary
    initial = (torch.randn(3, config.reversible_states), torch.rand(3, config.irreversible_states))
    with torch.no_grad():
        trace = model.branches(x, initial)
        initial_output = model.reversible_readout(initial[0])
    initial_norm = initial[0].norm(dim=-1)
    final_norm = trace.reversible_states[:, -1].norm(dim=-1)
    assert model.spectral_radius() ** steps < 1e-2
    assert torch.all(final_norm < initial_norm / 100)
    assert torch.all(trace.reversible_states.norm(dim=-1).diff(dim=1) <= 0)
    assert trace.reversible[:, -1].abs().max() < 1e-2 * initial_output.abs().max()


def test_two_branch_drive_reacts_to_current():
    model = _model(TwoBranchConfig(INPUTS, reversible_states=4))
    x = torch.randn(2, 10, INPUTS)
    x[..., 0] = 1.0
    with torch.no_grad():
        trace = model.branches(x)
    assert trace.reversible_states.abs().max() > 1e-3


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_irreversible_increments_nonnegative_and_accumulator_never_decreases(seed):
    config = TwoBranchConfig(INPUTS, irreversible_states=3)
    torch.manual_seed(seed)
    model = TwoBranchResidual(config)
    _perturb_all_parameters(model, 10.0)
    x = 10.0 * torch.randn(4, 200, INPUTS)
    with torch.no_grad():
        increments = model.irreversible_increments(x)
        trace = model.branches(x)
    assert increments.shape == (4, 200, 3)
    assert torch.all(increments >= 0)
    assert torch.all(trace.irreversible_states.diff(dim=1) >= 0)
    assert torch.all(trace.irreversible_states[:, 0] >= 0)


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
    config = ForecasterConfig(INPUTS, hidden_size=8, cell=cell, horizon=10)
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
    config = ForecasterConfig(INPUTS, hidden_size=8, horizon=10, causal_mask=False)
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
    config = ForecasterConfig(INPUTS, hidden_size=8, horizon=6, layers=2)
    model = _model(config)
    context_x, context_y, future_x, _ = _forecaster_data(config)
    with torch.no_grad():
        free_running = model(context_x, context_y, future_x, teacher_forcing=False)
        teacher_forced = model(context_x, context_y, future_x, free_running, teacher_forcing=True)
    torch.testing.assert_close(teacher_forced, free_running, rtol=0, atol=1e-6)


ALL_CONFIGS = [
    *SEQUENCE_CONFIGS,
    ResidualRNNConfig(INPUTS, output_size=2, hidden_size=8, dropout=0.1, bidirectional=True),
    TwoBranchConfig(INPUTS, feedforward=False, increment_scale=1e-4, time_constant_limit=5e4),
    ForecasterConfig(INPUTS, hidden_size=8, horizon=5, causal_mask=False),
    ForecasterConfig(INPUTS, hidden_size=8, horizon=5, cell="rnn"),
]


@pytest.mark.parametrize("config", ALL_CONFIGS, ids=lambda c: c.kind)
def test_config_round_trip_rebuilds_a_model_that_loads_the_weights(config):
    model = _model(config)
    data = json.loads(json.dumps(config_to_dict(config)))
    rebuilt_config = config_from_dict(data)
    assert data["kind"] == config.kind
    assert rebuilt_config == config and type(rebuilt_config) is type(config)
    torch.manual_seed(123)
    rebuilt = build_model(rebuilt_config)
    rebuilt.load_state_dict(model.state_dict(), strict=True)
    for name, tensor in rebuilt.state_dict().items():
        torch.testing.assert_close(tensor, model.state_dict()[name], rtol=0, atol=0)


def test_build_model_dispatches_on_config_type():
    assert isinstance(build_model(BlackBoxConfig(INPUTS, hidden_size=4)), ResidualRNN)
    assert isinstance(build_model(TwoBranchConfig(INPUTS)), TwoBranchResidual)
    assert isinstance(build_model(ForecasterConfig(INPUTS, horizon=3)), Seq2SeqForecaster)
    with pytest.raises(ConfigError, match="expected one of"):
        build_model({"kind": "gru"})


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda: ResidualRNNConfig(INPUTS, cell="transformer"), "cell"),
        (lambda: ResidualRNNConfig(INPUTS, hidden_size=0), "hidden_size"),
        (lambda: ResidualRNNConfig(INPUTS, dropout=1.0), "dropout"),
        (lambda: BlackBoxConfig(INPUTS, layers=0), "layers"),
        (lambda: TwoBranchConfig(INPUTS, current_index=INPUTS), "current_index"),
        (lambda: TwoBranchConfig(INPUTS, slowest_time_constant=2e4), "slowest_time_constant"),
        (lambda: TwoBranchConfig(INPUTS, increment_scale=0.0), "increment_scale"),
        (lambda: ForecasterConfig(INPUTS, cell="lstm2"), "cell"),
        (lambda: ForecasterConfig(INPUTS, horizon=0), "horizon"),
        (lambda: config_from_dict({"kind": "transformer", "input_size": 3}), "kind"),
        (lambda: config_from_dict({"kind": "two_branch", "input_size": 3, "hiden_size": 4}), "hiden_size"),
        (lambda: config_from_dict({"kind": "forecaster"}), "input_size"),
    ],
)
def test_bad_configs_name_the_field(make, field):
    with pytest.raises(ConfigError, match=f"'{field}'"):
        make()
