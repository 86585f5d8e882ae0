"""Facts about features and targets: online features only, train-only normalisation, zero
current maps to a zero feature, the temperature head's target is the reference minus the physics
temperature and decodes back to the reference."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from hybrid.data.columns import CURRENT, PHYSICS_VOLTAGE
from hybrid.data.features import (
    FeatureOptions,
    cell_inputs,
    cell_targets,
    check_online,
    decode_outputs,
    fit_normalisation,
)
from hybrid.data.splits import SplitOptions, assign_splits
from sim.config import validate
from sim.errors import ConfigError, DataError
from tests.hybrid.data.test_corpus import TRUTH
from tests.hybrid.data.test_splits import ALL_SPLITS


@pytest.mark.parametrize("family", ["hybrid", "black_box"])
def test_features_are_online_only(corpus, family):
    assignment = assign_splits(corpus, ALL_SPLITS)
    normalisation = fit_normalisation(corpus, assignment, FeatureOptions(), family)
    features = normalisation["features"] + normalisation["dropped_features"]
    for name in features:
        check_online(name)
        assert name not in TRUTH and not name.startswith("scale_")
    has_physics = any(name.startswith("Physics ") for name in features)
    assert has_physics == (family == "hybrid")
    # inputs do not move when every reference-truth and scale value does
    cell = corpus.cells[assignment.sample_ids("train")[0]]
    altered = dataclasses.replace(cell, columns={name: values + (1.0 if name in TRUTH else 0.0)
                                                 for name, values in cell.columns.items()})
    np.testing.assert_array_equal(cell_inputs(altered, normalisation), cell_inputs(cell, normalisation))


@pytest.mark.parametrize("name", ["Voltage [V]", "State of charge", "Loss of lithium inventory [%]",
                                  "scale_Negative particle diffusivity [m2.s-1]", "Cell temperature [K]"])
def test_truth_and_scale_columns_are_refused_as_features(name):
    with pytest.raises(DataError, match="not known online"):
        check_online(name)
    with pytest.raises(ConfigError, match="physics_columns"):
        validate(FeatureOptions, {"physics_columns": [name]}, "features")


def test_normalisation_uses_the_train_split_only(corpus):
    assignment = assign_splits(corpus, ALL_SPLITS)
    before = fit_normalisation(corpus, assignment, FeatureOptions(), "hybrid")
    held_out = [i for name in assignment.names() if name != "train" for i in assignment.sample_ids(name)]
    late = assignment.ranges["late_life"]
    changed = dict(corpus.cells)
    for i in set(held_out) - set(assignment.sample_ids("train")):
        columns = {name: values * 7.0 + 3.0 for name, values in corpus.cells[i].columns.items()}
        changed[i] = dataclasses.replace(corpus.cells[i], columns=columns)
    for i in assignment.sample_ids("train"):  # the late-life rows of train cells do not count either
        start = late[i][0]
        columns = {name: np.r_[values[:start], values[start:] * 7.0 + 3.0] if name != "Time [s]" else values
                   for name, values in corpus.cells[i].columns.items()}
        changed[i] = dataclasses.replace(corpus.cells[i], columns=columns)
    after = fit_normalisation(dataclasses.replace(corpus, cells=changed), assignment, FeatureOptions(), "hybrid")
    assert after == before
    train_id = assignment.sample_ids("train")[0]
    changed[train_id] = dataclasses.replace(changed[train_id], columns={
        name: values * (2.0 if name == PHYSICS_VOLTAGE else 1.0) for name, values in changed[train_id].columns.items()})
    moved = fit_normalisation(dataclasses.replace(corpus, cells=changed), assignment, FeatureOptions(), "hybrid")
    assert moved["feature_mean"] != before["feature_mean"]


def test_zero_current_is_a_zero_feature_and_constant_features_are_dropped(corpus):
    assignment = assign_splits(corpus, ALL_SPLITS)
    normalisation = fit_normalisation(corpus, assignment, FeatureOptions(), "hybrid")
    index = normalisation["current_index"]
    assert normalisation["features"][index] == CURRENT and normalisation["feature_mean"][index] == 0.0
    for i in corpus.sample_ids:
        cell = corpus.cells[i]
        inputs = cell_inputs(cell, normalisation)
        resting = cell.columns[CURRENT] == 0.0
        assert resting.any()
        assert np.all(inputs[resting, index] == 0.0)
        assert np.all(np.sign(inputs[~resting, index]) == np.sign(cell.columns[CURRENT][~resting]))
    # one ambient temperature in training (the hot cells are held out): nothing to learn from
    assert "Ambient temperature [K]" in normalisation["dropped_features"]
    assert "Physics cell temperature [K]" in normalisation["dropped_features"]


@pytest.mark.parametrize("family", ["hybrid", "black_box"])
def test_temperature_head_targets_the_temperature_residual_and_decodes_back(corpus, family):
    assignment = assign_splits(corpus, SplitOptions(val_fraction=0.25, test_fraction=0.25))
    normalisation = fit_normalisation(corpus, assignment, FeatureOptions(soc_head=True, temperature_head=True), family)
    cell = corpus.cells[assignment.sample_ids("test")[0]]
    reference, physics = cell.columns["Cell temperature [K]"], cell.columns["Physics cell temperature [K]"]
    if family == "hybrid":
        assert normalisation["targets"][-1] == "Cell temperature residual [K]"
        np.testing.assert_array_equal(cell.column("Cell temperature residual [K]"), reference - physics)
        assert np.ptp(reference - physics) > 1.0  # the synthetic plant heats with current, the physics does not
    else:
        assert normalisation["targets"][-1] == "Cell temperature [K]"
    targets = cell_targets(cell, normalisation)  # (rows, 3): voltage, SOC, temperature
    assert targets.shape == (cell.rows, 3)
    mean, std = normalisation["target_mean"][-1], normalisation["target_std"][-1]
    expected = reference - (physics if family == "hybrid" else 0.0)
    np.testing.assert_allclose(targets[:, -1] * std + mean, expected, atol=1e-4)
    decoded = decode_outputs(targets.astype(float), cell, normalisation)
    np.testing.assert_allclose(decoded.temperature_K, reference, atol=1e-4)
    np.testing.assert_allclose(decoded.voltage, cell.columns["Voltage [V]"], atol=1e-5)
    np.testing.assert_allclose(decoded.soc, cell.columns["State of charge"], atol=1e-5)
    without = fit_normalisation(corpus, assignment, FeatureOptions(), family)
    assert decode_outputs(cell_targets(cell, without).astype(float), cell, without).temperature_K is None
