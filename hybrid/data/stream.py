"""Training data streamed from a corpus's Parquet shards: memory bounded by a few records and a
batch, whatever the size of the corpus.

:func:`load_corpus` reads every series shard into one process; a corpus generated on a cluster
(10^4-10^5 cells, hundreds of millions of rows) does not fit one machine. :func:`open_corpus`
returns the same :class:`Corpus` (the same usable samples, columns and spec) whose records are
read from their shards when first used and kept in a small cache (:class:`ShardRecords`), so
every function of the data stage works on it unchanged. Three counterparts do in bounded memory
what would otherwise stack the whole corpus:

- :func:`stream_splits`: :func:`assign_splits`, reading only each record's times;
- :func:`stream_normalisation`: :func:`fit_normalisation` of several families in one pass over
  the training records, from per-record moments merged as they come;
- :func:`stream_batches`: the batches of :func:`make_batches` (or of :func:`forecast_batches`
  for a forecaster), each built when the training loop reads it and dropped after.

Each gives what its in-memory counterpart gives (the normalisation to rounding, the batches
exactly), so a streamed training equals an in-memory one. What stays in memory grows with the
number of records (the samples table, the shard paths, a forecaster's window index of six
integers per window), not with their rows.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from hybrid.data.batch import SequenceBatch, make_batches
from hybrid.data.columns import (
    AMBIENT,
    DESIGN_PREFIX,
    PHYSICS_PREFIX,
    TIME,
)
from hybrid.data.context import ContextWindow
from hybrid.data.corpus import REQUIRED_SERIES, Corpus, Record, _cell, must_be_finite
from hybrid.data.features import (FeatureOptions, candidate_features, normalisation_from_statistics,
                                  require_head_columns, target_names)
from hybrid.data.splits import SplitAssignment, SplitOptions, assign_splits
from hybrid.data.windows import ForecastWindows, window_batch, window_sequences
from sim.errors import DataError

log = logging.getLogger(__name__)

# Records kept after reading: enough for a forecaster's windows of neighbouring records to share
# reads; a record of a long ageing campaign (10^5 rows x 25 columns) is ~20 MB.
CACHE_RECORDS = 4


@dataclass(frozen=True)
class ShardIndex:
    """Where each usable sample's rows are: its series and cycles shard files, which of them hold
    several samples (read with a filter), and the numeric series columns of the corpus (the union
    over shards, in order: a record lacking one reads it as NaN, as :func:`load_corpus` does)."""

    series: dict[int, tuple[Path, ...]]
    cycles: dict[int, tuple[Path, ...]]
    shared: frozenset[Path]
    numeric_columns: tuple[str, ...]


class ShardRecords(Mapping[int, Record]):
    """sample_id -> :class:`Record`, read from the sample's shards on first use; the last
    ``cache_records`` records read are kept. With ``columns``, a record holds only those series
    columns (and the time): a cheap view for what needs the times only. Pickled without its cache,
    so a training worker starts with an empty one."""

    def __init__(self, index: ShardIndex, samples: pd.DataFrame, design_columns: list[str],
                 columns: tuple[str, ...] | None = None, cache_records: int = CACHE_RECORDS):
        self.index, self.samples, self.design_columns = index, samples, design_columns
        self.columns, self.cache_records = columns, cache_records
        self._cache: OrderedDict[int, Record] = OrderedDict()

    def view(self, columns: tuple[str, ...]) -> ShardRecords:
        """The same records holding only ``columns`` (and the time)."""
        return ShardRecords(self.index, self.samples, self.design_columns, columns, self.cache_records)

    def __getitem__(self, sample_id: int) -> Record:
        if sample_id in self._cache:
            self._cache.move_to_end(sample_id)
            return self._cache[sample_id]
        if sample_id not in self.index.series:
            raise KeyError(sample_id)
        record = self._read(sample_id)
        self._cache[sample_id] = record
        while len(self._cache) > self.cache_records:
            self._cache.popitem(last=False)
        return record

    def __contains__(self, sample_id: object) -> bool:  # without reading the record
        return sample_id in self.index.series

    def __iter__(self) -> Iterator[int]:
        return iter(sorted(self.index.series))

    def __len__(self) -> int:
        return len(self.index.series)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_cache": OrderedDict()}

    def read_cycles(self, sample_id: int) -> dict[str, np.ndarray]:
        """The reference per-cycle summary of ``sample_id`` (columns -> arrays; {} without one)."""
        parts = [self._part(part, sample_id).to_pandas() for part in self.index.cycles.get(sample_id, ())]
        cycles = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
        if "Source" in cycles.columns:
            cycles = cycles[cycles["Source"] == "reference"]
        return {name: cycles[name].to_numpy() for name in cycles.columns if name not in ("sample_id", "Source")}

    def _read(self, sample_id: int) -> Record:
        names = None if self.columns is None else ["sample_id", *dict.fromkeys((TIME, *self.columns))]
        table = pa.concat_tables([self._part(part, sample_id, names) for part in self.index.series[sample_id]],
                                 promote_options="default")
        order = np.argsort(_floats(table, TIME), kind="stable")  # load_corpus's stable sort by time
        wanted = [name for name in self.index.numeric_columns if names is None or name in names]
        record = _cell(sample_id, {name: _floats(table, name)[order] for name in wanted},
                       self.samples.loc[sample_id], self.design_columns, None)
        record.cycles = _ShardCycles(self, sample_id)  # few uses (context windows, late life): read then
        return record

    def _part(self, part: Path, sample_id: int, names: list[str] | None = None) -> pa.Table:
        if part in self.index.shared:
            return pq.read_table(part, columns=names, filters=[("sample_id", "=", sample_id)])
        return _read_part(part, names)


class _ShardCycles(Mapping[str, np.ndarray]):
    """A record's per-cycle summary, read from its cycles shards when first used."""

    def __init__(self, records: ShardRecords, sample_id: int):
        self.records, self.sample_id = records, sample_id
        self._columns: dict[str, np.ndarray] | None = None

    def _loaded(self) -> dict[str, np.ndarray]:
        if self._columns is None:
            self._columns = self.records.read_cycles(self.sample_id)
        return self._columns

    def __getitem__(self, name: str) -> np.ndarray:
        return self._loaded()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._loaded())

    def __len__(self) -> int:
        return len(self._loaded())


def _read_part(part: Path, names: list[str] | None = None) -> pa.Table:
    """A whole shard (``names`` only, if given): ParquetFile.read skips the dataset machinery of
    read_table, a third of the time on a small shard."""
    return pq.ParquetFile(part).read(columns=names)


def _floats(table: pa.Table, name: str) -> np.ndarray:
    """Column ``name`` of ``table`` as float64, NaN where it is null or absent (as pandas reads it)."""
    if name not in table.column_names:
        return np.full(table.num_rows, np.nan)
    return np.asarray(table.column(name).to_numpy(), dtype=float)


def open_corpus(path: str | Path, cache_records: int = CACHE_RECORDS) -> Corpus:
    """The corpus at ``path`` as :func:`load_corpus` reads it, with records read from their shards
    when used (:class:`ShardRecords`). One pass over the series shards, one at a time, finds the
    usable samples. Raises DataError as :func:`load_corpus` does."""
    path = Path(path).resolve()  # training workers may start elsewhere (on a cluster: a shared path)
    samples_file = path / "samples.parquet"
    if not samples_file.is_file():
        raise DataError(f"{path}: not a corpus (no samples.parquet); allowed: a directory written by hybat corpus")
    samples = pd.read_parquet(samples_file)
    samples = samples[samples["status"].isin(["ok", "truncated"])].set_index("sample_id", drop=False)
    series_parts = _parts(path / "series", required=True)
    names, numeric = _series_columns(series_parts)
    missing = [name for name in REQUIRED_SERIES if name not in names]
    if missing:
        raise DataError(f"{path / 'series'}: column '{missing[0]}' is missing; required: {', '.join(REQUIRED_SERIES)}")
    series, shared = _usable_series(series_parts, samples, numeric)
    if not series:
        raise DataError(f"{path}: no usable samples (status ok or truncated with series rows)")
    cycles = defaultdict(list)
    for part in _parts(path / "cycles", required=False):
        ids = np.unique(_read_part(part, ["sample_id"]).column("sample_id").to_numpy())
        for sample_id in ids:
            cycles[int(sample_id)].append(part)
        if len(ids) > 1:
            shared.add(part)
    index = ShardIndex(series, {i: tuple(parts) for i, parts in cycles.items()}, frozenset(shared), numeric)
    samples = samples.loc[sorted(series)]
    design_columns = sorted(name for name in samples.columns if name.startswith(DESIGN_PREFIX))
    manifest = path / "manifest.json"
    spec = json.loads(manifest.read_text()).get("spec", {}) if manifest.is_file() else {}
    return Corpus(path, samples, ShardRecords(index, samples, design_columns, cache_records=cache_records),
                  [name for name in names if name.startswith(PHYSICS_PREFIX)], design_columns, spec)


def is_streamed(corpus: Corpus) -> bool:
    """Whether ``corpus`` reads its records from their shards (:func:`open_corpus`)."""
    return isinstance(corpus.cells, ShardRecords)


def _parts(folder: Path, required: bool) -> list[Path]:
    parts = sorted(folder.glob("part-*.parquet"))
    if required and not parts:
        raise DataError(f"{folder}: no part-*.parquet files")
    return parts


def _series_columns(parts: list[Path]) -> tuple[list[str], tuple[str, ...]]:
    """Every series column over the shards' schemas (in order of appearance) and the numeric ones."""
    types: dict[str, pa.DataType] = {}
    for part in parts:
        for field in pq.read_schema(part):
            types.setdefault(field.name, field.type)
    numeric = tuple(name for name, kind in types.items() if name != "sample_id" and (
        pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)))
    return list(types), numeric


def _usable_series(parts: list[Path], samples: pd.DataFrame,
                   numeric: tuple[str, ...]) -> tuple[dict[int, tuple[Path, ...]], set[Path]]:
    """sample_id -> its series shards, for the samples :func:`load_corpus` keeps (status ok or
    truncated, finite series), and the shards that hold several samples."""
    # the columns whose non-finite values make load_corpus skip a sample: a non-finite physics
    # voltage only invalidates its rows (Record.valid_rows)
    checked = [name for name in numeric if must_be_finite(name)]
    found: dict[int, list[Path]] = defaultdict(list)
    bad: set[int] = set()
    shared: set[Path] = set()
    for part in parts:  # one shard in memory at a time
        table = _read_part(part)
        ids = table.column("sample_id").to_numpy()
        finite = {name: np.isfinite(_floats(table, name)) for name in checked}  # name -> (rows,) bool
        usable = [int(i) for i in np.unique(ids) if i in samples.index]
        for sample_id in usable:
            found[sample_id].append(part)
        all_finite = np.logical_and.reduce([*finite.values(), np.ones(len(ids), dtype=bool)])
        for sample_id in sorted(set(np.unique(ids[~all_finite]).tolist()) & (set(usable) - bad)):
            rows = ids == sample_id
            first_bad = next(name for name in checked if not finite[name][rows].all())
            log.warning("sample %s: non-finite values in '%s'; skipped", sample_id, first_bad)
            bad.add(sample_id)
        if len(np.unique(ids)) > 1:
            shared.add(part)
    return {i: tuple(found[i]) for i in sorted(found) if i not in bad}, shared


def stream_splits(corpus: Corpus, options: SplitOptions) -> SplitAssignment:
    """:func:`assign_splits` of a streamed corpus, reading each record's times (and ambient
    temperature) only."""
    return assign_splits(dataclasses.replace(corpus, cells=corpus.cells.view((TIME, AMBIENT))), options)


class _Moments:
    """Count, mean and sum of squared deviations per column, merged block by block (Chan, Golub
    and LeVeque's update), so that statistics of all training rows need one record at a time."""

    def __init__(self, columns: int):
        self.count, self.mean, self.squares = 0, np.zeros(columns), np.zeros(columns)

    def add(self, values: np.ndarray) -> None:
        """Merge the rows of ``values`` (rows, columns)."""
        if not len(values):
            return
        count, mean = len(values), values.mean(axis=0)
        delta, total = mean - self.mean, self.count + count
        self.squares = self.squares + ((values - mean) ** 2).sum(axis=0) + delta ** 2 * self.count * count / total
        self.mean, self.count = self.mean + delta * count / total, total

    @property
    def std(self) -> np.ndarray:
        return np.sqrt(self.squares / self.count)

    @property
    def root_mean_square(self) -> np.ndarray:
        return np.sqrt(self.squares / self.count + self.mean ** 2)


def stream_normalisation(corpus: Corpus, assignment: SplitAssignment, options: FeatureOptions,
                         families: Sequence[str] = ("black_box", "hybrid")) -> dict[str, dict[str, Any]]:
    """family -> :func:`fit_normalisation` of that family, for every one of ``families``, from one
    pass over the training records of ``corpus`` (from :func:`open_corpus`; one record in memory
    at a time). Raises as fit_normalisation does."""
    train = assignment.ranges.get("train")
    if not train:
        raise DataError("the train split is empty; nothing to compute normalisation statistics on")
    features = {family: candidate_features(corpus, options, family) for family in families}
    targets = {family: target_names(family, options.soc_head, options.temperature_head) for family in families}
    for family in families:
        require_head_columns(set(corpus.cells.index.numeric_columns), options, family)
    names = list(dict.fromkeys(name for family in families for name in features[family] + targets[family]))
    moments = _Moments(len(names))
    for sample_id, (start, stop) in sorted(train.items()):
        cell = corpus.cells[sample_id]
        valid = cell.valid_rows(options.max_residual_V)[start:stop]
        moments.add(np.column_stack([cell.column(name)[start:stop][valid] for name in names]))
    std, rms = moments.std, moments.root_mean_square
    statistics = {name: (float(moments.mean[k]), float(std[k]), float(rms[k])) for k, name in enumerate(names)}
    return {family: normalisation_from_statistics(family, features[family], targets[family], statistics, options)
            for family in families}


class LazyBatches(Sequence[SequenceBatch]):
    """Batches built when read, never kept: item k is ``build(groups[k])``. The training loop reads
    them by index in its shuffled order, so only the batch in use is in memory."""

    def __init__(self, groups: list[Any], build: Callable[[Any], SequenceBatch]):
        self.groups, self.build = groups, build

    def __len__(self) -> int:
        return len(self.groups)

    def __getitem__(self, index: int) -> SequenceBatch:  # type: ignore[override]
        return self.build(self.groups[index])


def stream_batches(corpus: Corpus, ranges: dict[int, tuple[int, int]], normalisation: dict[str, Any],
                   batch_size: int, context: ContextWindow | None = None, forecast: ForecastWindows | None = None,
                   part: tuple[int, int] = (0, 1)) -> LazyBatches:
    """The batches :func:`make_batches` gives (:func:`forecast_batches` with ``forecast``), built
    when read. ``part`` = (k, parts): the k-th of ``parts`` shares of the sequences (every parts-th
    of the length-sorted order, from the k-th), batched by ``batch_size``, so that the shares' j-th
    batches together hold the sequences of the j-th batch of parts x batch_size of the whole."""
    rank, parts = part
    if forecast is not None:
        windows = _window_index(corpus, ranges, normalisation, forecast)[rank::parts]
        groups = [windows[k:k + batch_size] for k in range(0, len(windows), batch_size)]
        return LazyBatches(groups, functools.partial(_window_batch, corpus, normalisation))
    records = sorted(ranges.items(), key=lambda item: (item[1][1], item[0]))[rank::parts]
    groups = [dict(records[k:k + batch_size]) for k in range(0, len(records), batch_size)]
    return LazyBatches(groups, functools.partial(_record_batch, corpus, normalisation, context))


def _record_batch(corpus: Corpus, normalisation: dict[str, Any], context: ContextWindow | None,
                  ranges: dict[int, tuple[int, int]]) -> SequenceBatch:
    return make_batches(corpus, ranges, normalisation, len(ranges), context)[0]


def _scored(record: Record, normalisation: dict[str, Any], start: int, stop: int) -> np.ndarray:
    """(rows,) bool: the valid rows of [start, stop), those a forecast window may score."""
    scored = record.valid_rows(normalisation["max_residual_V"]).copy()
    scored[:start] = False
    scored[stop:] = False
    return scored


def _window_index(corpus: Corpus, ranges: dict[int, tuple[int, int]], normalisation: dict[str, Any],
                  windows: ForecastWindows) -> np.ndarray:
    """(windows, 6) int64: sample_id, start, stop (its scored range), context start, origin and
    horizon stop of every window, in forecast_batches's order (by horizon, then context length)."""
    rows = []
    for sample_id, (start, stop) in sorted(ranges.items()):
        record = corpus.cells[sample_id]
        for span in windows.spans(record, _scored(record, normalisation, start, stop)):
            rows.append((sample_id, start, stop, *span))
    if not rows:
        raise DataError(f"ForecasterConfig: field 'context_s' = {windows.context_s:g}: no record of {sorted(ranges)} "
                        "is longer, with scored rows after it; allowed: a shorter context_s or longer records")
    index = np.array(rows, dtype=np.int64)
    horizon, history = index[:, 5] - index[:, 4], index[:, 4] - index[:, 3]
    return index[np.lexsort((history, horizon))]  # stable, as the list sort of forecast_batches


def _window_batch(corpus: Corpus, normalisation: dict[str, Any], windows: np.ndarray) -> SequenceBatch:
    """The batch of ``windows`` (rows of the window index), each record read once."""
    sequences: list[Any] = [None] * len(windows)
    by_record: dict[tuple[int, int, int], list[int]] = defaultdict(list)
    for position, (sample_id, start, stop, *_) in enumerate(windows.tolist()):
        by_record[(sample_id, start, stop)].append(position)
    for (sample_id, start, stop), positions in by_record.items():
        record = corpus.cells[sample_id]
        spans = [tuple(windows[position, 3:].tolist()) for position in positions]
        made = window_sequences(record, normalisation, spans, _scored(record, normalisation, start, stop))
        for position, sequence in zip(positions, made):
            sequences[position] = sequence
    return window_batch(sequences)
