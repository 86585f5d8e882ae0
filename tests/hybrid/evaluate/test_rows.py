"""Facts about which rows are scored and their classes: the timescale classes partition a record,
scored rows stay inside their range and skip invalid rows, and the physics model alone has the
physics residual as its error in every row class."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hybrid.data.columns import CURRENT, PHYSICS_VOLTAGE, TIME, VOLTAGE
from hybrid.data.corpus import Record, Corpus, load_corpus
from hybrid.data.features import FeatureOptions, fit_normalisation
from hybrid.data.splits import assign_splits
from hybrid.evaluate.rows import (LATE_AFTER_CYCLE, class_errors, class_rmse_mV, held_out_class_rmse_mV, physics_model,
                                  row_class_splits, scored_rows, timescale_masks)
from hybrid.train.run import EvaluationOptions


def record(time_s: list[float], current_A: list[float], residual_V: list[float], capacity_Ah: float = 2.0) -> Record:
    physics = np.full(len(time_s), 3.3)
    return Record(0, {TIME: np.array(time_s), CURRENT: np.array(current_A), PHYSICS_VOLTAGE: physics,
                    VOLTAGE: physics + np.array(residual_V)}, {}, 298.15, capacity_Ah, {})


def test_timescale_classes_partition_the_record():
    # rest below 0.02 C = 0.04 A; the fast grid is steps of at most 2 s
    cell = record([0, 1, 2, 3, 13, 23], [0.0, 2.0, 2.0, 0.01, 2.0, 2.0], [0.0] * 6)
    masks = timescale_masks(cell, EvaluationOptions(rest_c_rate=0.02, fast_step_s=2.0))
    assert np.flatnonzero(masks["pulse"]).tolist() == [1, 2]
    assert np.flatnonzero(masks["rest"]).tolist() == [0, 3]
    assert np.flatnonzero(masks["sustained"]).tolist() == [4, 5]
    assert np.all(masks["pulse"].astype(int) + masks["rest"] + masks["sustained"] == 1)


def test_scored_rows_stay_inside_the_range_and_skip_invalid_rows():
    cell = record([0, 1, 2, 3, 4], [1.0] * 5, [0.0, 0.0, 2.0, 0.0, 0.0])  # row 2: physics 2 V off
    corpus = Corpus(None, None, {0: cell}, [], [])
    assert scored_rows(corpus, {0: (1, 4)}, max_residual_V=0.5)[0].tolist() == [False, True, False, True, False]


@pytest.fixture(scope="module")
def smoke(smoke_corpus_dir):
    corpus = load_corpus(smoke_corpus_dir)
    assignment = assign_splits(corpus, row_class_splits(seed=0))
    return corpus, assignment, fit_normalisation(corpus, assignment, FeatureOptions(), "hybrid")


def test_row_class_splits_hold_out_test_cells_and_late_life():
    splits = row_class_splits(seed=3)
    assert (splits.seed, splits.val_fraction, splits.test_fraction) == (3, 0.2, 0.2)
    assert splits.late_life.after_cycle == LATE_AFTER_CYCLE


def test_physics_model_errors_are_the_physics_residual_in_every_class(smoke):
    corpus, assignment, normalisation = smoke
    errors = class_errors(physics_model(normalisation), corpus, assignment, "test")
    expected = []
    for sample_id, (start, stop) in sorted(assignment.ranges["test"].items()):
        cell = corpus.cells[sample_id]
        rows = np.zeros(cell.rows, dtype=bool)
        rows[start:stop] = True
        rows &= cell.valid_rows(normalisation["max_residual_V"])
        expected.append((cell.columns[PHYSICS_VOLTAGE] - cell.columns[VOLTAGE])[rows])
    np.testing.assert_allclose(errors["all"], np.concatenate(expected), atol=1e-5)  # float32 zero residual
    assert 0 < errors["fast"].size + errors["rest"].size <= errors["all"].size and errors["late"].size == 0
    rmse = class_rmse_mV(errors)
    assert math.isnan(rmse["late"]) and rmse["all"] > 0
    held_out = held_out_class_rmse_mV(physics_model(normalisation), corpus, assignment)
    assert held_out["all"] == pytest.approx(rmse["all"]) and math.isnan(held_out["late"])  # no ageing in smoke
