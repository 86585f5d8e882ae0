"""The hybat command: malformed configs give one clean line and exit code 2."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from hybrid.cli import main

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = yaml.safe_load((ROOT / "configs/simulate/default.yaml").read_text())


def _write(tmp_path, config) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.parametrize("mutate, expected", [
    (lambda c: c["cell"].update(colour="red"), "unknown key 'cell.colour'"),
    (lambda c: c["protocol"].update(cycles="many"), "protocol.ageing_campaign.cycles"),
    (lambda c: c["cell"].update(initial_soc=1.5), "cell.initial_soc"),
    (lambda c: c["cell"].update(parameter_set="Nonexistent2099"), "unknown parameter set"),
    (lambda c: c["protocol"].update(kind="teleport"), "protocol"),
    (lambda c: c["cell"].update(design={"negative_thickness_m": 5.0}), "outside"),
])
def test_malformed_config_gives_one_line_and_exit_code_2(tmp_path, capsys, mutate, expected):
    config = yaml.safe_load(yaml.safe_dump(DEFAULT))
    mutate(config)
    path = _write(tmp_path, config)
    code = main(["simulate", str(path), "--out", str(tmp_path / "t.parquet")])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and str(path) in err and expected in err


def test_missing_config_file_is_a_user_error(tmp_path, capsys):
    assert main(["simulate", str(tmp_path / "nope.yaml"), "--out", str(tmp_path / "t.parquet")]) == 2
    assert "not found" in capsys.readouterr().err


def test_help_lists_the_subcommands():
    result = subprocess.run([sys.executable, "-m", "hybrid.cli", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "simulate" in result.stdout


def test_simulate_writes_a_trajectory(tmp_path, capsys):
    config = {"cell": {"parameter_set": "OKane2022"}, "fidelity": "spm",
              "protocol": {"kind": "cycling", "cycles": 2, "period_s": 120}}
    out = tmp_path / "t.parquet"
    assert main(["simulate", str(_write(tmp_path, config)), "--out", str(out), "--json"]) == 0
    assert out.is_file() and '"cycles": 2' in capsys.readouterr().out
