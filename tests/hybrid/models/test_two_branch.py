"""Facts about the two-branch residual: spectral radius below one for any parameters, the
reversible state relaxes at zero current, the accumulator never decreases; bad configs named."""

import math

import pytest
import torch

from hybrid.models.two_branch import TwoBranchConfig, TwoBranchResidual
from sim.config import validate
from sim.errors import ConfigError
from tests.hybrid.models.test_base import INPUTS, _model, _perturb_all_parameters


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("scale", [0.0, 10.0, 1000.0])
def test_two_branch_spectral_radius_below_one_for_any_parameters(seed, scale):
    config = TwoBranchConfig(input_size=INPUTS, reversible_states=6, time_constant_limit=1e4)
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
    config = TwoBranchConfig(input_size=INPUTS, reversible_states=5, current_index=1, slowest_time_constant=100.0)
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
    model = _model(TwoBranchConfig(input_size=INPUTS, reversible_states=4))
    x = torch.randn(2, 10, INPUTS)
    x[..., 0] = 1.0
    with torch.no_grad():
        trace = model.branches(x)
    assert trace.reversible_states.abs().max() > 1e-3


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_irreversible_increments_nonnegative_and_accumulator_never_decreases(seed):
    config = TwoBranchConfig(input_size=INPUTS, irreversible_states=3)
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


@pytest.mark.parametrize(("field", "value", "allowed"), [
    ("current_index", INPUTS, "below input_size \\(3\\)"),
    ("slowest_time_constant", 2e4, "in \\[1.0, 10000.0\\)"),
    ("fastest_time_constant", 0.05, "in \\[0.1, 10000.0\\)"),
    ("time_constant_limit", 1e7, "less than or equal to 1000000"),
    ("increment_scale", 0.0, "greater than 0"),
    ("feedforward", "yes", "valid boolean"),
])
def test_bad_configs_name_the_field_the_value_and_what_is_allowed(field, value, allowed):
    with pytest.raises(ConfigError, match=f"field '{field}' = {value!r}: .*{allowed}"):
        validate(TwoBranchConfig, {"input_size": INPUTS, field: value}, "model")
