"""Facts about the design metrics, the cell mass/volume model and the hybrid surrogate: the mass
model matches a hand computation and the LG M50's size, the metrics read capacity, energy,
pulse power, retention, plating margin and charge time off a trajectory as defined, the
surrogate refuses (or flags) designs outside its training space, its one batched
residual pass equals designs evaluated one at a time, and with a temperature head its cell
temperature (and max_temperature_K) is the physics one plus the decoded residual."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from hybrid.surrogate.metrics import MassModel, cell_mass_volume, stack_mass_volume, trajectory_metrics, voltage_rmse_mV
from hybrid.train.run import TrainRunConfig, train_from_config
from hybrid.surrogate.models import HybridSurrogate, OperatingConditions, ReferenceModel
from sim.cells.spec import CellSpec
from sim.config import load_config
from sim.corpus.generate import CorpusSpec, generate_corpus
from sim.errors import ConfigError
from sim.protocols.steps import HPPC

ROOT = Path(__file__).resolve().parents[2]
SMOKE_CORPUS = ROOT / "configs" / "corpus" / "smoke.yaml"
SMOKE_RUN = ROOT / "configs" / "train" / "smoke.yaml"
SMOKE_EPOCHS = 6  # enough for a working model; the design tests test the loop, not the fit


def smoke_run_dir(tmp_path_factory) -> Path:
    """The smoke corpus and a short smoke training run, made once per test session (the design
    tests share it)."""
    root = tmp_path_factory.getbasetemp() / "design_smoke"
    run = root / "run"
    if not (run / "summary.json").exists():
        corpus = root / "corpus"
        generate_corpus(load_config(SMOKE_CORPUS, CorpusSpec), corpus, progress=False)
        config = load_config(SMOKE_RUN, TrainRunConfig)
        config = config.model_copy(update={"train": config.train.model_copy(update={"epochs": SMOKE_EPOCHS})})
        train_from_config(config, corpus, run)
    return run


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, one_thread) -> Path:
    return smoke_run_dir(tmp_path_factory)


# --- the mass and volume model --------------------------------------------------------------


def test_mass_and_volume_match_a_hand_computation():
    # OKane2022 (LG M50) with a more porous anode and a thinner cathode
    cell = CellSpec(design={"negative_porosity": 0.30, "positive_thickness_m": 70e-6})
    area = 0.065 * 1.58  # electrode height x width [m2]
    coatings = (1657.0 * (1 - 0.30) / (1 - 0.25) * 85.2e-6  # anode: apparent density rescaled to eps 0.30
                + 397.0 * 12e-6  # separator at its own porosity
                + 3262.0 * 70e-6)  # cathode at the set's porosity
    foils = 0.5 * (8960.0 * 12e-6 + 2700.0 * 16e-6)  # copper, aluminium; half a foil per layer
    electrolyte = 1200.0 * (0.30 * 85.2e-6 + 0.47 * 12e-6 + 0.335 * 70e-6)
    stack_mass = (coatings + foils + electrolyte) * area
    stack_volume = (85.2e-6 + 12e-6 + 70e-6 + 0.5 * (12e-6 + 16e-6)) * area

    result = cell_mass_volume(cell)

    assert result.mass_kg == pytest.approx(stack_mass / (1 - 0.15), rel=1e-12)
    assert result.volume_m3 == pytest.approx(stack_volume / (1 - 0.20), rel=1e-12)
    assert result.stack_volume_m3 == pytest.approx(stack_volume, rel=1e-12)
    assert sum(result.parts_kg.values()) == pytest.approx(stack_mass, rel=1e-12)
    # per m2: coatings 0.13177 + 0.00476 + 0.22834, foils 0.07536, electrolyte 0.06558 -> 0.50581 kg
    assert result.mass_kg == pytest.approx(0.50581 * 0.1027 / 0.85, rel=1e-4)  # 61.1 g


def test_nominal_lg_m50_has_the_size_of_a_21700():
    result = cell_mass_volume(CellSpec())
    assert result.volume_m3 == pytest.approx(2.42e-5, rel=0.02)  # the set's "Cell volume [m3]"
    assert result.mass_kg == pytest.approx(0.068, rel=0.10)  # LG M50 datasheet: about 68 g


def test_mass_model_assumptions_enter_as_documented():
    values = {"Electrode height [m]": 1.0, "Electrode width [m]": 1.0,
              "Negative electrode thickness [m]": 1.0, "Separator thickness [m]": 1.0,
              "Positive electrode thickness [m]": 1.0, "Negative electrode porosity": 0.5,
              "Separator porosity": 0.5, "Positive electrode porosity": 0.5,
              "Negative electrode density [kg.m-3]": 1.0, "Separator density [kg.m-3]": 1.0,
              "Positive electrode density [kg.m-3]": 1.0, "Negative current collector thickness [m]": 1.0,
              "Positive current collector thickness [m]": 1.0, "Negative current collector density [kg.m-3]": 1.0,
              "Positive current collector density [kg.m-3]": 1.0}
    porosities = {"Negative electrode porosity": 0.5, "Separator porosity": 0.5, "Positive electrode porosity": 0.5}
    model = MassModel(electrolyte_density_kg_m3=2.0, current_collector_share=1.0, overhead_mass_fraction=0.5,
                      overhead_volume_fraction=0.0)
    result = stack_mass_volume(values, porosities, model)
    assert result.parts_kg["electrolyte"] == pytest.approx(2.0 * 1.5)  # 3 layers, half pores
    assert result.mass_kg == pytest.approx((3.0 + 2.0 + 3.0) / 0.5)  # solids + foils + electrolyte
    assert result.volume_m3 == pytest.approx(5.0)


# --- trajectory metrics -----------------------------------------------------------------------


def _trajectory(*segments: tuple[float, float, float, float, float]) -> dict[str, np.ndarray]:
    """Concatenate (duration [s], step [s], current [A], start voltage, end voltage) segments;
    each segment's voltage runs linearly over its samples."""
    time_s, current, voltage, start = [], [], [], 0.0
    for duration, step, amps, v_start, v_end in segments:
        count = int(round(duration / step))
        time_s.append(start + step * np.arange(count))
        current.append(np.full(count, amps))
        voltage.append(np.linspace(v_start, v_end, count))
        start += duration
    columns = {"Time [s]": np.concatenate(time_s), "Current [A]": np.concatenate(current),
               "Voltage [V]": np.concatenate(voltage)}
    columns["Cell temperature [K]"] = 298.15 + 0.01 * np.arange(len(columns["Time [s]"]))
    columns["X-averaged negative electrode surface potential difference [V]"] = np.where(
        columns["Current [A]"] < 0, 0.05, -1.0)  # negative only while discharging: never counted
    return columns


def test_metrics_read_a_trajectory_as_defined():
    # rest, a 10 s 15 A pulse, rest, CC discharge to 2.5 V (5 A), CC charge, CC discharge to 2.5 V
    columns = _trajectory((10, 1, 0.0, 4.1, 4.1), (10, 1, 15.0, 3.95, 3.95), (60, 1, 0.0, 4.05, 4.05),
                          (3600, 60, 5.0, 4.0, 2.5), (600, 60, 0.0, 3.2, 3.3), (3600, 60, -4.0, 3.5, 4.2),
                          (600, 60, 0.0, 4.1, 4.1), (3000, 60, 5.0, 4.0, 2.5), (60, 60, 0.0, 3.0, 3.0))
    columns["X-averaged negative electrode surface potential difference [V]"][-70] = 0.02  # inside the charge
    metrics = trajectory_metrics(columns, capacity_Ah=5.0, window_V=(2.5, 4.2))

    # the first discharge reaches 2.5 V at its last sample, 59 minutes after it started
    assert metrics["discharge_capacity_Ah"] == pytest.approx(5.0 * 59 / 60, rel=1e-9)
    assert metrics["discharge_energy_Wh"] == pytest.approx(5.0 * 59 / 60 * (4.0 + 2.5) / 2, rel=0.005)
    # R = (4.1 - 3.95) / 15 = 10 mOhm; P = 2.5 (4.1 - 2.5) / R
    assert metrics["power_capability_W"] == pytest.approx(2.5 * 1.6 / 0.01, rel=1e-9)
    # only discharges after a charge count: the last one alone, so no retention yet
    assert np.isnan(metrics["capacity_retention_pct"])
    assert metrics["charge_time_min"] == pytest.approx(60.0)
    assert metrics["charged_soc"] == pytest.approx(4.0 / 5.0)
    assert metrics["plating_margin_V"] == pytest.approx(0.02)
    assert metrics["max_charge_voltage_V"] == pytest.approx(4.2)
    assert metrics["max_temperature_K"] == pytest.approx(columns["Cell temperature [K]"].max())
    assert np.isnan(metrics["gravimetric_energy_density_Wh_kg"])  # no mass given


def test_retention_compares_discharges_that_follow_a_charge():
    charge_and_discharge = [(3600, 60, -4.0, 3.5, 4.2), (600, 60, 0.0, 4.1, 4.1)]
    columns = _trajectory((3600, 60, 5.0, 4.0, 2.5), (600, 60, 0.0, 3.2, 3.2),
                          *charge_and_discharge, (3600, 60, 5.0, 4.0, 2.5), (600, 60, 0.0, 3.2, 3.2),
                          *charge_and_discharge, (3000, 60, 5.0, 4.0, 2.5), (60, 60, 0.0, 3.0, 3.0))
    metrics = trajectory_metrics(columns, capacity_Ah=5.0, window_V=(2.5, 4.2))
    assert metrics["capacity_retention_pct"] == pytest.approx(100.0 * 49 / 59, rel=1e-9)


def test_a_cc_charge_ends_where_the_corrected_voltage_reaches_the_limit_the_physics_did_not():
    # 60 min at 4 A; the physics (protocol) voltage stays below 4.2 V, the corrected one reaches
    # 4.2 V half way between the samples at 30 and 31 minutes
    columns = _trajectory((3600, 60, -4.0, 3.5, 4.1), (600, 60, 0.0, 4.0, 4.0))
    columns["Protocol voltage [V]"] = columns["Voltage [V]"].copy()
    columns["Voltage [V]"] = np.where(columns["Time [s]"] < 1800, 3.9, 4.3)
    columns["Voltage [V]"][30] = 4.1
    metrics = trajectory_metrics(columns, capacity_Ah=5.0, window_V=(2.5, 4.2))
    assert metrics["charge_time_min"] == pytest.approx(30.5)
    assert metrics["charged_soc"] == pytest.approx(4.0 * 30.5 / 60 / 5.0)
    # with a CV hold (the protocol voltage sits at the limit) the physics-controlled charge stands
    columns["Protocol voltage [V]"][50:60] = 4.2
    held = trajectory_metrics(columns, capacity_Ah=5.0, window_V=(2.5, 4.2))
    assert held["charge_time_min"] == pytest.approx(60.0)


def test_voltage_rmse_pairs_phases_shifted_by_a_cut_off():
    # the reference's discharge runs a minute longer; then both rest. Every voltage is 10 mV apart
    estimate = _trajectory((600, 60, 0.0, 4.1, 4.1), (3000, 60, 5.0, 4.0, 3.0), (600, 60, 0.0, 3.5, 3.5))
    reference = _trajectory((600, 60, 0.0, 4.09, 4.09), (3060, 60, 5.0, 3.99, 2.99 - 1.0 / 49),
                            (600, 60, 0.0, 3.49, 3.49))
    assert voltage_rmse_mV(estimate, reference, threshold_A=0.1) == pytest.approx(10.0, rel=1e-6)
    # until the discharges' ends diverge: the first rest and the discharge, not the last rest
    reference["Voltage [V]"][-10:] += 1.0
    assert voltage_rmse_mV(estimate, reference, threshold_A=0.1, until_divergence=True) == pytest.approx(10.0)


def test_a_discharge_stopped_by_time_is_not_a_capacity_measurement():
    columns = _trajectory((10, 1, 0.0, 4.1, 4.1), (1800, 60, 5.0, 4.0, 3.7), (600, 60, 0.0, 3.8, 3.8))
    metrics = trajectory_metrics(columns, capacity_Ah=5.0, window_V=(2.5, 4.2))
    assert np.isnan(metrics["discharge_capacity_Ah"])


# --- the surrogate ----------------------------------------------------------------------------


def test_surrogate_refuses_a_design_outside_its_training_range(run_dir):
    surrogate = HybridSurrogate(run_dir)
    with pytest.raises(ConfigError, match=r"'negative_porosity' = 0\.35: outside the training range \[0\.2, 0\.3\]"):
        surrogate.evaluate([{"negative_porosity": 0.35}], HPPC(levels=1))
    with pytest.raises(ConfigError, match="'negative_thickness_m' = 8e-05: the training corpus never varied it"):
        surrogate.evaluate([{"negative_thickness_m": 80e-6}], HPPC(levels=1))
    with pytest.raises(ConfigError, match="ambient_temperature_K = 313.15: outside the training temperatures"):
        surrogate.evaluate([{}], HPPC(levels=1), conditions=OperatingConditions(ambient_temperature_K=313.15))
    with pytest.raises(ConfigError, match="out_of_range = 'ignore': allowed: refuse, flag"):
        surrogate.evaluate([{}], HPPC(levels=1), out_of_range="ignore")


def test_surrogate_flags_an_out_of_range_design_and_evaluates_it(run_dir):
    evaluation, = HybridSurrogate(run_dir).evaluate([{"negative_porosity": 0.32}], HPPC(levels=1, relax_s=300),
                                                    out_of_range="flag")
    assert evaluation.ok
    assert evaluation.flags == ["design variable 'negative_porosity' = 0.32: outside the training range [0.2, 0.3]"]
    assert np.all(np.isfinite(evaluation.columns["Voltage [V]"]))


def test_one_batched_pass_equals_designs_one_at_a_time(run_dir):
    surrogate = HybridSurrogate(run_dir)
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


class _WithTemperatureHead(torch.nn.Module):
    """The run's model plus a temperature output: its voltage output + 0.5 (normalised)."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model, self.causal = model, model.causal

    def forward(self, inputs, state=None):
        outputs, state = self.model(inputs, state)
        return torch.cat([outputs, outputs[..., :1] + 0.5], dim=-1), state


def test_temperature_head_corrects_the_surrogate_temperature_by_the_decoded_residual(run_dir):
    design, protocol = [{"negative_porosity": 0.25}], HPPC(levels=1, relax_s=300)
    plain, = HybridSurrogate(run_dir).evaluate(design, protocol)
    surrogate = HybridSurrogate(run_dir)
    surrogate.trained.model = _WithTemperatureHead(surrogate.trained.model)
    normalisation = surrogate.normalisation
    surrogate.normalisation = {**normalisation, "targets": [*normalisation["targets"], "Cell temperature residual [K]"],
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


def test_reference_runs_the_plant_without_variability(run_dir):
    reference = ReferenceModel(run_dir)
    cell = reference.cell({"negative_porosity": 0.25}, 298.15, 0.9)
    assert cell.overrides["Contact resistance [Ohm]"] == 0.004  # the smoke plant's
    assert cell.scales == {}
    assert reference.fidelity.model == "spme"


@pytest.mark.slow
@pytest.mark.ray
def test_ray_backend_gives_the_serial_results(run_dir):
    surrogate = HybridSurrogate(run_dir)
    designs = [{"negative_porosity": 0.22}, {"negative_porosity": 0.28}]
    protocol = HPPC(levels=1, relax_s=300)
    serial = surrogate.evaluate(designs, protocol)
    parallel = surrogate.evaluate(designs, protocol, backend="ray", workers=2)
    for one, other in zip(serial, parallel):
        np.testing.assert_allclose(one.columns["Voltage [V]"], other.columns["Voltage [V]"], atol=1e-9)
        assert one.metrics == pytest.approx(other.metrics, nan_ok=True)
