"""Facts about the context-conditioned residual: the context conditions the output, no
context is the population descriptor, it is causal, carries its state across chunks, and
withholds contexts only in training."""

from __future__ import annotations

import pytest
import torch

from hybrid.models import ContextResidual, ContextResidualConfig, build_model, config_from_dict, config_to_dict

CONDITIONINGS = ("concat", "initial_state", "film")


def model(conditioning: str, cell: str = "gru", none_probability: float = 0.0) -> ContextResidual:
    torch.manual_seed(0)
    config = ContextResidualConfig(input_size=3, output_size=2, context_size=4, hidden_size=8, layers=2, cell=cell,
                                   descriptor_size=3, encoder_channels=5, conditioning=conditioning,
                                   none_probability=none_probability, context_targets=[1])
    return build_model(config).eval()


def inputs(batch: int = 2, steps: int = 30) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(batch, steps, 3, generator=generator)
    context = torch.randn(batch, 12, 4, generator=generator)
    return x, context, torch.ones(batch, 12, dtype=torch.bool)


@pytest.mark.parametrize("conditioning", CONDITIONINGS)
def test_the_context_changes_the_prediction(conditioning):
    net, (x, context, mask) = model(conditioning), inputs()
    with_context, _ = net(x, net.context_state(context, mask))
    other, _ = net(x, net.context_state(-context, mask))
    assert not torch.allclose(with_context, other, atol=1e-4)


@pytest.mark.parametrize("conditioning", CONDITIONINGS)
def test_no_context_and_an_empty_context_both_give_the_population_descriptor(conditioning):
    net, (x, context, mask) = model(conditioning), inputs()
    none, _ = net(x)
    empty, _ = net(x, net.context_state(context, torch.zeros_like(mask)))
    torch.testing.assert_close(none, empty)


@pytest.mark.parametrize("cell", ["gru", "lstm"])
@pytest.mark.parametrize("conditioning", CONDITIONINGS)
def test_outputs_up_to_t_do_not_depend_on_later_inputs(conditioning, cell):
    net, (x, context, mask) = model(conditioning, cell), inputs()
    changed = x.clone()
    changed[:, 20:] += 5.0
    first, _ = net(x, net.context_state(context, mask))
    second, _ = net(changed, net.context_state(context, mask))
    torch.testing.assert_close(first[:, :20], second[:, :20])


@pytest.mark.parametrize("conditioning", CONDITIONINGS)
def test_two_chunks_with_the_carried_state_equal_one_pass(conditioning):
    net, (x, context, mask) = model(conditioning, "lstm"), inputs()
    whole, _ = net(x, net.context_state(context, mask))
    head, state = net(x[:, :13], net.context_state(context, mask))
    tail, _ = net(x[:, 13:], state)
    torch.testing.assert_close(torch.cat([head, tail], dim=1), whole)


def test_contexts_are_withheld_in_training_only():
    net, (_, context, mask) = model("concat", none_probability=1.0), inputs()
    _, kept, _ = net.context_state(context, mask)
    assert kept.all()  # eval mode: the context is used
    net.train()
    _, withheld, _ = net.context_state(context, mask)
    assert not withheld.any()


def test_the_config_round_trips_through_a_checkpoint_dict():
    config = model("film").config
    assert config_from_dict(config_to_dict(config)) == config


def test_the_innovation_is_the_measured_residual_less_the_population_prediction():
    net, (x, context, mask) = model("concat"), inputs()
    population, _ = net(context[..., :3])
    matching = torch.cat([context[..., :3], population[..., 1:2]], dim=-1)  # measured = predicted
    torch.testing.assert_close(net._innovation(matching, mask), torch.zeros(2, 12, 1))
    shifted = matching + torch.tensor([0.0, 0.0, 0.0, 0.5])
    torch.testing.assert_close(net._innovation(shifted, mask), torch.full((2, 12, 1), 0.5))
    assert not net._innovation(shifted, torch.zeros_like(mask)).any()  # invalid rows carry nothing
