"""Facts about building models and their checkpoint dicts: a config round-trips through JSON
to a model that loads the weights, dicts written before the configs became pydantic still
load, build_model dispatches on the config type, bad kinds, keys and unset sizes are named."""

import json

import pytest
import torch

from hybrid.models.build import build_model, config_from_dict, config_to_dict
from hybrid.models.forecaster import ForecasterConfig, Seq2SeqForecaster
from hybrid.models.residual_rnn import BlackBoxConfig, ResidualRNN, ResidualRNNConfig
from hybrid.models.two_branch import TwoBranchConfig, TwoBranchResidual
from sim.errors import ConfigError
from tests.hybrid.models.test_base import INPUTS, SEQUENCE_CONFIGS, _model

ALL_CONFIGS = [
    *SEQUENCE_CONFIGS,
    ResidualRNNConfig(input_size=INPUTS, output_size=2, hidden_size=8, dropout=0.1, bidirectional=True),
    TwoBranchConfig(input_size=INPUTS, feedforward=False, increment_scale=1e-4, time_constant_limit_s=5e4),
    ForecasterConfig(input_size=INPUTS, hidden_size=8, horizon=5, causal_mask=False),
    ForecasterConfig(input_size=INPUTS, hidden_size=8, horizon=5, cell="rnn"),
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
    assert isinstance(build_model(BlackBoxConfig(input_size=INPUTS, hidden_size=4)), ResidualRNN)
    assert isinstance(build_model(TwoBranchConfig(input_size=INPUTS)), TwoBranchResidual)
    assert isinstance(build_model(ForecasterConfig(input_size=INPUTS, horizon=3)), Seq2SeqForecaster)
    with pytest.raises(ConfigError, match="expected one of"):
        build_model({"kind": "gru"})


# model_config dicts as checkpoints held them before (dataclass configs): same keys, old order
EARLIER_CHECKPOINT_CONFIGS = [
    {"kind": "residual_rnn", "input_size": 7, "output_size": 2, "cell": "gru", "hidden_size": 16, "layers": 1,
     "dropout": 0.0, "bidirectional": False},
    {"kind": "black_box", "input_size": 5, "output_size": 1, "cell": "lstm", "hidden_size": 32, "layers": 2,
     "dropout": 0.1, "bidirectional": False},
    {"kind": "forecaster", "input_size": 4, "output_size": 1, "hidden_size": 64, "layers": 1, "cell": "gru",
     "horizon": 60, "causal_mask": True},
]


@pytest.mark.parametrize("data", EARLIER_CHECKPOINT_CONFIGS, ids=lambda d: d["kind"])
def test_checkpoint_dicts_written_before_still_load_and_write_back_the_same(data):
    config = config_from_dict(data)
    assert config.kind == data["kind"] and config_to_dict(config) == data
    assert build_model(config).config is config


@pytest.mark.parametrize(("data", "message"), [
    ({"kind": "transformer", "input_size": 3}, "field 'kind' = 'transformer': expected one of 'residual_rnn'"),
    ({"kind": "two_branch", "input_size": 3, "hiden_size": 4}, "unknown key 'hiden_size'; allowed keys: .*hidden_size"),
    # a two-branch checkpoint from before its time constants were seconds (they were rows)
    ({"kind": "two_branch", "input_size": 7, "fastest_time_constant": 1.0},
     "unknown key 'fastest_time_constant'; allowed keys: .*fastest_time_constant_s"),
    ({"kind": "residual_rnn", "input_size": 3, "hidden_size": "64"}, "field 'hidden_size' = '64'"),
])
def test_bad_dicts_name_the_field(data, message):
    with pytest.raises(ConfigError, match=message):
        config_from_dict(data)


@pytest.mark.parametrize("kind", ["residual_rnn", "black_box", "two_branch", "forecaster"])
def test_a_model_entry_validates_without_sizes_but_builds_only_with_them(kind):
    config = config_from_dict({"kind": kind})
    assert config.input_size is None and config.output_size == 1
    with pytest.raises(ConfigError, match="field 'input_size' = None"):
        build_model(config)
    sized = config_from_dict({**config_to_dict(config), "input_size": INPUTS})
    assert build_model(sized).config.input_size == INPUTS
