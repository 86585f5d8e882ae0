"""hybat export --format casadi: the one-step casadi.Function of every exportable model kind
equals the torch model over a smoke record (max |ΔV| <= 1e-6 V), the CLI exports a trained run,
and the file loads and runs with plain casadi (no torch, no hybat)."""

from __future__ import annotations

import json
import subprocess
import sys

import casadi
import numpy as np
import pytest
import torch

from hybrid.cli import main
from hybrid.data import TIME_STEP, Record, cell_inputs, decode_outputs, load_corpus
from hybrid.export import casadi_step, roll
from hybrid.models import build_model
from hybrid.train import NORMALISATION, TrainedModel, load_trained, read_run_file
from hybrid.train.run import _model_config
from sim.errors import ConfigError

TOLERANCE_V = 1e-6  # the bar: the export equals the torch model to 1e-6 V over a record

KINDS = {
    "rnn": ("hybrid", {"kind": "residual_rnn", "cell": "rnn", "hidden_size": 8, "layers": 2}),
    "gru": ("hybrid", {"kind": "residual_rnn", "cell": "gru", "hidden_size": 8, "layers": 2}),
    "lstm": ("hybrid", {"kind": "residual_rnn", "cell": "lstm", "hidden_size": 8, "layers": 2}),
    "black_box": ("black_box", {"kind": "black_box", "cell": "gru", "hidden_size": 8, "layers": 1}),
    "two_branch": ("hybrid", {"kind": "two_branch", "hidden_size": 8, "reversible_states": 4,
                              "irreversible_states": 2}),
    "context_concat": ("hybrid", {"kind": "context_residual", "cell": "gru", "hidden_size": 8, "layers": 1,
                                  "descriptor_size": 3, "encoder_channels": 4, "conditioning": "concat"}),
    "context_initial_state": ("hybrid", {"kind": "context_residual", "cell": "lstm", "hidden_size": 8, "layers": 2,
                                         "descriptor_size": 3, "encoder_channels": 4,
                                         "conditioning": "initial_state"}),
    "context_film": ("hybrid", {"kind": "context_residual", "cell": "gru", "hidden_size": 8, "layers": 1,
                                "descriptor_size": 3, "encoder_channels": 4, "conditioning": "film"}),
}


@pytest.fixture(scope="module")
def record(smoke_corpus_dir) -> Record:
    """A smoke record on the most varied time grid (an HPPC: pulses every 1 s, relaxations every
    10 s), so that the two-branch model's decay over Δt is tested on more than one step."""
    return max(load_corpus(smoke_corpus_dir).cells.values(),
               key=lambda cell: (len(np.unique(cell.column(TIME_STEP))), cell.rows))


def random_model(family: str, model: dict, normalisation: dict) -> TrainedModel:
    """A model of ``model``'s kind sized for the smoke run's features, with weights large enough
    that its state dynamics matter (no training), in double precision."""
    torch.manual_seed(0)
    network = build_model(_model_config(model, normalisation[family])).double().eval()
    with torch.no_grad():
        for parameter in network.parameters():
            parameter.normal_(0.0, 0.3)
    return TrainedModel(model["kind"], network, normalisation[family], model, [], 0)


def torch_estimates(trained: TrainedModel, record: Record):
    """decode_outputs of the torch model over the whole record, as the evaluation runs it."""
    inputs = torch.from_numpy(cell_inputs(record, trained.normalisation))[None]  # (1, time, features)
    dtype = next(trained.model.parameters()).dtype
    with torch.no_grad():
        outputs, _ = trained.model(inputs.to(dtype))
    return decode_outputs(outputs[0].double().numpy(), record, trained.normalisation)


def casadi_estimates(function: casadi.Function, trained: TrainedModel, record: Record) -> dict[str, np.ndarray]:
    return roll(function, {name: record.column(name) for name in trained.normalisation["features"]})


@pytest.mark.parametrize("kind", KINDS)
def test_each_exportable_kind_equals_the_torch_model_over_a_record(kind, smoke_run_dir, record):
    family, model = KINDS[kind]
    trained = random_model(family, model, read_run_file(smoke_run_dir / NORMALISATION))
    function = casadi_step(trained)
    expected = torch_estimates(trained, record)
    rolled = casadi_estimates(function, trained, record)
    # the inputs are the model's features by column name, then the state; the smoke run has an SOC head
    assert function.name_in() == [*trained.normalisation["features"], "state"]
    assert {"Voltage [V]", "State of charge", "next_state"} <= set(function.name_out())
    assert np.std(expected.voltage - record.columns["Physics voltage [V]"]) > 100 * TOLERANCE_V  # a real correction
    assert np.max(np.abs(rolled["Voltage [V]"] - expected.voltage)) <= TOLERANCE_V
    assert np.max(np.abs(rolled["State of charge"] - expected.soc)) <= 1e-6


@pytest.mark.parametrize("model", [None, "gru_context", "black_box"])
def test_cli_exports_a_trained_run_that_equals_its_checkpoint(model, smoke_run_dir, record, tmp_path, capsys):
    out = tmp_path / "residual.casadi"
    assert main(["export", str(smoke_run_dir), "--format", "casadi", "--out", str(out)]
                + (["--model", model] if model else [])) == 0
    name = model or "gru"
    assert capsys.readouterr().out.startswith(f"exported {name}_step: ")
    trained = load_trained(smoke_run_dir / name / "best.pt", name)  # float32, as trained
    rolled = casadi_estimates(casadi.Function.load(str(out)), trained, record)
    assert np.max(np.abs(rolled["Voltage [V]"] - torch_estimates(trained, record).voltage)) <= TOLERANCE_V


def test_cli_names_the_run_models_for_an_unknown_one(smoke_run_dir, tmp_path, capsys):
    code = main(["export", str(smoke_run_dir), "--format", "casadi", "--out", str(tmp_path / "f"), "--model", "x"])
    assert code == 2
    assert capsys.readouterr().err.strip().endswith("allowed: gru, gru-m1, gru_context, black_box")


PLAIN_CASADI = """
import json, sys
sys.modules["torch"] = sys.modules["hybrid"] = sys.modules["sim"] = None  # importing them fails
import casadi
step = casadi.Function.load(sys.argv[1])
rows = json.load(sys.stdin)
state = casadi.DM.zeros(step.size1_in("state"))
voltages = []
for row in rows:
    out = step.call({**row, "state": state})
    state = out["next_state"]
    voltages.append(float(out["Voltage [V]"]))
print(json.dumps(voltages))
"""


def test_the_file_runs_step_by_step_with_plain_casadi(smoke_run_dir, record, tmp_path):
    out = tmp_path / "gru.casadi"
    assert main(["export", str(smoke_run_dir), "--format", "casadi", "--out", str(out)]) == 0
    trained = load_trained(smoke_run_dir / "gru" / "best.pt", "gru")
    rows = 200
    inputs = [{name: float(record.column(name)[k]) for name in trained.normalisation["features"]} for k in range(rows)]
    result = subprocess.run([sys.executable, "-c", PLAIN_CASADI, str(out)], input=json.dumps(inputs), cwd=tmp_path,
                            check=False, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    expected = torch_estimates(trained, record).voltage[:rows]
    assert np.max(np.abs(np.array(json.loads(result.stdout)) - expected)) <= TOLERANCE_V


@pytest.mark.parametrize("model, message", [
    ({"kind": "residual_rnn", "cell": "gru", "hidden_size": 4, "layers": 1, "bidirectional": True}, "causal"),
    ({"kind": "forecaster", "hidden_size": 4}, "forecaster"),
])
def test_offline_and_rolling_models_are_refused(model, message, smoke_run_dir):
    trained = random_model("hybrid", model, read_run_file(smoke_run_dir / NORMALISATION))
    with pytest.raises(ConfigError, match=message):
        casadi_step(trained)
