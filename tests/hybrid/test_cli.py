"""The hybat command: every hybat error (a malformed config, a diverging training) gives one
clean line on stderr and exit code 2; a diverged training keeps its last good checkpoints."""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from hybrid.cli import _corpus_command, build_parser, main, metrics_table, supervise_driver
from sim.config import load_config
from sim.corpus.generate import CorpusSpec, generate_corpus
from sim.errors import (ConfigError, DataError, HybatError, InfeasibleDesign, SampleTimeout, SimulationError,
                        TrainingDiverged)

ROOT = Path(__file__).resolve().parents[2]
SMOKE_CORPUS = ROOT / "configs" / "corpus" / "smoke.yaml"
DIVERGING_RUN = {
    "name": "diverging",
    "splits": {"val_fraction": 0.25, "test_fraction": 0.25},
    "black_box": {"model": {"kind": "black_box", "cell": "gru", "hidden_size": 4, "layers": 1}},
    "train": {"epochs": 2, "batch_size": 4, "truncation_steps": 100, "learning_rate": 1e6},
}
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


@pytest.mark.parametrize("error_type", [HybatError, ConfigError, DataError, SimulationError, InfeasibleDesign,
                                        SampleTimeout, TrainingDiverged])
def test_every_hybat_error_gives_one_line_and_exit_code_2(tmp_path, capsys, monkeypatch, error_type):
    def fail(*args):
        raise error_type("first line\n  second line")

    monkeypatch.setattr("hybrid.train.train_run", fail)
    code = main(["train", str(tmp_path / "run.yaml"), "--corpus", str(tmp_path), "--out", str(tmp_path / "out")])
    assert code == 2
    assert capsys.readouterr().err == "hybat train: error: first line second line\n"


def test_help_lists_the_subcommands():
    result = subprocess.run([sys.executable, "-m", "hybrid.cli", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "simulate" in result.stdout


def test_simulate_writes_a_trajectory(tmp_path, capsys):
    config = {"cell": {"parameter_set": "OKane2022"}, "fidelity": "spm",
              "protocol": {"kind": "cycling", "cycles": 2, "period_s": 120}}
    out = tmp_path / "t.parquet"
    assert main(["simulate", str(_write(tmp_path, config)), "--out", str(out), "--json"]) == 0
    assert out.is_file() and '"cycles": 2' in capsys.readouterr().out


def test_evaluate_prints_every_model_per_test_held_out_first():
    scores = {"rmse_mV": 41.04, "rmse_soc_5_95_mV": 38.2, "soc_mae_pct": 1.234, "rows_scored": 9, "rows": 9}
    rows = [{"sample_id": 3, "file": "dyn/p15C.csv.gz", "ambient_temperature_degC": 15.0, "split": "test",
             "scores": {"physics_nominal": scores, "physics": scores, "gru": {**scores, "soc_mae_pct": None}}},
            {"sample_id": 0, "file": "dyn/p25C.csv.gz", "ambient_temperature_degC": 25.0, "split": "train",
             "scores": {"physics": scores, "gru": scores}}]
    table = metrics_table({"splits": {}, "per_test": rows}).split("per test")[1].splitlines()
    assert table[2] == "| test | T [°C] | split | physics_nominal | physics | gru |"
    assert table[4] == "| dyn/p15C.csv.gz | 15 | test | 41.0 / 38.2 / 1.23 | 41.0 / 38.2 / 1.23 | 41.0 / 38.2 / – |"
    assert table[5] == "| dyn/p25C.csv.gz | 25 | train | – | 41.0 / 38.2 / 1.23 | 41.0 / 38.2 / 1.23 |"
    assert "per test" not in metrics_table({"splits": {}})


def test_export_of_a_missing_corpus_gives_one_line_and_exit_code_2(tmp_path, capsys):
    code = main(["export", str(tmp_path / "nowhere"), "--format", "bdf", "--out", str(tmp_path / "bdf")])
    assert code == 2
    assert capsys.readouterr().err == f"hybat export: error: {tmp_path / 'nowhere'}: corpus directory not found\n"
    assert not (tmp_path / "bdf").exists()


@pytest.fixture(scope="module")
def smoke_corpus(tmp_path_factory, one_thread) -> Path:
    out = tmp_path_factory.mktemp("smoke") / "corpus"
    generate_corpus(load_config(SMOKE_CORPUS, CorpusSpec), out, progress=False)
    return out


def test_export_writes_one_bdf_table_per_sample_and_an_index(smoke_corpus, tmp_path, capsys):
    out = tmp_path / "bdf"
    assert main(["export", str(smoke_corpus), "--format", "bdf", "--out", str(out), "--table-format", "csv.gz"]) == 0
    assert capsys.readouterr().out.startswith("exported 4 samples as BDF .csv.gz tables")
    assert len(list(out.glob("sample-*.bdf.csv.gz"))) == 4 and (out / "index.json").is_file()


def test_a_diverging_training_gives_one_line_naming_the_learning_rate_and_keeps_the_checkpoints(tmp_path,
                                                                                              smoke_corpus):
    run_dir = tmp_path / "run"
    result = subprocess.run([sys.executable, "-m", "hybrid.cli", "train", str(_write(tmp_path, DIVERGING_RUN)),
                             "--corpus", str(smoke_corpus), "--out", str(run_dir)],
                            capture_output=True, text=True, cwd=ROOT)
    err = result.stderr.strip()
    assert result.returncode == 2, result.stderr
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert err.startswith("hybat train: error: model 'black_box'") and "training diverged" in err
    assert "lower learning_rate (now 1e+06)" in err
    # the loop diverged in its first epoch: last.pt and best.pt are the untrained model's, intact
    checkpoints = [torch.load(run_dir / "black_box" / name, weights_only=True) for name in ("last.pt", "best.pt")]
    for checkpoint in checkpoints:
        assert checkpoint["progress"]["epoch"] == 0 and checkpoint["progress"]["history"] == []
        assert math.isfinite(checkpoint["progress"]["best_val_loss"])
        assert all(torch.isfinite(tensor).all() for tensor in checkpoint["model_state"].values())
    for name, tensor in checkpoints[0]["model_state"].items():
        assert torch.equal(tensor, checkpoints[1]["model_state"][name])
    assert json.loads((run_dir / "black_box" / "history.json").read_text()) == []


# --- the supervised Ray corpus driver ---------------------------------------------------


def test_a_driver_that_ray_ended_is_reported_as_lost_infrastructure(tmp_path, capsys):
    journal = tmp_path / "samples"
    journal.mkdir()
    for index in (0, 1):
        (journal / f"part-{index:06d}.parquet").write_bytes(b"")
    died = [sys.executable, "-c", "import os; os._exit(1)"]  # what Ray does to a driver whose raylet died
    assert supervise_driver(died, tmp_path, "smoke", 4) == 3
    assert capsys.readouterr().err == ("hybat corpus: error: corpus smoke: 2 of 4 samples lost to infrastructure "
                                       "(the Ray driver exited with code 1); run again with --resume to redo them\n")


@pytest.mark.parametrize("code", [0, 2, 3])
def test_a_driver_that_finished_or_reported_itself_passes_its_exit_code_on(tmp_path, capsys, code):
    assert supervise_driver([sys.executable, "-c", f"import sys; sys.exit({code})"], tmp_path, "smoke", 4) == code
    assert capsys.readouterr().err == ""


def test_the_driver_runs_the_same_corpus_command(tmp_path):
    args = build_parser().parse_args(["-v", "corpus", "spec.yaml", "--out", str(tmp_path), "--backend", "ray",
                                      "--workers", "2", "--resume"])
    assert _corpus_command(args)[1:] == ["-m", "hybrid.cli", "-v", "corpus", "spec.yaml", "--out", str(tmp_path),
                                         "--backend", "ray", "--workers", "2", "--resume"]
