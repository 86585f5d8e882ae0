"""Facts about splits: by cell, never sharing a cell; late life held out of training; out-of-
distribution splits hold out the right cells; cells chosen by a samples column go where they
are named; reproducible with the seed; bad options named."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from hybrid.data.batch import make_batches
from hybrid.data.corpus import load_corpus
from hybrid.data.features import FeatureOptions, fit_normalisation
from hybrid.data.splits import (
    CELL_SPLITS,
    ByColumnSplit,
    LateLifeSplit,
    SplitAssignment,
    SplitOptions,
    UnseenDesignSplit,
    UnseenTemperatureSplit,
    assign_splits,
)
from sim.config import validate
from sim.errors import ConfigError
from tests.hybrid.data.test_corpus import AGEING_CYCLES, TEMPERATURES, write_corpus

ALL_SPLITS = SplitOptions(seed=1, val_fraction=0.25, test_fraction=0.25, late_life=LateLifeSplit(after_cycle=4),
                          unseen_design=UnseenDesignSplit(variable="negative_porosity", quantile=0.8),
                          unseen_temperature=UnseenTemperatureSplit())


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


def test_bad_split_options_name_the_field(corpus):
    with pytest.raises(ConfigError, match="unseen_design.variable = 'thickness'.*negative_porosity"):
        assign_splits(corpus, SplitOptions(unseen_design=UnseenDesignSplit(variable="thickness")))
    with pytest.raises(ConfigError, match="held_out_K: 300"):
        assign_splits(corpus, SplitOptions(unseen_temperature=UnseenTemperatureSplit(held_out_K=[300.0])))
    with pytest.raises(ConfigError, match="val_fraction"):
        validate(SplitOptions, {"val_fraction": 0.6, "test_fraction": 0.5}, "splits")


def test_cells_chosen_by_a_samples_column_go_where_they_are_named(corpus):
    options = SplitOptions(by_column=ByColumnSplit(column="ambient_temperature_K", test=[308.15], val=[288.15]))
    with pytest.raises(ConfigError, match="leaves no training cell"):
        assign_splits(corpus, options)
    options = SplitOptions(by_column=ByColumnSplit(column="sample_id", test=[1.0, 3.0], val=[0.0]))
    assignment = assign_splits(corpus, options)
    assert assignment.sample_ids("test") == [1, 3] and assignment.sample_ids("val") == [0]
    assert assignment.sample_ids("train") == [i for i in corpus.sample_ids if i not in (0, 1, 3)]
    listed = assign_splits(corpus, SplitOptions(by_column=ByColumnSplit(column="sample_id", test=[1.0, 3.0],
                                                                         val=[0.0], train=[4.0, 2.0])))
    assert listed.sample_ids("train") == [2, 4] and listed.sample_ids("test") == [1, 3]  # the others unused
    named = dataclasses.replace(corpus, samples=corpus.samples.assign(
        file=[f"dyn/cell_{i}_{'hot' if i % 4 == 0 else 'cold'}.csv" for i in corpus.samples.index]))
    by_text = assign_splits(named, SplitOptions(by_column=ByColumnSplit(column="file", val=["dyn/*hot*"])))
    assert by_text.sample_ids("val") == [i for i in corpus.sample_ids if i % 4 == 0]
    with pytest.raises(ConfigError, match="by_column.column = 'chamber'"):
        assign_splits(corpus, SplitOptions(by_column=ByColumnSplit(column="chamber", val=[1.0])))
    with pytest.raises(ConfigError, match="by_column.test: 400.0 matches no usable cell"):
        assign_splits(corpus, SplitOptions(by_column=ByColumnSplit(column="ambient_temperature_K", test=[400.0],
                                                                   val=[288.15])))
