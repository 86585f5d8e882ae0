"""The transfer study's chain: a work folder serves one study at a time (the A123 and Samsung runs
themselves: tests/experiments/test_transfer_study.py), and the series resistance is fitted per fold on
the fold's training tests; a work folder keeps each code's runs apart."""

import pytest
import torch

from hybrid.transfer.study import (
    DATASETS,
    StudySettings,
    code_fingerprint,
    context_overrides,
    machine,
    pairing_spec,
    run_config,
    work_lock,
)
from hybrid.transfer.tables import CONTEXT_MODEL, on_machine
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


def test_the_context_run_replaces_the_hybrids_by_the_same_lstm_told_which_cell_it_corrects():
    settings = StudySettings(DATASETS["a123"], 10.0, context_window_s=1800.0)
    plain, context = (run_config(settings, DATASETS["a123"].pretrain, overrides)
                      for overrides in ([], context_overrides(settings)))
    [entry] = context.models
    assert entry.name == CONTEXT_MODEL and entry.model["kind"] == "context_residual"
    assert entry.model["context_window_s"] == 1800.0 and entry.model["context_max_fraction"] == 0.25
    [hybrid] = plain.models
    assert {key: entry.model[key] for key in ("cell", "hidden_size", "layers")} == \
        {key: hybrid.model[key] for key in ("cell", "hidden_size", "layers")}
    assert context.features == plain.features and context.train == plain.train


def test_the_code_fingerprint_changes_with_any_source_of_the_packages_and_only_with_them(tmp_path):
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "a.py").write_text("x = 1\n")
    (package / "sub" / "b.py").write_text("y = 2\n")
    first = code_fingerprint([package])
    assert len(first) == 12 and code_fingerprint([package]) == first
    (package / "notes.txt").write_text("not code")  # only Python sources count
    assert code_fingerprint([package]) == first
    (package / "sub" / "b.py").write_text("y = 3\n")
    assert code_fingerprint([package]) != first
    (package / "sub" / "b.py").write_text("y = 2\n")  # the same sources again: the same runs
    assert code_fingerprint([package]) == first
    (package / "sub" / "b.py").rename(package / "b.py")  # a file moved is other code
    assert code_fingerprint([package]) != first


def test_the_figures_name_the_machine_whose_torch_kernels_trained_the_hybrids(monkeypatch):
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    recorded = machine()
    assert recorded["torch_cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert recorded["cores"] >= 1 and recorded["torch"].startswith(torch.__version__.split("+")[0])
    sentence = on_machine(recorded)
    assert recorded["torch_cpu_capability"] in sentence and recorded["cpu"] in sentence
    assert recorded["onednn_max_cpu_isa"] == "AVX2" and "oneDNN ISA AVX2" in sentence
    assert on_machine(None) == ""  # figures written before the machine was recorded
