"""Facts about the one-call workflow: record roles that would leak held-out records into training
or selection are refused before any work."""

from __future__ import annotations

import pytest

from hybrid.transfer.workflow import transfer
from sim.errors import ConfigError
from tests.hybrid.transfer.test_selection import CORPUS, OPTIONS


@pytest.mark.parametrize("train, val, test, order, message", [
    ([0, 1], [2], [2], None, "validation a proper subset"),  # validation on a held-out record
    ([0, 1], [0, 1], [2], None, "validation a proper subset"),  # nothing left to fit on
    ([0, 1], [1], [1, 2], None, "test disjoint"),
    ([0, 1], [1], [2], [0, 2], "curve_order"),  # the curve would train on a held-out record
])
def test_leaky_record_roles_are_refused(tmp_path, train, val, test, order, message):
    with pytest.raises(ConfigError, match=message):
        transfer(CORPUS, None, train, val, test, OPTIONS, tmp_path, curve_order=order)
    assert not any(tmp_path.iterdir())
