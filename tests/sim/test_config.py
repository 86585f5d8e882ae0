"""YAML configs: strict frozen models, one-line errors naming the file, the field and what is
allowed, and the installed package versions for manifests."""

from __future__ import annotations

import pydantic
import pytest
from pydantic import Field, ValidationError

from sim.config import StrictModel, load_config, package_versions, read_yaml, validate
from sim.errors import ConfigError


class Inner(StrictModel):
    rate: float = Field(1.0, gt=0.0)
    label: str = "x"


class Outer(StrictModel):
    name: str
    count: int = Field(1, ge=1)
    inner: Inner = Inner()


def _yaml(tmp_path, text: str):
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def test_load_config_builds_the_model_from_yaml(tmp_path):
    config = load_config(_yaml(tmp_path, "name: a\ninner:\n  rate: 2.5\n"), Outer)
    assert config == Outer(name="a", inner=Inner(rate=2.5))


def test_unknown_key_names_the_file_the_key_and_the_allowed_keys(tmp_path):
    path = _yaml(tmp_path, "name: a\ncolour: red\n")
    with pytest.raises(ConfigError) as error:
        load_config(path, Outer)
    assert str(error.value) == f"{path}: unknown key 'colour'; allowed keys: name, count, inner"


def test_a_nested_unknown_key_lists_the_nested_model_keys(tmp_path):
    path = _yaml(tmp_path, "name: a\ninner:\n  speed: 3\n")
    with pytest.raises(ConfigError, match=r"unknown key 'inner.speed'; allowed keys: rate, label$"):
        load_config(path, Outer)


def test_a_bad_value_names_the_field_the_value_and_counts_the_other_problems(tmp_path):
    path = _yaml(tmp_path, "name: a\ncount: 0\ninner:\n  rate: -1\n")
    with pytest.raises(ConfigError) as error:
        load_config(path, Outer)
    message = str(error.value)
    assert message.startswith(f"{path}: field 'count' = 0: Input should be greater than or equal to 1")
    assert message.endswith("(and 1 more problem(s))") and "\n" not in message


def test_a_missing_field_is_named(tmp_path):
    with pytest.raises(ConfigError, match=r"config.yaml: field 'name' is required"):
        load_config(_yaml(tmp_path, "count: 2\n"), Outer)


@pytest.mark.parametrize("text, message", [("name: [a\n", "not valid YAML"),
                                           ("- a\n- b\n", "expected a mapping of keys to values, got list")])
def test_unreadable_yaml_is_a_config_error_naming_the_file(tmp_path, text, message):
    path = _yaml(tmp_path, text)
    with pytest.raises(ConfigError, match=message) as error:
        read_yaml(path)
    assert str(error.value).startswith(str(path))


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="absent.yaml: config file not found"):
        load_config(tmp_path / "absent.yaml", Outer)


def test_validate_names_its_source():
    with pytest.raises(ConfigError, match=r"^train\.model: field 'count' = 'many'"):
        validate(Outer, {"name": "a", "count": "many"}, "train.model")


def test_strict_models_are_frozen_and_reject_unknown_keys():
    config = Outer(name="a")
    with pytest.raises(ValidationError, match="frozen"):
        config.name = "b"
    with pytest.raises(ValidationError, match="extra"):
        Outer(name="a", colour="red")


def test_package_versions_reports_installed_versions_and_absent_packages():
    versions = package_versions(("pydantic", "no-such-package-hybat"))
    assert versions == {"pydantic": pydantic.VERSION, "no-such-package-hybat": "absent"}


def test_overrides_set_entries_by_dotted_path_and_name_a_bad_one():
    from sim.config import apply_overrides

    config = {"train": {"epochs": 3}, "models": [{"model": {"cell": "gru"}}]}
    apply_overrides(config, ["train.epochs=5", "models.0.model.cell=lstm", "verify.budget=null", "a.b=[1, 2]"])
    assert config == {"train": {"epochs": 5}, "models": [{"model": {"cell": "lstm"}}], "verify": {"budget": None},
                      "a": {"b": [1, 2]}}
    with pytest.raises(ConfigError, match="'models.3.model.cell' does not name"):
        apply_overrides(config, ["models.3.model.cell=gru"])
    with pytest.raises(ConfigError, match="allowed: KEY.PATH=VALUE"):
        apply_overrides(config, ["epochs"])
