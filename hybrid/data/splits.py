"""Splits of a corpus by cell (sample_id), never by time inside a cell, except ``late_life``.

For cells with ageing cycles, the rows after the end of ageing cycle ``after_cycle`` are held
out from training and scored separately (the training part of those cells stops there). A
split is a map sample_id -> (start, stop): the rows scored; a model always runs from row 0 of
the record so that late-life rows are predicted with the state carried over the whole early
life.
"""

from __future__ import annotations

import fnmatch
import logging
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pydantic import Field, model_validator

from hybrid.data.columns import DESIGN_PREFIX, TIME
from hybrid.data.corpus import Corpus
from sim.config import StrictModel
from sim.errors import ConfigError

log = logging.getLogger(__name__)

SPLIT_NAMES = ("train", "val", "test", "late_life", "unseen_design", "unseen_temperature")
CELL_SPLITS = ("train", "val", "test")


class LateLifeSplit(StrictModel):
    """Rows after the end of ageing cycle ``after_cycle`` (Tag "cycle", counted from 1) of every
    train/val/test cell that has more ageing cycles are held out as ``late_life``."""

    after_cycle: int = Field(ge=1)


class UnseenDesignSplit(StrictModel):
    """Cells whose design ``variable`` lies beyond its ``quantile`` over the corpus (strictly
    above, or below with side "below") are held out of training as ``unseen_design``."""

    variable: str
    quantile: float = Field(0.8, gt=0.0, lt=1.0)
    side: Literal["above", "below"] = "above"


class ByColumnSplit(StrictModel):
    """Cells chosen by a column of the corpus's samples table (e.g. a measured corpus's ``file``
    or ``ambient_temperature_K``): those whose value is in ``test`` are tested, in ``val``
    validated, in ``train`` trained on (null: all the rest; a list leaves the others unused, as a
    data-efficiency curve does). Numbers match within 1e-6 relative; text matches as a glob
    pattern ("dyn/*m15C*")."""

    column: str
    test: list[float | str] = Field(default_factory=list)
    val: list[float | str] = Field(min_length=1)
    train: list[float | str] | None = Field(None, min_length=1)


class UnseenTemperatureSplit(StrictModel):
    """Cells at the ``held_out_K`` ambient temperatures are held out as ``unseen_temperature``;
    null = the highest temperature of the corpus. Omitted when the corpus has one temperature."""

    held_out_K: list[float] | None = None


class SplitOptions(StrictModel):
    """How cells are split. Out-of-distribution splits are taken first; the remaining cells
    are shuffled with ``seed`` and cut into test, val and train by the fractions, or, with
    ``by_column``, chosen by name (measured tests: which ones are held out is the experiment)."""

    seed: int = Field(0, ge=0)
    val_fraction: float = Field(0.2, ge=0.0, lt=1.0)
    test_fraction: float = Field(0.2, ge=0.0, lt=1.0)
    late_life: LateLifeSplit | None = None
    unseen_design: UnseenDesignSplit | None = None
    unseen_temperature: UnseenTemperatureSplit | None = None
    by_column: ByColumnSplit | None = None

    @model_validator(mode="after")
    def _train_left(self) -> "SplitOptions":
        if self.val_fraction + self.test_fraction >= 1.0:
            raise ValueError(f"val_fraction + test_fraction = {self.val_fraction + self.test_fraction:g} "
                             "leaves no training cells; allowed: a sum below 1")
        return self



@dataclass
class SplitAssignment:
    """split name -> {sample_id: (start, stop)} rows scored; ``late_life_start`` holds, for every
    cell with ageing past the threshold, the first late-life row (whatever its split)."""

    ranges: dict[str, dict[int, tuple[int, int]]]
    late_life_start: dict[int, int]

    def names(self) -> list[str]:
        """The non-empty splits, in the order of SPLIT_NAMES."""
        return [name for name in SPLIT_NAMES if self.ranges.get(name)]

    def sample_ids(self, split: str) -> list[int]:
        return sorted(self.ranges.get(split, {}))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able form (sample ids as list entries, not keys)."""
        return {"splits": {name: [[sample_id, start, stop] for sample_id, (start, stop) in sorted(ranges.items())]
                           for name, ranges in self.ranges.items()},
                "late_life_start": [[sample_id, row] for sample_id, row in sorted(self.late_life_start.items())]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SplitAssignment":
        ranges = {name: {int(sample_id): (int(start), int(stop)) for sample_id, start, stop in entries}
                  for name, entries in data["splits"].items()}
        return cls(ranges, {int(sample_id): int(row) for sample_id, row in data["late_life_start"]})


def assign_splits(corpus: Corpus, options: SplitOptions) -> SplitAssignment:
    """Split ``corpus`` by cell (see :class:`SplitOptions`); late life by time inside aged cells.

    Raises ConfigError when an option names something the corpus lacks or leaves no train or
    validation cells.
    """
    remaining = corpus.sample_ids
    held: dict[str, list[int]] = {}
    if options.unseen_temperature is not None:
        held["unseen_temperature"] = _unseen_temperature(corpus, remaining, options.unseen_temperature)
        remaining = [i for i in remaining if i not in held["unseen_temperature"]]
    if options.unseen_design is not None:
        held["unseen_design"] = _unseen_design(corpus, remaining, options.unseen_design)
        remaining = [i for i in remaining if i not in held["unseen_design"]]
    cut = _cut_by_fraction if options.by_column is None else _cut_by_column
    by_cell = {**cut(corpus, remaining, options), **held}
    ranges = {name: {i: (0, corpus.cells[i].rows) for i in ids} for name, ids in by_cell.items()}
    late_life_start = _late_life_starts(corpus, options.late_life)
    if late_life_start:
        ranges["late_life"] = {}
        for name in CELL_SPLITS:
            for sample_id in list(ranges[name]):
                if sample_id in late_life_start:
                    row, stop = late_life_start[sample_id], corpus.cells[sample_id].rows
                    ranges[name][sample_id] = (0, row)
                    ranges["late_life"][sample_id] = (row, stop)
    return SplitAssignment({name: value for name, value in ranges.items() if value}, late_life_start)


def _unseen_temperature(corpus: Corpus, candidates: list[int], option: UnseenTemperatureSplit) -> list[int]:
    temperatures = sorted({corpus.cells[i].ambient_temperature_K for i in candidates})
    if option.held_out_K is None:
        if len(temperatures) < 2:
            log.info("unseen_temperature split omitted: the corpus has one ambient temperature")
            return []
        held_out = [temperatures[-1]]
    else:
        held_out = option.held_out_K
        for value in held_out:
            if not np.any(np.isclose(temperatures, value)):
                raise ConfigError(f"splits.unseen_temperature.held_out_K: {value} K is not in the corpus; "
                                  f"allowed: {', '.join(f'{t:g}' for t in temperatures)}")
    return [i for i in candidates if np.any(np.isclose(held_out, corpus.cells[i].ambient_temperature_K))]


def _unseen_design(corpus: Corpus, candidates: list[int], option: UnseenDesignSplit) -> list[int]:
    column = option.variable if option.variable.startswith(DESIGN_PREFIX) else DESIGN_PREFIX + option.variable
    if column not in corpus.design_columns:
        allowed = ", ".join(name.removeprefix(DESIGN_PREFIX) for name in corpus.design_columns) or "(none)"
        raise ConfigError(f"splits.unseen_design.variable = {option.variable!r}: not a design variable of the "
                          f"corpus; allowed: {allowed}")
    values = {i: corpus.cells[i].design[column] for i in corpus.sample_ids}
    threshold = float(np.quantile(list(values.values()), option.quantile))
    beyond = (lambda v: v > threshold) if option.side == "above" else (lambda v: v < threshold)
    return [i for i in candidates if beyond(values[i])]


def _cut_by_column(corpus: Corpus, sample_ids: list[int], options: SplitOptions) -> dict[str, list[int]]:
    """Test, val and train cells by their value in ``by_column.column`` (train: the rest unless listed)."""
    option = options.by_column
    if option.column not in corpus.samples.columns:
        raise ConfigError(f"splits.by_column.column = {option.column!r}: not a column of the corpus's samples; "
                          f"allowed: {', '.join(map(str, corpus.samples.columns))}")
    values = {i: corpus.samples.loc[i, option.column] for i in sample_ids}
    chosen = {}
    for split in ("test", "val", "train"):
        for wanted in getattr(option, split) or []:
            matched = [i for i, value in values.items() if _matches(value, wanted)]
            if not matched:
                raise ConfigError(f"splits.by_column.{split}: {wanted!r} matches no usable cell's "
                                  f"{option.column}; allowed: {', '.join(sorted({str(v) for v in values.values()}))}")
            chosen.update({i: split for i in matched if i not in chosen})
    result = {split: sorted(i for i, s in chosen.items() if s == split) for split in ("test", "val", "train")}
    if option.train is None:
        result["train"] = sorted(i for i in sample_ids if i not in chosen)
    if not result["train"]:
        raise ConfigError(f"splits.by_column leaves no training cell; allowed: test and val values that leave "
                          f"some of the {len(sample_ids)} cells")
    return result


def _matches(value: Any, wanted: float | str) -> bool:
    if isinstance(wanted, str):
        return fnmatch.fnmatchcase(str(value), wanted)
    return isinstance(value, (int, float, np.number)) and bool(np.isclose(float(value), wanted, rtol=1e-6))


def _cut_by_fraction(corpus: Corpus, sample_ids: list[int], options: SplitOptions) -> dict[str, list[int]]:
    """Shuffle with the seed, then test, val and train cells; at least one train and one val."""
    order = [sample_ids[k] for k in np.random.default_rng(options.seed).permutation(len(sample_ids))]
    count = len(order)
    test = round(options.test_fraction * count)
    val = max(round(options.val_fraction * count), 1 if options.val_fraction > 0 else 0)
    if count - test - val < 1:
        test = max(0, count - val - 1)
    if val == 0 or count - test - val < 1:
        raise ConfigError(f"splits: {count} cell(s) left after the out-of-distribution splits cannot give train "
                          f"and val cells (val_fraction = {options.val_fraction:g}); allowed: val_fraction > 0 "
                          "and at least two cells left")
    return {"test": sorted(order[:test]), "val": sorted(order[test:test + val]),
            "train": sorted(order[test + val:])}


def _late_life_starts(corpus: Corpus, option: LateLifeSplit | None) -> dict[int, int]:
    if option is None:
        return {}
    starts = {}
    for sample_id, cell in corpus.cells.items():
        ends = cell.ageing_cycle_ends()
        if len(ends) > option.after_cycle:
            row = int(np.searchsorted(cell.columns[TIME], ends[option.after_cycle - 1], side="right"))
            if 0 < row < cell.rows:
                starts[sample_id] = row
    if not starts:
        log.info("late_life split omitted: no cell has more than %d ageing cycles", option.after_cycle)
    return starts
