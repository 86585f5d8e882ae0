"""Facts about streaming a corpus from its shards: the same records, splits, normalisation and
batches as the in-memory path, a few records in memory at a time, and a streamed training run
that ends with the weights of an in-memory one."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
import torch

from hybrid.data.batch import make_batches
from hybrid.data.context import ContextWindow
from hybrid.data.corpus import load_corpus
from hybrid.data.features import FeatureOptions, fit_normalisation
from hybrid.data.splits import SplitOptions, assign_splits
from hybrid.data.stream import (
    CACHE_RECORDS,
    open_corpus,
    stream_batches,
    stream_normalisation,
    stream_splits,
)
from hybrid.data.windows import ForecastWindows, forecast_batches
from sim.errors import ConfigError, DataError
from tests.hybrid.conftest import SMOKE_RUN
from tests.hybrid.data.test_corpus import write_corpus
from tests.hybrid.data.test_splits import ALL_SPLITS

BATCH_FIELDS = ("inputs", "targets", "mask", "context", "context_mask")


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory):
    """The synthetic data-test corpus, with one sample's series made non-finite (load_corpus skips
    it) and two samples sharing a series shard."""
    path = write_corpus(tmp_path_factory.mktemp("stream") / "corpus")
    broken = path / "series" / "part-000005.parquet"
    frame = pd.read_parquet(broken)
    frame.loc[10, "Physics state of charge"] = np.nan
    frame.to_parquet(broken)
    pair = [path / "series" / f"part-{i:06d}.parquet" for i in (7, 8)]
    shared = pd.concat([pd.read_parquet(part) for part in pair], ignore_index=True)
    pair[1].unlink()
    shared.to_parquet(pair[0])
    return path


def assert_same_batches(expected, streamed) -> None:
    assert len(streamed) == len(expected)
    for mine, theirs in zip(streamed, expected):
        for field in BATCH_FIELDS:
            a, b = getattr(mine, field), getattr(theirs, field)
            assert (a is None and b is None) or torch.equal(a, b), field


def test_a_streamed_corpus_holds_the_records_load_corpus_reads(corpus_dir):
    loaded, streamed = load_corpus(corpus_dir), open_corpus(corpus_dir)
    assert streamed.sample_ids == loaded.sample_ids and 5 not in streamed.sample_ids
    assert (streamed.physics_columns, streamed.design_columns) == (loaded.physics_columns, loaded.design_columns)
    for sample_id in loaded.sample_ids:
        mine, theirs = streamed.cells[sample_id], loaded.cells[sample_id]
        assert mine.columns.keys() == theirs.columns.keys() and mine.cycles.keys() == theirs.cycles.keys()
        for name in theirs.columns:
            np.testing.assert_array_equal(mine.columns[name], theirs.columns[name])
        for name in theirs.cycles:
            np.testing.assert_array_equal(mine.cycles[name], theirs.cycles[name])
        assert (mine.design, mine.ambient_temperature_K, mine.capacity_Ah) == (
            theirs.design, theirs.ambient_temperature_K, theirs.capacity_Ah)


def test_only_a_few_records_stay_in_memory_and_none_travel_with_the_corpus(corpus_dir):
    streamed = open_corpus(corpus_dir)
    for sample_id in streamed.sample_ids:
        streamed.cells[sample_id]
    assert len(streamed.cells._cache) == CACHE_RECORDS
    assert len(pickle.loads(pickle.dumps(streamed.cells))._cache) == 0


def test_streamed_splits_and_normalisation_equal_the_in_memory_ones(corpus_dir):
    loaded, streamed = load_corpus(corpus_dir), open_corpus(corpus_dir)
    assignment = assign_splits(loaded, ALL_SPLITS)
    assert stream_splits(streamed, ALL_SPLITS) == assignment
    options = FeatureOptions(soc_head=True, temperature_head=True)
    normalisations = stream_normalisation(streamed, assignment, options, ("hybrid", "black_box"))
    for family, normalisation in normalisations.items():
        expected = fit_normalisation(loaded, assignment, options, family)
        assert normalisation.keys() == expected.keys()
        for key, value in expected.items():
            if key in ("feature_mean", "feature_std", "target_mean", "target_std"):
                np.testing.assert_allclose(normalisation[key], value, rtol=1e-9, atol=0)
            else:
                assert normalisation[key] == value, key


def test_streamed_batches_equal_the_in_memory_ones_and_shares_cover_them(corpus_dir):
    loaded, streamed = load_corpus(corpus_dir), open_corpus(corpus_dir)
    assignment = assign_splits(loaded, ALL_SPLITS)
    train = assignment.ranges["train"]
    normalisation = fit_normalisation(loaded, assignment, FeatureOptions(soc_head=True), "hybrid")
    for context in (None, ContextWindow(None, 0.5)):
        assert_same_batches(make_batches(loaded, train, normalisation, 2, context),
                            stream_batches(streamed, train, normalisation, 2, context))
    windows = ForecastWindows(context_s=300.0, horizon_s=200.0, stride_s=400.0)
    assert_same_batches(forecast_batches(loaded, train, normalisation, 5, windows),
                        stream_batches(streamed, train, normalisation, 5, forecast=windows))
    whole = make_batches(loaded, train, normalisation, len(train))[0]
    shares = [stream_batches(streamed, train, normalisation, len(train), part=(k, 2))[0] for k in range(2)]
    assert sum(len(share.mask) for share in shares) == len(train)
    assert int(whole.mask.sum()) == sum(int(share.mask.sum()) for share in shares)


def test_a_head_without_its_column_and_a_missing_corpus_are_named(tmp_path):
    path = write_corpus(tmp_path / "no_soc", cells=4)
    for part in (path / "series").glob("part-*.parquet"):
        pd.read_parquet(part).drop(columns=["State of charge"]).to_parquet(part)
    streamed = open_corpus(path)
    assignment = stream_splits(streamed, SplitOptions(val_fraction=0.25, test_fraction=0.25))
    with pytest.raises(ConfigError, match="features.soc_head = true, but the corpus has no 'State of charge'"):
        stream_normalisation(streamed, assignment, FeatureOptions(soc_head=True))
    with pytest.raises(DataError, match="not a corpus"):
        open_corpus(tmp_path / "nowhere")


def test_a_streamed_run_trains_the_weights_of_an_in_memory_run(tmp_path, smoke_corpus_dir):
    from hybrid.train.checkpoint import load_checkpoint
    from hybrid.train.run import TrainRunConfig, train_from_config
    from sim.config import load_config

    config = load_config(SMOKE_RUN, TrainRunConfig)
    config = config.model_copy(update={"train": config.train.model_copy(update={"epochs": 3})})
    loaded = train_from_config(config, smoke_corpus_dir, tmp_path / "loaded")
    streamed = train_from_config(config, smoke_corpus_dir, tmp_path / "streamed", streaming=True)
    assert streamed["data"] == {"streamed": True, "workers": 1} and streamed["splits"] == loaded["splits"]
    for name in loaded["models"]:  # black box, a residual GRU, a context residual
        mine, theirs = (load_checkpoint(tmp_path / run / name / "last.pt") for run in ("streamed", "loaded"))
        for key, weights in theirs["model_state"].items():
            torch.testing.assert_close(mine["model_state"][key], weights)
        assert streamed["models"][name]["best_val_loss"] == pytest.approx(loaded["models"][name]["best_val_loss"],
                                                                          rel=1e-6)


def test_equal_record_weights_are_refused_where_records_are_streamed(tmp_path, smoke_corpus_dir):
    from hybrid.train.run import TrainRunConfig, train_from_config
    from sim.config import load_config

    config = load_config(SMOKE_RUN, TrainRunConfig)
    config = config.model_copy(update={"train": config.train.model_copy(update={"record_weight_power": 0.5})})
    with pytest.raises(ConfigError, match="train.record_weight_power = 0.5 with --stream"):
        train_from_config(config, smoke_corpus_dir, tmp_path / "streamed", streaming=True)
    assert not (tmp_path / "streamed").exists()
