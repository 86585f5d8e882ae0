"""Facts about `hybat quickstart`: it runs corpus -> train -> evaluate -> design into one
directory and its report carries the same numbers as the stages' own outputs; it refuses a
directory that already holds something. The full-size quickstart (Ray, the shipped configs)
is a slow test: the hybrid must beat physics-only and the black box on the held-out cells."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from hybrid.cli import main
from hybrid.quickstart import CONFIGS, REPORT, SUMMARY, quickstart
from sim.errors import ConfigError


def tiny_configs(folder: Path) -> Path:
    """The shipped quickstart configs, shrunk: 4 HPPC cells, 2 epochs, 4 trials."""
    folder.mkdir()
    corpus = yaml.safe_load((CONFIGS / "corpus.yaml").read_text())
    corpus["cells"] = 4
    corpus["protocols"] = [entry for entry in corpus["protocols"] if entry["protocol"]["kind"] == "hppc"]
    train = yaml.safe_load((CONFIGS / "train.yaml").read_text())
    train["splits"].update(val_fraction=0.25, test_fraction=0.25)
    train["train"]["epochs"] = 2
    train["evaluation"]["plots"] = False
    design = yaml.safe_load((CONFIGS / "design.yaml").read_text())
    design["optimiser"].update(trials=4, batch_size=2, startup_trials=2)
    design["verify"]["candidates"] = 1
    for name, payload in (("corpus", corpus), ("train", train), ("design", design)):
        (folder / f"{name}.yaml").write_text(yaml.safe_dump(payload))
    return folder


def test_quickstart_runs_every_stage_and_reports_their_numbers(tmp_path):
    out = tmp_path / "quick"
    lines: list[str] = []
    summary = quickstart(out, backend="serial", configs=tiny_configs(tmp_path / "configs"), say=lines.append)

    assert {"corpus", "run", "design", REPORT, SUMMARY} <= {path.name for path in out.iterdir()}
    assert [line.split(":")[0] for line in lines[::2]] == ["[1/4] corpus", "[2/4] train", "[3/4] evaluate",
                                                           "[4/4] design"]
    metrics = json.loads((out / "run" / "metrics.json").read_text())
    for split, models in metrics["splits"].items():
        assert set(models) == {"physics", "black_box", "gru", "floor"}
        assert summary["headline"][split] == {model: figures["rmse_mV"] for model, figures in models.items()}
        assert set(metrics["temperature"][split]) == {"physics", "black_box", "gru"}  # the temperature head
    report = (out / REPORT).read_text()
    assert f"| test | {metrics['splits']['test']['physics']['rmse_mV']:.1f} |" in report
    design = json.loads((out / "design" / "report.json").read_text())
    assert summary["design"]["reference_evaluations"] == design["reference_evaluations"] == 1
    assert summary["design"]["surrogate_evaluations"] == 4
    assert f"gru {metrics['temperature']['test']['gru']['rmse_K']:.2f}" in report
    assert "## Design loop" in report and "surrogate / reference" in report
    assert json.loads((out / SUMMARY).read_text())["headline"] == summary["headline"]


def test_quickstart_refuses_a_directory_that_holds_something(tmp_path, capsys):
    (tmp_path / "old.txt").write_text("a previous result")
    with pytest.raises(ConfigError, match="not empty"):
        quickstart(tmp_path, backend="serial")
    assert main(["quickstart", "--out", str(tmp_path), "--backend", "serial"]) == 2
    assert "--out" in capsys.readouterr().err
    assert (tmp_path / "old.txt").read_text() == "a previous result"


@pytest.mark.slow
@pytest.mark.ray
def test_full_quickstart_hybrid_beats_physics_and_black_box(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    assert main(["quickstart", "--out", str(tmp_path / "quick"), "--workers", "2"]) == 0
    test = json.loads((tmp_path / "quick" / SUMMARY).read_text())["headline"]["test"]
    assert test["gru"] < 0.5 * test["physics"]
    assert test["gru"] < test["black_box"]
    assert "| test |" in capsys.readouterr().out.splitlines()[-1]
