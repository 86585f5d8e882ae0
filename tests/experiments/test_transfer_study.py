"""experiments/transfer_study.py: bad options are one-line errors; a --quick run on the A123 tests
(one fold, ~30 s) scores every model on the held-out test without letting it into any step."""

import json

import pandas as pd
import pytest

from hybrid.transfer import COLUMNS, CURVE, VARIANTS
from hybrid.transfer.tables import CONTEXT_VARIANT
from sim.errors import ConfigError
from tests.experiments.script import load_script
from tests.real_data import REAL_DATA, needs_a123

@pytest.mark.parametrize(("argv", "message"), [
    (["--dataset", "samsung30q", "--folds", "loto"], "--folds loto: allowed for samsung30q: loco"),
    (["--dataset", "a123", "--seeds", "0"], "--seeds 0: allowed: a positive number"),
    (["--dataset", "a123", "--validation", "5"], "--validation 5: allowed only with --held-out"),
    (["--dataset", "a123", "--set", "features.soc_heat=false"], "unknown key 'features.soc_heat'"),
    (["--dataset", "a123", "--corpus-set", "cellz=3"], "unknown key 'cellz'"),
    (["--dataset", "a123", "--synthetic-cells", "0"], "--synthetic-cells 0: allowed: a positive number"),
])
def test_bad_options_name_the_option(argv, message, tmp_path):
    experiment = load_script("transfer_study")
    with pytest.raises(ConfigError, match=message):
        experiment.main([*argv, "--out", str(tmp_path)])


def quick_a123_run(tmp_path, *options):
    """A --quick transfer study on the shared A123 tests: its figures and its output folder."""
    out = tmp_path / "out"
    figures = load_script("transfer_study").main(["--dataset", "a123", "--data-dir", str(REAL_DATA), "--out", str(out),
                                                  "--quick", *options])
    return figures, out


@pytest.mark.slow
@needs_a123
def test_quick_run_scores_every_model_on_a_held_out_test_it_never_saw(tmp_path):
    figures, out = quick_a123_run(tmp_path, "--curve")

    assert (out / "results.md").is_file() and json.loads((out / "figures.json").read_text())["tests"]
    [fold] = figures["folds"]
    [row] = figures["tests"]
    assert row["file"] in fold["test_files"] and fold["calibration_file"] not in fold["test_files"]
    context = {column for column, (variant, _) in COLUMNS.items() if variant == CONTEXT_VARIANT}
    assert not context & row.keys()  # no context run without --context-window-s
    for column in COLUMNS.keys() - context:  # every model scored, with a plausible error (tens to ~200 mV at -25 degC)
        assert 1.0 < row[column]["rmse_soc_5_95_mV"]["mean"] < 500.0, column
    # the synthetic corpus replays the training and validation tests' currents only
    work = out / "work" / f"code_{figures['code']}"  # the runs of this code
    samples = pd.read_parquet(next((work / "paired").iterdir()) / "samples.parquet").set_index("file")
    held_out_ids = {int(samples.loc[file, "sample_id"]) for file in fold["test_files"]}
    replayed = {int(path.stem.removeprefix("test_")) for path in work.glob("synthetic/*/*/profiles/test_*.csv")}
    assert replayed and not replayed & held_out_ids
    # every run trains and validates on other tests, and the zero-shot hybrid is the pretrained one
    for variant in VARIANTS:
        [summary] = work.glob(f"runs/*/*/{fold['name']}/seed0/{variant}/summary.json")
        splits = json.loads(summary.read_text())["splits"]
        assert set(splits["test"]) == held_out_ids and not held_out_ids & {*splits["train"], *splits["val"]}
    assert row["zero_shot"]["rmse_soc_5_95_mV"]["mean"] != row["hybrid_scratch"]["rmse_soc_5_95_mV"]["mean"]
    # the curve trains on the first k training tests, calibration test first, and ends with the full runs
    curve = figures["curve"]
    assert [point["train_tests"] for point in curve] == list(range(1, len(fold["train_files"]) + 1))
    assert curve[0]["added"] == fold["calibration_file"]
    assert sorted(point["added"] for point in curve) == sorted(fold["train_files"])
    assert curve[-1]["fine_tuned"]["mean"] == pytest.approx(row["fine_tuned"]["rmse_soc_5_95_mV"]["mean"])
    for point in curve[:-1]:
        for variant in CURVE:
            [summary] = work.glob(f"runs/*/*/{fold['name']}/seed0/first{point['train_tests']}_{variant}/summary.json")
            splits = json.loads(summary.read_text())["splits"]
            added = [point["added"] for point in curve[:point["train_tests"]]]
            assert sorted(splits["train"]) == sorted(int(samples.loc[file, "sample_id"]) for file in added)


@pytest.mark.slow
@needs_a123
def test_quick_run_with_a_context_scores_zero_shot_with_context_after_the_context(tmp_path):
    figures, out = quick_a123_run(tmp_path, "--context-window-s", "3600")

    [fold] = figures["folds"]
    [row] = figures["tests"]
    for column in ("physics_after_context", "zero_shot_context"):
        assert 1.0 < row[column]["rmse_soc_5_95_mV"]["mean"] < 500.0, column
    # the first hour is context, scored for no model: the physics is scored on fewer rows
    assert row["physics_after_context"]["rmse_soc_5_95_mV"]["mean"] != row["physics"]["rmse_soc_5_95_mV"]["mean"]
    [run] = (out / "work" / f"code_{figures['code']}").glob(f"runs/*/*/{fold['name']}/seed0/zero_shot_context3600s")
    config = json.loads((run / "run_config.json").read_text())
    assert [model["model"]["kind"] for model in config["models"]] == ["context_residual"]
    assert "zero-shot with context" in (out / "results.md").read_text()
