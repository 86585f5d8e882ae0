"""Facts about batches: padding has a false mask, rows where the physics solve failed are
masked and cannot wreck the inputs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from hybrid.data.batch import make_batches
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
