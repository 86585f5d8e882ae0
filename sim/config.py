"""YAML configs loaded into frozen pydantic models that reject unknown keys.

Every user-facing config class derives from :class:`StrictModel`; :func:`load_config`
turns a YAML file into one and converts validation failures into a one-line
:class:`~sim.errors.ConfigError` naming the file, the field, the value and what is allowed.
"""

from __future__ import annotations

from importlib import metadata
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from sim.errors import ConfigError

ModelT = TypeVar("ModelT", bound=BaseModel)


class StrictModel(BaseModel):
    """Frozen pydantic model that rejects unknown keys."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping from ``path``; raise ConfigError if absent or not a mapping."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML ({str(error).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of keys to values, got {type(data).__name__}")
    return data


def validate(model_cls: type[ModelT], data: Any, source: str) -> ModelT:
    """Validate ``data`` as ``model_cls``; ``source`` names where it came from in errors."""
    try:
        return model_cls.model_validate(data)
    except ValidationError as error:
        raise ConfigError(f"{source}: {describe_validation_error(error, model_cls)}") from None


def load_config(path: str | Path, model_cls: type[ModelT]) -> ModelT:
    """Load the YAML file at ``path`` as a ``model_cls`` instance."""
    return validate(model_cls, read_yaml(path), str(path))


def apply_overrides(config: dict[str, Any], assignments: list[str]) -> dict[str, Any]:
    """``config`` (a YAML dict, changed in place) with each ``a.b.c=value`` applied, value parsed
    as YAML; a number indexes a list (``models.0.model.cell=lstm``). ConfigError for a malformed one."""
    for assignment in assignments:
        path, equals, value = assignment.partition("=")
        if not equals or not path:
            raise ConfigError(f"override '{assignment}': allowed: KEY.PATH=VALUE")
        node: Any = config
        *parents, leaf = path.split(".")
        try:
            for key in parents:
                node = node[int(key)] if isinstance(node, list) else node.setdefault(key, {})
            node[int(leaf) if isinstance(node, list) else leaf] = yaml.safe_load(value)
        except (ValueError, IndexError, TypeError):
            raise ConfigError(f"override '{assignment}': '{path}' does not name an entry of the config") from None
    return config


def describe_validation_error(error: ValidationError, model_cls: type[BaseModel]) -> str:
    """One line for the first problem in a pydantic ValidationError."""
    first = error.errors()[0]
    location = ".".join(str(part) for part in first["loc"]) or "(top level)"
    kind = first["type"]
    if kind == "extra_forbidden":
        allowed = _allowed_keys(model_cls, first["loc"][:-1])
        hint = f"; allowed keys: {', '.join(allowed)}" if allowed else ""
        return f"unknown key '{location}'{hint}"
    if kind == "missing":
        return f"field '{location}' is required"
    message = first["msg"]
    value = first.get("input")
    more = f" (and {error.error_count() - 1} more problem(s))" if error.error_count() > 1 else ""
    return f"field '{location}' = {value!r}: {message}{more}"


def _allowed_keys(model_cls: type[BaseModel], location: tuple) -> list[str]:
    """Field names of the (nested) model at ``location``, when it can be resolved."""
    current: Any = model_cls
    for part in location:
        fields = getattr(current, "model_fields", None)
        if fields is None or part not in fields:
            return []
        current = fields[part].annotation
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return []
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def package_versions(packages: tuple[str, ...]) -> dict[str, str]:
    """Installed version of each of ``packages`` ("absent" when not installed), for manifests
    and checkpoints."""
    versions = {}
    for package in packages:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "absent"
    return versions
