"""The public API: `from sim import ...` and `from hybrid import ...` serve users."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import hybrid
import sim

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("package", [sim, hybrid], ids=["sim", "hybrid"])
def test_every_public_name_resolves_to_its_stage_object(package):
    for name in package.__all__:
        value = getattr(package, name)
        stage = package._STAGE_OF[name]
        assert value is getattr(sys.modules[stage], name)
    assert set(package.__all__) <= set(dir(package))


@pytest.mark.parametrize("package", ["sim", "hybrid"])
def test_type_checkers_see_exactly_the_public_names(package):
    tree = ast.parse((ROOT / package / "__init__.py").read_text())
    guarded = next(node for node in tree.body if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING")
    imported = {alias.name for node in guarded.body for alias in node.names}
    assert imported == set(getattr(sim if package == "sim" else hybrid, "__all__"))


@pytest.mark.parametrize("package", [sim, hybrid], ids=["sim", "hybrid"])
def test_no_public_name_is_shadowed_by_a_submodule(package):
    """Importing a submodule sets the package attribute of that name: a function of the same
    name would then read as the module."""
    submodules = {path.stem if path.is_file() else path.name for path in Path(package.__file__).parent.iterdir()}
    assert not submodules & set(package.__all__)


def test_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'simulat'"):
        sim.simulat  # noqa: B018


def test_sim_never_imports_torch_and_starts_without_pybamm():
    code = ("import sys, sim; assert 'pybamm' not in sys.modules; "
            "[getattr(sim, name) for name in sim.__all__]; print('torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_both_packages_are_typed():
    assert (ROOT / "sim" / "py.typed").is_file() and (ROOT / "hybrid" / "py.typed").is_file()
