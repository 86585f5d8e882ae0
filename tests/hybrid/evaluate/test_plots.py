"""Facts about hybrid.evaluate.plots: on a tiny two-record prediction set, every plot is a PNG
file that exists and is not empty, and each panel draws one line per model."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
import pytest

from hybrid.data.columns import CURRENT, PHYSICS_VOLTAGE, TIME, VOLTAGE
from hybrid.data.corpus import Corpus, Record
from hybrid.data.splits import SplitAssignment
from hybrid.evaluate import plots
from hybrid.evaluate.predict import RecordPrediction
from hybrid.train.run import PHYSICS, EvaluationOptions

matplotlib.use("Agg")

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
ROWS = 120
MODELS = (PHYSICS, "gru", "lstm")


def record(sample_id: int) -> Record:
    """1 s pulses of 2 A then a rest over 120 s, two cycles; the plant sits 20 mV below the physics."""
    time_s = np.arange(ROWS, dtype=float)
    current = np.where(time_s < 60.0, 2.0, 0.0)
    physics = 3.8 - 0.002 * time_s
    cycles = {"Start time [s]": np.array([0.0, 60.0]), "End time [s]": np.array([60.0, 119.0])}
    return Record(sample_id, {TIME: time_s, CURRENT: current, PHYSICS_VOLTAGE: physics, VOLTAGE: physics - 0.02},
                  {}, 298.15, 2.0, cycles)


@pytest.fixture
def tiny():
    """(corpus, assignment, predictions, checks): records 0 (train) and 1 (test); physics and
    two hybrids, off the reference by 20, 5 and 2 mV."""
    cells = {sample_id: record(sample_id) for sample_id in (0, 1)}
    corpus = Corpus(None, None, cells, [], [])
    assignment = SplitAssignment({"train": {0: (0, ROWS)}, "test": {1: (0, ROWS)}}, {})
    offsets = {PHYSICS: 0.02, "gru": 0.005, "lstm": -0.002}
    predictions = {name: {i: RecordPrediction(cell.columns[VOLTAGE] + offset, None) for i, cell in cells.items()}
                   for name, offset in offsets.items()}
    checks = {1: [{"time_s": 0.0, "reference_Ah": 2.0, PHYSICS: 2.1, "gru": 2.02, "lstm": 1.99},
                  {"time_s": 3600.0, "reference_Ah": 1.9, PHYSICS: 2.1, "gru": 1.91, "lstm": 1.9}]}
    return corpus, assignment, predictions, checks


@pytest.fixture
def figures(monkeypatch) -> list:
    """Every Figure the plots module makes, in order."""
    made = []
    original = plots._figure

    def recording(*args, **kwargs):
        figure, axes = original(*args, **kwargs)
        made.append(figure)
        return figure, axes

    monkeypatch.setattr(plots, "_figure", recording)
    return made


def assert_png(path: Path) -> None:
    assert path.is_file() and path.stat().st_size > 1000
    assert path.read_bytes()[:8] == PNG_SIGNATURE


def test_write_plots_writes_the_four_report_pngs(tiny, tmp_path):
    corpus, assignment, predictions, checks = tiny
    written = plots.write_plots(corpus, assignment, predictions, checks, EvaluationOptions(), 0.5, tmp_path / "plots")
    assert written == ["voltage_overlay.png", "residual_scatter.png", "error_vs_cycle.png", "capacity_checks.png"]
    for name in written:
        assert_png(tmp_path / "plots" / name)


def test_report_plots_draw_one_line_per_model(tiny, tmp_path, figures):
    corpus, assignment, predictions, checks = tiny
    plots.write_plots(corpus, assignment, predictions, checks, EvaluationOptions(), 0.5, tmp_path)
    overlay, scatter, per_cycle, capacity = figures
    for axis in overlay.axes:   # the reference, then each model
        assert [line.get_label() for line in axis.lines] == ["reference", *MODELS]
        assert "sample 1 (test)" in axis.get_title()   # the first record of the test split
    assert [axis.get_title() for axis in scatter.axes] == ["gru (test)", "lstm (test)"]  # hybrids only
    assert [line.get_label() for line in per_cycle.axes[0].lines] == list(MODELS)
    assert [line.get_label() for line in capacity.axes[0].lines] == ["reference", *MODELS]
    # RMSE per cycle [mV]: each model's constant offset, in both cycles
    for line, offset_mV in zip(per_cycle.axes[0].lines, (20.0, 5.0, 2.0)):
        np.testing.assert_allclose(line.get_ydata(), offset_mV, rtol=1e-9)


def test_without_hybrids_or_checks_those_plots_are_left_out(tiny, tmp_path):
    corpus, assignment, predictions, _ = tiny
    written = plots.write_plots(corpus, assignment, {PHYSICS: predictions[PHYSICS]}, {}, EvaluationOptions(), 0.5,
                                tmp_path)
    assert written == ["voltage_overlay.png", "error_vs_cycle.png"]
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(written)


def test_error_traces_draw_one_panel_per_record_and_one_line_per_model(tiny, tmp_path, figures):
    corpus, _, predictions, _ = tiny
    path = plots.error_traces(corpus, predictions, [0, 1], {0: "first", 1: "second"}, tmp_path / "errors.png",
                              limit_mV=50.0)
    assert path == tmp_path / "errors.png"
    assert_png(path)
    figure, = figures
    assert [axis.get_title() for axis in figure.axes] == ["first", "second"]
    for axis in figure.axes:
        assert [line.get_label() for line in axis.lines] == list(MODELS)
        assert axis.get_ylim() == (-50.0, 50.0)
        np.testing.assert_allclose(axis.lines[1].get_ydata(), 5.0, rtol=1e-9)   # gru: +5 mV


def test_curve_plot_draws_each_series_with_error_bars_and_each_reference_line(tmp_path, figures):
    path = plots.curve_plot([1, 2, 4], {"hybrid": ([30.0, 20.0, 10.0], [2.0, None, 1.0]),
                                        "black box": ([60.0, 40.0, 25.0], [None, None, None])},
                            {"physics": 45.0, "ecm": 50.0}, ("cells", "RMSE [mV]"), tmp_path / "curve.png")
    assert_png(path)
    figure, = figures
    axis = figure.axes[0]
    assert len(axis.containers) == 2   # one errorbar container per series
    assert [line.get_label() for line in axis.lines if line.get_label() in ("physics", "ecm")] == ["physics", "ecm"]
    assert (axis.get_xlabel(), axis.get_ylabel()) == ("cells", "RMSE [mV]")
    assert list(axis.get_xticks()) == [1, 2, 4]
