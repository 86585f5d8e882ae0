"""Shared fixtures. Ray never touches the home directory in tests; every test starts from the
same random state, so a test that draws random numbers sees the same ones alone or in a suite."""

import os
import random
import sys

import numpy as np
import pytest

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
# `hybat corpus --backend ray` runs its driver in place, so tests can patch it in-process; the
# supervising parent process is tested on its own (tests/hybrid/test_cli.py)
os.environ.setdefault("HYBAT_CORPUS_DRIVER", "1")

SEED = 0


@pytest.fixture(autouse=True)
def seeded():
    """Seed Python's, NumPy's and (when a test has imported it) torch's global generators."""
    random.seed(SEED)
    np.random.seed(SEED)
    if "torch" in sys.modules:
        sys.modules["torch"].manual_seed(SEED)
    yield
