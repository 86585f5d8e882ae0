"""The transfer study's chain: a work folder serves one study at a time (the A123 and Samsung runs
themselves: tests/experiments/test_transfer_study.py), and the series resistance is fitted per fold on
the fold's training tests."""

import pytest

from hybrid.transfer.study import DATASETS, pairing_spec, work_lock
from sim.errors import ConfigError


def test_a_work_folder_in_use_by_another_study_is_refused(tmp_path):
    with work_lock(tmp_path / "work"):
        with pytest.raises(ConfigError, match="in use by another transfer study"):
            with work_lock(tmp_path / "work"):
                pass
    with work_lock(tmp_path / "work"):  # free again once the first study ends
        pass


def test_the_series_resistance_is_fitted_on_the_fold_training_tests_only():
    dataset = DATASETS["a123"]
    configured = pairing_spec(dataset, 10.0)
    assert "dyn/A123_DYN_m15C_script1.csv.gz" not in configured.calibration.temperature_files  # held out there
    fold = pairing_spec(dataset, 10.0, train_files=("dyn/A123_DYN_p05C_script1.csv.gz", "dyn/A123_DYN_p25C_script1.csv.gz"))
    assert fold.calibration.temperature_files == ["dyn/A123_DYN_p05C_script1.csv.gz", "dyn/A123_DYN_p25C_script1.csv.gz"]
    samsung = pairing_spec(DATASETS["samsung30q"], 2.0, train_files=("x.csv",))
    assert samsung.calibration.temperature_files == []  # its config fits no series resistance
