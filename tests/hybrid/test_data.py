"""Facts about corpus -> tensors: splits by cell, late life held out of training, online
features only, train-only normalisation, zero current maps to a zero feature, the temperature
head's target is the reference minus the physics temperature and decodes back to the reference.

The corpus here is synthetic, written with pandas in the on-disk contract format (no
simulation), so every test runs in milliseconds.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from hybrid.data.corpus import (
    CELL_SPLITS,
    CURRENT,
    PHYSICS_VOLTAGE,
    FeatureOptions,
    LateLifeSplit,
    SplitAssignment,
    SplitOptions,
    UnseenDesignSplit,
    UnseenTemperatureSplit,
    assign_splits,
    cell_inputs,
    cell_targets,
    check_online,
    decode_outputs,
    fit_normalisation,
    load_corpus,
    make_batches,
)
from sim.config import validate
from sim.errors import ConfigError, DataError

CELLS = 12
AGEING_CYCLES = 6
TEMPERATURES = (288.15, 308.15)
TRUTH = ("Voltage [V]", "Cell temperature [K]", "State of charge", "Loss of lithium inventory [%]",
         "X-averaged negative SEI thickness [m]")


def _series(sample_id: int, rng: np.random.Generator, ambient: float) -> tuple[dict, dict]:
    """One cell: AGEING_CYCLES blocks of 1 s pulses, a rest and 120 s cycling; returns series and cycles."""
    time, current, tags, starts, ends = [], [], [], [], []
    clock = 0.0
    for cycle in range(AGEING_CYCLES):
        starts.append(clock)
        for step, amps in [(1.0, 10.0)] * 10 + [(1.0, 0.0)] * 20 + [(120.0, 5.0)] * 15 + [(120.0, -2.5)] * 30:
            time.append(clock)
            current.append(amps)
            clock += step
        ends.append(clock - 120.0)
        tags.append("cycle")
    time, current = np.array(time), np.array(current) + rng.normal(0, 0.01, len(time)) * (np.array(current) != 0)
    charge = np.cumsum(np.r_[0.0, current[:-1] * np.diff(time)]) / 3600.0
    physics_soc = 0.9 - charge / 5.0
    physics_voltage = 3.4 + 0.7 * physics_soc - 0.01 * current
    ageing = np.linspace(0.0, 1.0, len(time))
    residual = -0.004 * current - 0.03 * ageing + 0.002 * rng.normal(size=len(time))
    series = {
        "sample_id": np.full(len(time), sample_id), "Time [s]": time, "Current [A]": current,
        "Ambient temperature [K]": np.full(len(time), ambient), "Voltage [V]": physics_voltage + residual,
        "Cell temperature [K]": ambient + 0.1 * np.abs(current), "Discharge capacity [A.h]": charge,
        "State of charge": physics_soc - 0.01 * ageing, "Loss of lithium inventory [%]": ageing,
        "X-averaged negative SEI thickness [m]": 1e-8 * (1 + ageing),
        "Physics voltage [V]": physics_voltage, "Physics cell temperature [K]": np.full(len(time), ambient),
        "Physics state of charge": physics_soc, "Physics loss of lithium inventory [%]": 0.5 * ageing,
    }
    cycles = {"sample_id": np.full(2 * len(tags), sample_id),
              "Source": ["reference"] * len(tags) + ["physics"] * len(tags),
              "Cycle number": list(range(1, len(tags) + 1)) * 2, "Tag": tags * 2,
              "Start time [s]": starts * 2, "End time [s]": ends * 2}
    return series, cycles


def write_corpus(path: Path, temperatures: tuple[float, ...] = TEMPERATURES, cells: int = CELLS) -> Path:
    """A corpus in the contract format: ``cells`` usable samples plus one failed sample."""
    rng = np.random.default_rng(0)
    (path / "series").mkdir(parents=True)
    (path / "cycles").mkdir()
    records = []
    for sample_id in range(cells):
        ambient = temperatures[sample_id % len(temperatures)]
        series, cycles = _series(sample_id, rng, ambient)
        pd.DataFrame(series).to_parquet(path / "series" / f"part-{sample_id:06d}.parquet")
        pd.DataFrame(cycles).to_parquet(path / "cycles" / f"part-{sample_id:06d}.parquet")
        records.append({"sample_id": sample_id, "status": "ok", "message": "",
                        "design_negative_porosity": 0.2 + 0.01 * sample_id,
                        "scale_Negative particle diffusivity [m2.s-1]": float(rng.lognormal(0, 0.3)),
                        "ambient_temperature_K": ambient, "protocol_kind": "ageing_campaign",
                        "capacity_Ah": 5.0, "physics_capacity_Ah": 5.0})
    records.append({"sample_id": cells, "status": "failed", "message": "reference: solver failed",
                    "design_negative_porosity": 0.25, "scale_Negative particle diffusivity [m2.s-1]": 1.0,
                    "ambient_temperature_K": temperatures[0], "protocol_kind": "ageing_campaign",
                    "capacity_Ah": np.nan, "physics_capacity_Ah": np.nan})
    pd.DataFrame(records).to_parquet(path / "samples.parquet")
    return path


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return load_corpus(write_corpus(tmp_path_factory.mktemp("corpus")))


ALL_SPLITS = SplitOptions(seed=1, val_fraction=0.25, test_fraction=0.25, late_life=LateLifeSplit(after_cycle=4),
                          unseen_design=UnseenDesignSplit(variable="negative_porosity", quantile=0.8),
                          unseen_temperature=UnseenTemperatureSplit())


def test_failed_samples_are_skipped(corpus):
    assert corpus.sample_ids == list(range(CELLS))


def test_splits_never_share_a_cell_and_late_life_rows_never_reach_training(corpus):
    assignment = assign_splits(corpus, ALL_SPLITS)
    cell_splits = [name for name in assignment.names() if name != "late_life"]
    assert set(cell_splits) == {"train", "val", "test", "unseen_design", "unseen_temperature"}
    for k, first in enumerate(cell_splits):
        for second in cell_splits[k + 1:]:
            assert not set(assignment.sample_ids(first)) & set(assignment.sample_ids(second)), (first, second)
    assert sorted(i for name in cell_splits for i in assignment.sample_ids(name)) == corpus.sample_ids
    late = assignment.ranges["late_life"]
    assert set(late) == {i for name in CELL_SPLITS for i in assignment.sample_ids(name)}
    ends = corpus.cells[0].ageing_cycle_ends()
    for sample_id, (start, stop) in late.items():
        cell = corpus.cells[sample_id]
        train_like = next(assignment.ranges[name][sample_id] for name in CELL_SPLITS
                          if sample_id in assignment.ranges[name])
        assert train_like == (0, start) and stop == cell.rows
        assert cell.columns["Time [s]"][start - 1] <= ends[3] < cell.columns["Time [s]"][start]
    normalisation = fit_normalisation(corpus, assignment, FeatureOptions(), "hybrid")
    batches = make_batches(corpus, assignment.ranges["train"], normalisation, batch_size=2)
    lengths = sorted(int(length) for batch in batches for length in batch.mask.sum(dim=1))
    assert lengths == sorted(late[i][0] for i in assignment.sample_ids("train"))


def test_out_of_distribution_splits_hold_out_the_right_cells(corpus):
    assignment = assign_splits(corpus, ALL_SPLITS)
    hot = {i for i in corpus.sample_ids if corpus.cells[i].ambient_temperature_K == max(TEMPERATURES)}
    assert set(assignment.sample_ids("unseen_temperature")) == hot
    porosity = {i: corpus.cells[i].design["design_negative_porosity"] for i in corpus.sample_ids}
    threshold = np.quantile(list(porosity.values()), 0.8)
    beyond = {i for i in corpus.sample_ids if porosity[i] > threshold}
    assert set(assignment.sample_ids("unseen_design")) == beyond - hot
    trained_on = set(assignment.sample_ids("train"))
    assert all(corpus.cells[i].ambient_temperature_K != max(TEMPERATURES) for i in trained_on)
    assert all(porosity[i] <= threshold for i in trained_on)


def test_empty_splits_are_omitted(tmp_path):
    single = load_corpus(write_corpus(tmp_path / "single", temperatures=(298.15,), cells=6))
    assignment = assign_splits(single, SplitOptions(late_life=LateLifeSplit(after_cycle=AGEING_CYCLES),
                                                    unseen_temperature=UnseenTemperatureSplit()))
    assert "unseen_temperature" not in assignment.ranges and "late_life" not in assignment.ranges
    assert set(assignment.names()) == {"train", "val", "test"}


def test_split_assignment_round_trips_through_json(corpus):
    assignment = assign_splits(corpus, ALL_SPLITS)
    assert SplitAssignment.from_dict(json.loads(json.dumps(assignment.to_dict()))) == assignment


def test_splits_are_reproducible_and_depend_on_the_seed(corpus):
    options = SplitOptions(seed=3, val_fraction=0.25, test_fraction=0.25)
    assert assign_splits(corpus, options) == assign_splits(corpus, options)
    other = assign_splits(corpus, options.model_copy(update={"seed": 4}))
    assert other.sample_ids("train") != assign_splits(corpus, options).sample_ids("train")


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


def test_batches_pad_with_a_false_mask(corpus):
    assignment = assign_splits(corpus, SplitOptions(val_fraction=0.25, test_fraction=0.25,
                                                    late_life=LateLifeSplit(after_cycle=2)))
    normalisation = fit_normalisation(corpus, assignment, FeatureOptions(soc_head=True), "black_box")
    ranges = {**assignment.ranges["late_life"]}
    batch = make_batches(corpus, ranges, normalisation, batch_size=len(ranges))[0]
    for row, (sample_id, (start, stop)) in enumerate(sorted(ranges.items(), key=lambda item: (item[1][1], item[0]))):
        assert not batch.mask[row, :start].any() and batch.mask[row, start:stop].all()
        assert not batch.mask[row, stop:].any() and torch.all(batch.inputs[row, stop:] == 0)
    assert batch.targets.shape[-1] == 2  # voltage and SOC


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


def test_rows_where_the_physics_solve_fails_are_masked_and_ignored(tmp_path):
    path = write_corpus(tmp_path / "broken", cells=6)
    part = path / "series" / "part-000002.parquet"
    frame = pd.read_parquet(part)
    frame.loc[100:120, PHYSICS_VOLTAGE] = 1.5e3
    frame.loc[121, PHYSICS_VOLTAGE] = np.nan
    frame.to_parquet(part)
    broken = load_corpus(path)
    ranges = {i: (0, broken.cells[i].rows) for i in broken.sample_ids}
    assignment = SplitAssignment({"train": ranges, "val": {0: ranges[0]}}, {})
    normalisation = fit_normalisation(broken, assignment, FeatureOptions(), "hybrid")
    voltage = normalisation["features"].index(PHYSICS_VOLTAGE)
    assert 3.0 < normalisation["feature_mean"][voltage] < 4.2 and normalisation["feature_std"][voltage] < 1.0
    batch = make_batches(broken, {2: ranges[2]}, normalisation, batch_size=1)[0]
    assert not batch.mask[0, 100:122].any() and batch.mask[0, :100].all()
    assert torch.isfinite(batch.inputs).all() and batch.inputs.abs().max() <= 20.0


def test_bad_split_options_name_the_field(corpus):
    with pytest.raises(ConfigError, match="unseen_design.variable = 'thickness'.*negative_porosity"):
        assign_splits(corpus, SplitOptions(unseen_design=UnseenDesignSplit(variable="thickness")))
    with pytest.raises(ConfigError, match="held_out_K: 300"):
        assign_splits(corpus, SplitOptions(unseen_temperature=UnseenTemperatureSplit(held_out_K=[300.0])))
    with pytest.raises(ConfigError, match="val_fraction"):
        validate(SplitOptions, {"val_fraction": 0.6, "test_fraction": 0.5}, "splits")
