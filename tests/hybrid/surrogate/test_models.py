"""Facts about the hybrid surrogate and the reference: the surrogate refuses (or flags) designs
outside its training space, designs run in lockstep equal designs run one at a time, with a temperature head its cell temperature (and max_temperature_K) is the physics one
plus the decoded residual, and the reference runs the plant without variability."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hybrid.models import ResidualRNN
from hybrid.surrogate.models import HybridSurrogate, OperatingConditions, ReferenceModel
from sim.errors import ConfigError
from sim.protocols.steps import HPPC


def test_surrogate_refuses_a_design_outside_its_training_range(smoke_run_dir):
    surrogate = HybridSurrogate(smoke_run_dir)
    with pytest.raises(ConfigError, match=r"'negative_porosity' = 0\.35: outside the training range \[0\.2, 0\.3\]"):
        surrogate.evaluate([{"negative_porosity": 0.35}], HPPC(levels=1))
    with pytest.raises(ConfigError, match="'negative_thickness_m' = 8e-05: the training corpus never varied it"):
        surrogate.evaluate([{"negative_thickness_m": 80e-6}], HPPC(levels=1))
    with pytest.raises(ConfigError, match="ambient_temperature_K = 313.15: outside the training temperatures"):
        surrogate.evaluate([{}], HPPC(levels=1), conditions=OperatingConditions(ambient_temperature_K=313.15))
    with pytest.raises(ConfigError, match="out_of_range = 'ignore': allowed: refuse, flag"):
        surrogate.evaluate([{}], HPPC(levels=1), out_of_range="ignore")


def test_surrogate_flags_an_out_of_range_design_and_evaluates_it(smoke_run_dir):
    evaluation, = HybridSurrogate(smoke_run_dir).evaluate([{"negative_porosity": 0.32}], HPPC(levels=1, relax_s=300),
                                                    out_of_range="flag")
    assert evaluation.ok
    assert evaluation.flags == ["design variable 'negative_porosity' = 0.32: outside the training range [0.2, 0.3]"]
    assert np.all(np.isfinite(evaluation.columns["Voltage [V]"]))


def test_designs_in_lockstep_equal_designs_one_at_a_time(smoke_run_dir):
    surrogate = HybridSurrogate(smoke_run_dir)
    designs = [{"negative_porosity": 0.22}, {"negative_porosity": 0.28}]
    protocols = [HPPC(levels=1, relax_s=300), HPPC(levels=2, soc_step=0.2, relax_s=300)]  # different lengths
    together = surrogate.evaluate(designs, protocols)
    alone = [surrogate.evaluate([design], protocol)[0] for design, protocol in zip(designs, protocols)]
    assert len(together[0].columns["Time [s]"]) != len(together[1].columns["Time [s]"])
    for batched, single in zip(together, alone):
        np.testing.assert_allclose(batched.columns["Voltage [V]"], single.columns["Voltage [V]"], atol=1e-6)
        # the residual is a correction of the physics voltage, not a replacement
        residual = batched.columns["Voltage [V]"] - batched.columns["Physics voltage [V]"]
        assert 0 < np.max(np.abs(residual)) < 0.5


def _with_temperature_head(model: ResidualRNN) -> ResidualRNN:
    """The run's model plus a temperature output: its voltage output + 0.5 (normalised)."""
    config = model.config.model_copy(update={"output_size": model.config.output_size + 1})
    headed = ResidualRNN(config)
    headed.rnn.load_state_dict(model.rnn.state_dict())
    with torch.no_grad():
        headed.head.weight.copy_(torch.cat([model.head.weight, model.head.weight[:1]]))
        headed.head.bias.copy_(torch.cat([model.head.bias, model.head.bias[:1] + 0.5]))
    return headed.eval()


def _first_member(run_dir) -> HybridSurrogate:
    """The run's first hybrid, its ensemble cut to its first member (the one ``trained`` names)."""
    surrogate = HybridSurrogate(run_dir)
    surrogate.ensemble = surrogate.ensemble[:1]
    return surrogate


def test_temperature_head_corrects_the_surrogate_temperature_by_the_decoded_residual(smoke_run_dir):
    design, protocol = [{"negative_porosity": 0.25}], HPPC(levels=1, relax_s=300)
    plain, = _first_member(smoke_run_dir).evaluate(design, protocol)
    surrogate = _first_member(smoke_run_dir)
    surrogate.trained.model = _with_temperature_head(surrogate.trained.model)
    normalisation = surrogate.normalisation
    surrogate.trained.normalisation = {**normalisation, "targets": [*normalisation["targets"], "Cell temperature residual [K]"],
                                       "target_mean": [*normalisation["target_mean"], 5.0],
                                       "target_std": [*normalisation["target_std"], 2.0]}
    headed, = surrogate.evaluate(design, protocol)
    columns = headed.columns
    np.testing.assert_array_equal(columns["Physics cell temperature [K]"], plain.columns["Cell temperature [K]"])
    np.testing.assert_allclose(columns["Voltage [V]"], plain.columns["Voltage [V]"])  # the voltage is untouched
    voltage_output = ((columns["Voltage [V]"] - columns["Physics voltage [V]"] - normalisation["target_mean"][0])
                      / normalisation["target_std"][0])
    residual = columns["Cell temperature [K]"] - columns["Physics cell temperature [K]"]
    np.testing.assert_allclose(residual, 5.0 + 2.0 * (voltage_output + 0.5), atol=1e-5)
    assert headed.metrics["max_temperature_K"] == pytest.approx(columns["Cell temperature [K]"].max())
    assert headed.metrics["max_temperature_K"] > plain.metrics["max_temperature_K"] + 3.0
    assert "Physics cell temperature [K]" not in plain.columns  # no head: the physics temperature as is


def test_reference_runs_the_plant_without_variability(smoke_run_dir):
    reference = ReferenceModel(smoke_run_dir)
    cell = reference.cell({"negative_porosity": 0.25}, 298.15, 0.9)
    assert cell.overrides["Contact resistance [Ohm]"] == 0.004  # the smoke plant's
    assert cell.scales == {}
    assert reference.fidelity.model == "spme"


@pytest.mark.slow
@pytest.mark.ray
def test_ray_backend_gives_the_serial_results(smoke_run_dir):
    surrogate = HybridSurrogate(smoke_run_dir)
    designs = [{"negative_porosity": 0.22}, {"negative_porosity": 0.28}]
    protocol = HPPC(levels=1, relax_s=300)
    serial = surrogate.evaluate(designs, protocol)
    parallel = surrogate.evaluate(designs, protocol, backend="ray", workers=2)
    for one, other in zip(serial, parallel):
        np.testing.assert_allclose(one.columns["Voltage [V]"], other.columns["Voltage [V]"], atol=1e-9)
        assert one.metrics == pytest.approx(other.metrics, nan_ok=True)
