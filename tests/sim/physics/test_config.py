"""SimulateConfig: the `hybat simulate` file, one cell, one protocol, one fidelity."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from sim.cells.spec import CellSpec
from sim.config import load_config
from sim.errors import ConfigError
from sim.physics.config import SimulateConfig
from sim.physics.fidelity import Fidelity, Hysteresis
from sim.protocols.steps import HPPC, AgeingCampaign

ROOT = Path(__file__).resolve().parents[3]
DEFAULT = ROOT / "configs" / "simulate" / "default.yaml"


def test_the_shipped_default_loads_with_every_section():
    config = load_config(DEFAULT, SimulateConfig)
    assert config.cell == CellSpec(parameter_set="OKane2022", ambient_temperature_K=298.15, initial_soc=1.0)
    assert config.fidelity.label == "spm+lumped+sei+hysteresis"
    assert config.fidelity.hysteresis == Hysteresis(width_V=0.02) and config.fidelity.ageing_acceleration == 400
    assert isinstance(config.protocol, AgeingCampaign)
    assert config.protocol.cycles == 40 and config.protocol.hppc.levels == 4 and config.protocol.dynamic.seed == 7


def test_only_the_protocol_is_required_and_the_rest_defaults(tmp_path):
    path = tmp_path / "hppc.yaml"
    path.write_text(yaml.safe_dump({"protocol": {"kind": "hppc", "levels": 2}}))
    config = load_config(path, SimulateConfig)
    assert config.cell == CellSpec() and config.fidelity == Fidelity()
    assert config.protocol == HPPC(levels=2)
    path.write_text(yaml.safe_dump({"cell": {"initial_soc": 0.5}}))
    with pytest.raises(ConfigError, match=f"{path}: field 'protocol' is required"):
        load_config(path, SimulateConfig)


def test_a_fidelity_preset_name_is_accepted_and_a_bad_protocol_kind_is_named(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"fidelity": "spme", "protocol": {"kind": "rest", "duration_s": 10}}))
    assert load_config(path, SimulateConfig).fidelity == Fidelity(model="spme")
    path.write_text(yaml.safe_dump({"protocol": {"kind": "teleport"}}))
    with pytest.raises(ConfigError, match="field 'protocol' .*teleport"):
        load_config(path, SimulateConfig)


def test_an_unknown_cell_key_lists_the_cell_keys(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"cell": {"colour": "red"}, "protocol": {"kind": "rest", "duration_s": 10}}))
    with pytest.raises(ConfigError, match="unknown key 'cell.colour'; allowed keys: parameter_set, bpx, overrides"):
        load_config(path, SimulateConfig)
