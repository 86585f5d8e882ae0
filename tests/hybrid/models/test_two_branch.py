"""Facts about the two-branch residual: it runs in physical time (one record on two sample grids
gives the same residual), its spectral radius over a step is below one for any parameters, the
reversible state relaxes at zero current, the accumulator never decreases and grows with time
and charge throughput; bad configs named, and a run hands the model its time step or refuses."""

import math

import numpy as np
import pytest
import torch

from hybrid.data.columns import AMBIENT, CURRENT, TIME_STEP, VOLTAGE_RESIDUAL
from hybrid.models.build import build_model
from hybrid.models.two_branch import TwoBranchConfig, TwoBranchResidual
from hybrid.train.run import TrainRunConfig, _model_config
from sim.config import validate
from sim.errors import ConfigError
from tests.hybrid.models.test_base import INPUTS, _model, _perturb_all_parameters

# features (current, another input, time step) normalised as on a corpus of 1 s pulses and
# 120 s cycling rows
CURRENT_INDEX, TIME_STEP_INDEX = 0, 2
TIME_STEP_MEAN_S, TIME_STEP_STD_S = 30.0, 50.0
IN_SECONDS = {"current_index": CURRENT_INDEX, "time_step_index": TIME_STEP_INDEX,
              "time_step_mean_s": TIME_STEP_MEAN_S, "time_step_std_s": TIME_STEP_STD_S}


def _time_step_feature(time_steps_s: np.ndarray) -> np.ndarray:
    return (time_steps_s - TIME_STEP_MEAN_S) / TIME_STEP_STD_S


# --- one record, two grids ------------------------------------------------------------------

HOLD_S = 10.0
_levels = 1.5 * np.random.default_rng(0).standard_normal(150)  # normalised current of each 10 s hold
_levels[60:120] = 0.0  # a 600 s rest from 600 s to 1200 s


def _current(times_s: np.ndarray) -> np.ndarray:
    """The current of the row at each time: the hold over the interval that ends there."""
    return _levels[np.maximum(np.ceil(times_s / HOLD_S).astype(int) - 1, 0)]


def _record_on(times_s: np.ndarray) -> torch.Tensor:
    """(1, rows, 3) features of the record sampled at ``times_s`` (a subset of whole seconds):
    current, a coulomb-counted state of charge (varies within a hold) and the time step."""
    seconds = np.arange(0.0, times_s[-1] + 1)
    charge = np.concatenate([[0.0], np.cumsum(_current(seconds[1:]))]) / 3600
    soc = 0.8 - 0.5 * np.interp(times_s, seconds, charge)
    time_steps_s = np.diff(times_s, prepend=times_s[0])
    features = np.stack([_current(times_s), (soc - 0.5) / 0.25, _time_step_feature(time_steps_s)], axis=-1)
    return torch.tensor(features, dtype=torch.float32)[None]


FINE_GRID = np.arange(0.0, 1501.0)
COARSE_GRIDS = {
    "5 s, 120 s at rest": np.concatenate([np.arange(0.0, 600, 5), np.arange(600.0, 1200, 120),
                                          np.arange(1200.0, 1501, 5)]),
    "1 s then 10 s": np.concatenate([np.arange(0.0, 300), np.arange(300.0, 1501, 10)]),
}


@pytest.mark.parametrize("grid", COARSE_GRIDS.values(), ids=COARSE_GRIDS.keys())
def test_one_record_on_two_grids_gives_the_same_residual_within_2_mV(grid):
    # volts: the residual's dynamic part (both branches) peaks at 50 mV on the 1 s grid, a
    # typical polarisation residual; a model counting rows instead of seconds (every row one
    # second, the per-step semantics) must miss by far more on the coarse grid
    config = TwoBranchConfig(input_size=3, increment_scale=1.0, **IN_SECONDS)
    model = _model(config)
    coarse = _record_on(grid)
    counting_rows = coarse.clone()
    counting_rows[0, 1:, TIME_STEP_INDEX] = float(_time_step_feature(np.array(1.0)))
    with torch.no_grad():
        trace = model.branches(_record_on(FINE_GRID))
        volts_per_unit = 0.05 / (trace.reversible + trace.irreversible).abs().max()
        fine_V = (trace.reversible + trace.irreversible + trace.feedforward)[0, grid.astype(int)] * volts_per_unit
        coarse_V = model(coarse)[0][0] * volts_per_unit
        counting_rows_V = model(counting_rows)[0][0] * volts_per_unit
    assert (coarse_V - fine_V).abs().max() < 2e-3
    assert (counting_rows_V - fine_V).abs().max() > 10e-3


# --- stability and monotonicity ------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("scale", [0.0, 10.0, 1000.0])
def test_two_branch_spectral_radius_over_a_step_below_one_for_any_parameters(seed, scale):
    config = TwoBranchConfig(input_size=INPUTS, reversible_states=6, time_constant_limit_s=1e4)
    torch.manual_seed(seed)
    model = TwoBranchResidual(config)
    _perturb_all_parameters(model, scale)
    for time_step_s in (1.0, 120.0):
        assert model.spectral_radius(time_step_s) <= math.exp(-time_step_s / config.time_constant_limit_s) + 1e-7
    assert model.spectral_radius(1.0) < 1.0
    with torch.no_grad():
        for extreme in (-1e30, 1e30):
            model.raw_rate.fill_(extreme)
            assert 0.0 <= model.spectral_radius(1.0) < 1.0


def test_two_branch_reversible_state_relaxes_at_zero_current_on_an_uneven_grid():
    config = TwoBranchConfig(input_size=INPUTS, reversible_states=5, slowest_time_constant_s=100.0, **IN_SECONDS)
    model = _model(config)
    time_steps_s = torch.tensor([1.0, 120.0])[torch.randint(0, 2, (3, 300))]  # (batch, time)
    x = torch.randn(3, 300, INPUTS)  # rest: other features (temperature, SOC) still vary
    x[..., CURRENT_INDEX] = 0.0
    x[..., TIME_STEP_INDEX] = _time_step_feature(time_steps_s)
    initial = (torch.randn(3, config.reversible_states), torch.rand(3, config.irreversible_states))
    with torch.no_grad():
        trace = model.branches(x, initial)
        initial_output = model.reversible_readout(initial[0])
    initial_norm = initial[0].norm(dim=-1)
    final_norm = trace.reversible_states[:, -1].norm(dim=-1)
    assert model.spectral_radius(time_steps_s.sum(dim=1).min().item()) < 1e-2
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
    config = TwoBranchConfig(input_size=INPUTS, irreversible_states=3, **IN_SECONDS)
    torch.manual_seed(seed)
    model = TwoBranchResidual(config)
    _perturb_all_parameters(model, 10.0)
    x = 10.0 * torch.randn(4, 200, INPUTS)  # time steps of about ±500 s; negative ones clamp to 0
    with torch.no_grad():
        increments = model.irreversible_increments(x)
        trace = model.branches(x)
    assert increments.shape == (4, 200, 3)
    assert torch.all(increments >= 0)
    assert torch.all(trace.irreversible_states.diff(dim=1) >= 0)
    assert torch.all(trace.irreversible_states[:, 0] >= 0)


def test_irreversible_increments_grow_with_time_and_charge_throughput():
    model = _model(TwoBranchConfig(input_size=INPUTS, irreversible_states=3, **IN_SECONDS))
    x = torch.randn(1, 4, INPUTS).expand(2, 4, INPUTS).clone()
    x[0, :, TIME_STEP_INDEX] = _time_step_feature(torch.tensor(1.0))
    x[1, :, TIME_STEP_INDEX] = _time_step_feature(torch.tensor(120.0))
    with torch.no_grad():
        one_second, two_minutes = model.irreversible_increments(x)
        model.increment[-1].weight.zero_()  # rates that no longer depend on the inputs
        rest, charge, faster_discharge = model.irreversible_increments(
            torch.tensor([[[0.0, 0.0, 0.0], [-1.0, 0.0, 0.0], [2.0, 0.0, 0.0]]]))[0]
    torch.testing.assert_close(two_minutes, 120.0 * one_second)
    per_unit_current = charge - rest
    assert torch.all(rest > 0) and torch.all(per_unit_current > 0)
    torch.testing.assert_close(faster_discharge, rest + 2.0 * per_unit_current)


# --- configs ------------------------------------------------------------------------------


@pytest.mark.parametrize(("field", "value", "allowed"), [
    ("current_index", INPUTS, "below input_size \\(3\\)"),
    ("time_step_index", INPUTS, "below input_size \\(3\\)"),
    ("time_step_index", 0, "another feature than current_index"),
    ("time_step_std_s", 0.0, "greater than 0"),
    ("slowest_time_constant_s", 2e5, "seconds in \\[1.0, 100000.0\\)"),
    ("fastest_time_constant_s", 0.05, "seconds in \\[0.1, 100000.0\\)"),
    ("time_constant_limit_s", 1e7, "less than or equal to 1000000"),
    ("increment_scale", 0.0, "greater than 0"),
    ("feedforward", "yes", "valid boolean"),
])
def test_bad_configs_name_the_field_the_value_and_what_is_allowed(field, value, allowed):
    with pytest.raises(ConfigError, match=f"field '{field}' = {value!r}: .*{allowed}"):
        validate(TwoBranchConfig, {"input_size": INPUTS, field: value}, "model")


def test_a_run_gives_the_model_its_time_step_in_seconds():
    normalisation = {"features": [CURRENT, AMBIENT, TIME_STEP], "feature_mean": [0.0, 298.0, TIME_STEP_MEAN_S],
                     "feature_std": [2.0, 5.0, TIME_STEP_STD_S], "current_index": 0, "targets": [VOLTAGE_RESIDUAL]}
    model = build_model(_model_config({"kind": "two_branch"}, normalisation))
    x = torch.zeros(1, 2, 3)
    x[0, :, 2] = _time_step_feature(torch.tensor([0.0, 600.0]))
    torch.testing.assert_close(model.time_steps(x)[0, :, 0], torch.tensor([0.0, 600.0]))
    with pytest.raises(ConfigError, match="needs the 'Time step \\[s\\]' feature"):
        _model_config({"kind": "two_branch"}, {**normalisation, "features": [CURRENT, AMBIENT, "design_x"]})


def test_a_run_without_the_time_step_feature_refuses_a_two_branch_model():
    data = {"features": {"time_step": False}, "models": [{"name": "tb", "model": {"kind": "two_branch"}}]}
    with pytest.raises(ConfigError, match="model 'tb' \\(kind two_branch\\) reads the time step.*features.time_step"):
        validate(TrainRunConfig, data, "run config")
