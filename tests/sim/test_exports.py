"""lazy_exports: a package's public names load their stage module on first access only."""

from __future__ import annotations

import sys
import types

import pytest

from sim.exports import lazy_exports

PACKAGE = "hybat_test_lazy_package"
STAGE = "hybat_test_lazy_stage"


@pytest.fixture
def package(tmp_path, monkeypatch) -> types.ModuleType:
    """A package whose one stage module, on disk, is not imported yet."""
    (tmp_path / f"{STAGE}.py").write_text("LOADS = 0\ndef answer():\n    return 42\nCONSTANT = 'c'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    module = types.ModuleType(PACKAGE)
    monkeypatch.setitem(sys.modules, PACKAGE, module)
    monkeypatch.delitem(sys.modules, STAGE, raising=False)
    names, stage_of, getattr_, dir_ = lazy_exports(PACKAGE, {STAGE: ("CONSTANT", "answer")})
    module.__all__, module._STAGE_OF, module.__getattr__, module.__dir__ = names, stage_of, getattr_, dir_
    yield module
    sys.modules.pop(STAGE, None)


def test_all_and_the_stage_map_list_every_export(package):
    assert package.__all__ == ["CONSTANT", "answer"]
    assert package._STAGE_OF == {"CONSTANT": STAGE, "answer": STAGE}


def test_a_name_loads_its_stage_on_first_access_and_is_cached(package):
    assert STAGE not in sys.modules and "answer" not in vars(package)
    assert package.answer() == 42
    assert STAGE in sys.modules and package.answer is sys.modules[STAGE].answer
    assert vars(package)["answer"] is sys.modules[STAGE].answer  # later lookups bypass __getattr__
    assert "CONSTANT" not in vars(package)  # only the name asked for is bound


def test_an_unknown_name_is_an_attribute_error_naming_package_and_name(package):
    with pytest.raises(AttributeError, match=f"module '{PACKAGE}' has no attribute 'answr'"):
        package.answr  # noqa: B018
    assert STAGE not in sys.modules  # a typo imports nothing


def test_dir_lists_the_exports_before_they_load(package):
    assert {"CONSTANT", "answer"} <= set(dir(package))
    assert STAGE not in sys.modules
