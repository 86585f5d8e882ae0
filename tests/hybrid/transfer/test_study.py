"""The transfer study's chain: a work folder serves one study at a time (the A123 and Samsung runs
themselves: tests/experiments/test_transfer_study.py)."""

import pytest

from hybrid.transfer.study import work_lock
from sim.errors import ConfigError


def test_a_work_folder_in_use_by_another_study_is_refused(tmp_path):
    with work_lock(tmp_path / "work"):
        with pytest.raises(ConfigError, match="in use by another transfer study"):
            with work_lock(tmp_path / "work"):
                pass
    with work_lock(tmp_path / "work"):  # free again once the first study ends
        pass
