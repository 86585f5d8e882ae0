"""Facts about whole-record splits and record replays."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hybrid.data.corpus import Record, Corpus
from hybrid.data.records import by_record_assignment, replay_protocols
from sim.errors import ConfigError
from pathlib import Path


def test_by_record_assignment_puts_whole_records_in_each_split():
    rows = {1: 10, 2: 20, 3: 30}
    assignment = by_record_assignment([1, 2], [3], rows)
    assert assignment.ranges["train"] == {1: (0, 10), 2: (0, 20)} == assignment.ranges["val"]
    assert assignment.ranges["test"] == {3: (0, 30)}
    held = by_record_assignment([1], [], rows, val_ids=[2])
    assert held.ranges["val"] == {2: (0, 20)} and "test" not in held.ranges


@pytest.mark.parametrize("train, test, val", [([1, 2], [2], None), ([1], [], [1]), ([1], [3], [3])])
def test_by_record_assignment_never_puts_a_record_in_two_given_splits(train, test, val):
    with pytest.raises(ConfigError, match="each record in one split"):
        by_record_assignment(train, test, {1: 10, 2: 20, 3: 30}, val_ids=val)


def test_replay_protocols_write_the_current_and_scale_to_the_peak_c_rate(tmp_path):
    time_s, current = np.arange(4.0), np.array([0.0, 2.5, -5.0, 1.0])
    cell = Record(7, {"Time [s]": time_s, "Current [A]": current}, {}, 298.15, 2.5, {})
    corpus = Corpus(Path("."), pd.DataFrame({"physics_capacity_Ah": [2.5]}, index=[7]), {7: cell}, [], [])
    [choice] = replay_protocols(corpus, [7], tmp_path / "profiles")
    assert choice["protocol"]["kind"] == "dynamic" and choice["protocol"]["peak_c_rate"] == pytest.approx(2.0)
    written = pd.read_csv(choice["protocol"]["current_csv"])
    np.testing.assert_array_equal(written["current_A"], current)
