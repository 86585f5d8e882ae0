"""Facts about the interface the sequence models share: causal outputs ignore later inputs, a
carried (detached) state continues a sequence exactly, detach_state cuts the graph, and
require_causal refuses offline models."""

import pytest
import torch

from hybrid.models.base import detach_state, require_causal
from hybrid.models.build import build_model
from hybrid.models.residual_rnn import BlackBoxConfig, ResidualRNNConfig
from hybrid.models.two_branch import TwoBranchConfig

INPUTS = 3
SEQUENCE_CONFIGS = [
    ResidualRNNConfig(input_size=INPUTS, cell="rnn", hidden_size=8, layers=2),
    ResidualRNNConfig(input_size=INPUTS, cell="gru", hidden_size=8, layers=2),
    ResidualRNNConfig(input_size=INPUTS, cell="lstm", hidden_size=8, layers=2),
    BlackBoxConfig(input_size=INPUTS, cell="gru", hidden_size=8, layers=1),
    TwoBranchConfig(input_size=INPUTS, hidden_size=8, reversible_states=4, slowest_time_constant_s=50.0),
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
    assert detach_state([2 * leaf])[0].requires_grad is False and isinstance(detach_state([leaf]), list)
    with pytest.raises(TypeError, match="hidden state of type dict"):
        detach_state({"h": leaf})
