"""Facts about batches: padding has a false mask, rows where the physics solve failed are
masked and cannot wreck the inputs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from hybrid.data.batch import make_batches, record_weights
from hybrid.data.columns import PHYSICS_VOLTAGE
from hybrid.data.corpus import load_corpus
from hybrid.data.features import FeatureOptions, fit_normalisation
from hybrid.data.splits import (
    LateLifeSplit,
    SplitAssignment,
    SplitOptions,
    assign_splits,
)
from tests.hybrid.data.test_corpus import write_corpus


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


def test_record_weights_weigh_each_record_as_a_power_of_its_length_and_keep_the_total(corpus):
    ranges = {i: (0, corpus.cells[i].rows) for i in corpus.sample_ids}
    ranges[corpus.sample_ids[0]] = (0, corpus.cells[corpus.sample_ids[0]].rows // 4)  # a short record
    assignment = SplitAssignment({"train": ranges, "val": ranges}, {})
    normalisation = fit_normalisation(corpus, assignment, FeatureOptions(), "hybrid")
    batches = make_batches(corpus, ranges, normalisation, batch_size=3, record_weight_power=1.0)
    per_record = torch.cat([(batch.row_weights()).sum(dim=1) for batch in batches])
    valid = sum(int(batch.mask.sum()) for batch in batches)
    torch.testing.assert_close(per_record, torch.full_like(per_record, valid / len(ranges)))
    assert all(batch.weights is None for batch in make_batches(corpus, ranges, normalisation, batch_size=3))


def test_record_weights_follow_the_power_and_leave_out_records_without_valid_rows():
    masks = [np.ones(10, bool), np.ones(40, bool), np.zeros(5, bool)]
    np.testing.assert_allclose(record_weights(masks, 1.0), [2.5, 0.625, 0.0])
    half = record_weights(masks, 0.5)  # records weigh sqrt(10) : sqrt(40) = 1 : 2
    assert half[0] * 10 / (half[1] * 40) == pytest.approx(0.5) and (half * [10, 40, 5]).sum() == pytest.approx(50)
    np.testing.assert_allclose(record_weights(masks, 0.0), [1.0, 1.0, 0.0])
