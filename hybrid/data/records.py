"""Whole records as units: splits that put each record (a measured test, a corpus sample) whole
into one split, and corpus protocols that replay a record's measured current."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from hybrid.data.columns import CURRENT, TIME
from hybrid.data.corpus import Corpus
from hybrid.data.splits import SplitAssignment
from sim.errors import ConfigError


def by_record_assignment(train_ids: Sequence[int], test_ids: Sequence[int], rows: dict[int, int],
                         val_ids: Sequence[int] | None = None) -> SplitAssignment:
    """Whole records per split (``rows``: sample_id -> its row count): "train", "val" (``val_ids``;
    without them the training records also serve as validation, so the epoch count must be fixed
    beforehand) and, when ``test_ids`` is not empty, "test". A record in two of the given id
    lists is refused (ConfigError)."""
    given = {"train_ids": set(train_ids), "test_ids": set(test_ids), "val_ids": set(val_ids or ())}
    for first, second in (("train_ids", "test_ids"), ("train_ids", "val_ids"), ("val_ids", "test_ids")):
        if given[first] & given[second]:
            raise ConfigError(f"records {sorted(given[first] & given[second])} are in {first} and {second}; "
                              "allowed: each record in one split")
    ranges = {"train": {i: (0, rows[i]) for i in train_ids},
              "val": {i: (0, rows[i]) for i in (val_ids or train_ids)}}
    if test_ids:
        ranges["test"] = {i: (0, rows[i]) for i in test_ids}
    return SplitAssignment(ranges, {})


def replay_protocols(corpus: Corpus, sample_ids: Sequence[int], folder: Path) -> list[dict[str, Any]]:
    """One corpus protocol choice (weight 1) per record of ``sample_ids`` that replays its measured
    current: a ``dynamic`` protocol reading ``folder``/test_<id>.csv (time_s [s], current_A [A],
    written unless present) scaled to the record's peak C-rate (of the corpus's physics capacity
    [A.h]), so a synthetic cell of another capacity sees the same C-rates."""
    folder.mkdir(parents=True, exist_ok=True)
    protocols = []
    for sample_id in sample_ids:
        cell = corpus.cells[sample_id]
        path = folder / f"test_{sample_id}.csv"
        if not path.exists():
            pd.DataFrame({"time_s": cell.columns[TIME], "current_A": cell.columns[CURRENT]}).to_csv(path, index=False)
        peak_c_rate = float(np.max(np.abs(cell.columns[CURRENT])) / corpus.samples.loc[sample_id, "physics_capacity_Ah"])
        protocols.append({"weight": 1.0, "protocol": {"kind": "dynamic", "current_csv": str(path),
                                                      "peak_c_rate": round(peak_c_rate, 3)}})
    return protocols
