from hybrid.models.base import State, detach_state, require_causal
from hybrid.models.context import ContextResidual, ContextResidualConfig
from hybrid.models.build import (
    ModelConfig,
    build_model,
    config_from_dict,
    config_to_dict,
)
from hybrid.models.forecaster import ForecasterConfig, Seq2SeqForecaster
from hybrid.models.residual_rnn import BlackBoxConfig, ResidualRNN, ResidualRNNConfig
from hybrid.models.two_branch import TwoBranchConfig, TwoBranchResidual

__all__ = ['BlackBoxConfig', 'ContextResidual', 'ContextResidualConfig', 'ForecasterConfig', 'ModelConfig', 'ResidualRNN', 'ResidualRNNConfig', 'Seq2SeqForecaster', 'TwoBranchConfig', 'State', 'TwoBranchResidual', 'build_model', 'config_from_dict', 'config_to_dict', 'detach_state', 'require_causal']
