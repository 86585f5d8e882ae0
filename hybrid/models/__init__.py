from hybrid.models.residual_rnn import ForecasterConfig, ModelConfig, ResidualRNNConfig, Seq2SeqForecaster, TwoBranchConfig, build_model, config_from_dict, config_to_dict, require_causal

__all__ = ['ForecasterConfig', 'ModelConfig', 'ResidualRNNConfig', 'Seq2SeqForecaster', 'TwoBranchConfig', 'build_model', 'config_from_dict', 'config_to_dict', 'require_causal']
