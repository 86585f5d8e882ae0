"""Smoke run of experiments/sim_to_real.py on three measured A123 tests with tiny settings."""

import json


from hybrid.train.recipes import FINETUNE_CANDIDATES
from tests.experiments.script import load_script
from tests.real_data import REAL_DATA, needs_a123

@needs_a123
def test_quick_run_scores_every_model_on_held_out_tests(tmp_path):
    experiment = load_script("sim_to_real")
    figures = experiment.main(["--data-dir", str(REAL_DATA), "--out", str(tmp_path / "out"), "--quick"])

    out = tmp_path / "out"
    for name in ("results.md", "figures.json", "held_out_errors.png", "data_efficiency.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    assert json.loads((out / "figures.json").read_text())["summary"].keys() == set(experiment.MODELS)
    table = (out / "results.md").read_text()
    for label in experiment.LABELS.values():
        assert label in table

    summary = figures["summary"]
    roles = {test["role"] for test in figures["tests"].values()}
    assert roles == {"train", "held_out"}
    # every model has a finite held-out voltage error
    for model in experiment.MODELS:
        assert 0.0 < summary[model]["held_out"]["rmse_mV"] < 1000.0, model
    # the ECM fits its own training tests far better than the nominal physics model (an ECM of
    # this kind gets ~5-11 mV inside 5-95 % SOC; nominal Prada2013 ~30-70 mV), and calibration helps
    assert summary["ecm"]["train"]["rmse_soc_5_95_mV"] < 15.0
    assert summary["ecm"]["train"]["rmse_soc_5_95_mV"] < summary["physics_nominal"]["train"]["rmse_soc_5_95_mV"]
    assert summary["physics_calibrated"]["held_out"]["rmse_mV"] < summary["physics_nominal"]["held_out"]["rmse_mV"]
    # SOC of the calibrated physics is coulomb counting with a calibrated capacity: within a few %
    assert summary["physics_calibrated"]["held_out"]["soc_mae_pct"] < 3.0
    # model selection ran on a training test, never on a held-out one, and chose a known recipe
    selection = figures["selection"]
    validation = [t for t in figures["tests"].values() if t["temperature_C"] == selection["validation_temp_C"]]
    assert [t["role"] for t in validation] == ["train"]
    assert selection["recipe"]["name"] in {"no fine-tuning", *(r.name for r in FINETUNE_CANDIDATES)}
    # fine-tuning for 0 epochs keeps the pretrained model; either way it starts from it
    if selection["epochs"]["hybrid_pretrained_finetuned"] == 0:
        assert summary["hybrid_pretrained_finetuned"] == summary["hybrid_pretrained_zero_shot"]
    # the data-efficiency curve has one point per number of training tests
    points = figures["data_efficiency"]["points"]
    assert [point["tests"] for point in points] == [1, 2]
