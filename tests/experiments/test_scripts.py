"""Every experiment script answers --help with its usage and exit code 0, without running its main."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import pytest

SCRIPTS = sorted((Path(__file__).resolve().parents[2] / "experiments").glob("*.py"))


@pytest.mark.parametrize("script", SCRIPTS, ids=[script.stem for script in SCRIPTS])
def test_help_shows_the_usage(script, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", [str(script), "--help"])
    with pytest.raises(SystemExit) as stop:
        runpy.run_path(str(script), run_name="__main__")
    assert stop.value.code == 0
    assert script.name in capsys.readouterr().out


def test_scripts_are_thin():
    for script in SCRIPTS:
        text = script.read_text()
        assert "sys.path" not in text, script.name
        assert text.startswith('"""') and "Usage:" in text.split('"""')[1], script.name
