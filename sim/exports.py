"""Public names that load on first use, for the ``sim`` and ``hybrid`` packages: ``import sim``
stays free of PyBaMM and the ``hybat`` command starts without torch until a name is needed."""

from __future__ import annotations

import importlib
import sys
from typing import Any, Callable


def lazy_exports(package: str, exports: dict[str, tuple[str, ...]]
                 ) -> tuple[list[str], dict[str, str], Callable[[str], Any], Callable[[], list[str]]]:
    """``__all__``, the name -> stage map, and the module ``__getattr__`` and ``__dir__`` of
    ``package``, whose public names are ``exports`` ({stage module: names it defines})."""
    stage_of = {name: stage for stage, names in exports.items() for name in names}

    def __getattr__(name: str) -> Any:
        stage = stage_of.get(name)
        if stage is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(stage), name)
        setattr(sys.modules[package], name, value)  # later lookups skip __getattr__
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | stage_of.keys())

    return sorted(stage_of), stage_of, __getattr__, __dir__
