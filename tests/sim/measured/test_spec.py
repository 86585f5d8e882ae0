"""Facts about sim.measured.spec: where the measured data directory is, and what a PairingSpec
accepts."""

from __future__ import annotations

from pathlib import Path

import pytest

from sim.config import validate
from sim.errors import ConfigError
from sim.measured import spec as spec_module
from sim.measured.spec import REAL_DATA_VARIABLE, CalibrationSpec, PairingSpec, default_real_data_dir, resolve_data_dir

MINIMAL = {"tests": [{"pattern": "*.csv", "ambient_temperature_C": 25.0}], "cell": {"parameter_set": "Chen2020"}}


def test_default_real_data_dir_is_the_variable_else_the_shared_folder_beside_the_repository(monkeypatch, tmp_path):
    monkeypatch.setenv(REAL_DATA_VARIABLE, str(tmp_path))
    assert default_real_data_dir() == tmp_path
    monkeypatch.delenv(REAL_DATA_VARIABLE)
    repository = Path(__file__).resolve().parents[3]
    assert default_real_data_dir() == repository.parent / "shared" / "data" / "real"


def test_data_dir_resolves_the_environment_variable_and_relative_paths(monkeypatch, tmp_path):
    monkeypatch.setenv("HYBAT_REAL_DATA", str(tmp_path))
    assert resolve_data_dir("${HYBAT_REAL_DATA}/a123") == tmp_path / "a123"
    assert resolve_data_dir("a123") == tmp_path / "a123"
    assert resolve_data_dir(str(tmp_path / "x")) == tmp_path / "x"
    with pytest.raises(ConfigError, match="unset environment variable"):
        resolve_data_dir("${HYBAT_NO_SUCH_VARIABLE}/a123")


def test_data_dir_expands_the_bare_variable_and_other_variables(monkeypatch, tmp_path):
    monkeypatch.setenv(REAL_DATA_VARIABLE, str(tmp_path))
    monkeypatch.setenv("HYBAT_TEST_CELLS", "cells")
    assert resolve_data_dir("$HYBAT_REAL_DATA/a123") == tmp_path / "a123"
    assert resolve_data_dir("${HYBAT_REAL_DATA}/$HYBAT_TEST_CELLS") == tmp_path / "cells"


def test_an_unset_variable_is_named_with_the_data_dir_it_came_from(monkeypatch):
    monkeypatch.delenv("HYBAT_NO_SUCH_VARIABLE", raising=False)
    with pytest.raises(ConfigError) as caught:
        resolve_data_dir("$HYBAT_NO_SUCH_VARIABLE/a123")
    assert str(caught.value).startswith("data_dir = '$HYBAT_NO_SUCH_VARIABLE/a123': unset environment variable")


def test_pairing_spec_defaults_read_the_real_data_without_calibration():
    spec = PairingSpec.model_validate(MINIMAL)
    assert spec.data_dir == "${HYBAT_REAL_DATA}" and spec.calibration.mode == "none"
    assert spec.current_sign == "discharge_positive" and spec.columns is None
    assert (spec.physics.model, spec.physics.thermal) == ("spme", "lumped")


@pytest.mark.parametrize(("change", "message"), [
    ({"calibraton": {}}, "unknown key 'calibraton'"),
    ({"tests": []}, "field 'tests'"),
    ({"tests": [{"pattern": "*.csv", "chamber_C": 25.0}]}, "unknown key 'tests.0.chamber_C'"),
    ({"tests": [{"pattern": "*.csv", "ambient_temperature_C": 500.0}]}, "tests.0.ambient_temperature_C"),
    ({"resample_period_s": 0.0}, "resample_period_s"),
    ({"end_below_voltage_V": 7.0}, "end_below_voltage_V"),
    ({"current_sign": "positive"}, "current_sign"),
    ({"calibration": {"mode": "shared"}}, "mode 'shared' needs file"),
], ids=["unknown-key", "no-tests", "unknown-test-key", "hot-chamber", "zero-period", "high-cut-off", "sign",
        "shared-without-file"])
def test_pairing_spec_rejects_bad_entries_naming_the_field(change, message):
    with pytest.raises(ConfigError, match=message):
        validate(PairingSpec, {**MINIMAL, **change}, "pairing.yaml")


def test_shared_calibration_names_its_file_and_other_modes_need_none():
    assert CalibrationSpec(mode="shared", file="dyn/a.csv").file == "dyn/a.csv"
    assert CalibrationSpec(mode="per_test").file is None


def test_a_test_group_defaults_to_one_tagged_test_per_file():
    # TestGroup is reached through its module: imported by name, pytest would collect it as a test class
    group = spec_module.TestGroup(pattern="dyn/*.csv.gz")
    assert (group.ambient_temperature_C, group.ambient_manifest_column, group.full_to_empty) == (None, None, False)
    assert group.continued_by == {} and group.tag == "test"


def test_the_fingerprint_is_stable_and_changes_with_the_spec():
    spec = PairingSpec.model_validate(MINIMAL)
    assert spec.fingerprint() == PairingSpec.model_validate(MINIMAL).fingerprint()
    assert len(spec.fingerprint()) == 16
    assert spec.fingerprint() != spec.model_copy(update={"resample_period_s": 60.0}).fingerprint()
