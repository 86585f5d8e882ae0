"""Facts about sim.measured.records: which files a PairingSpec names (sorted, with their ambient
temperature and companions), and each record as the physics model sees it (ended at the cut-off,
with the cycler's net counter, its net discharge including companions)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sim.config import load_config
from sim.errors import ConfigError, DataError
from sim.measured.columns import AMBIENT_TEMPERATURE, TIME, VOLTAGE
from sim.measured.fit_data import DISCHARGE_CAPACITY
from sim.measured.records import find_tests, load_test, measured_net_discharge
from sim.measured.spec import PairingSpec, resolve_data_dir
from tests.real_data import needs_real_data

CONFIGS = Path(__file__).resolve().parents[3] / "configs" / "measured"
CELL = {"parameter_set": "Chen2020"}


def write_discharge(path: Path, current_A: float = 2.0, rows: int = 361, counters: bool = False) -> Path:
    """A 10 s constant-current discharge whose voltage falls from 4.0 V to 2.8 V (3.0 V at row 300)."""
    time_s = np.arange(rows) * 10.0
    frame = pd.DataFrame({"time_s": time_s, "current_A": np.full(rows, current_A),
                          "voltage_V": np.linspace(4.0, 2.8, rows)})
    if counters:  # the cycler's cumulative Ah, starting from an earlier test's total
        frame["dis_Ah"] = 7.0 + current_A * time_s / 3600.0
        frame["chg_Ah"] = 1.5
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)
    return path


def spec(tests: list[dict], **fields) -> PairingSpec:
    return PairingSpec.model_validate({"tests": tests, "cell": CELL, **fields})


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    for name in ("b_2.csv", "b_10.csv", "a_1.csv", "notes.txt"):
        write_discharge(tmp_path / name)
    (tmp_path / "b_dir.csv").mkdir()  # a folder matching a pattern is not a test
    return tmp_path


def test_tests_are_in_pattern_order_then_sorted_file_names_with_their_ambient_temperature(data_dir):
    tests = find_tests(spec([{"pattern": "b_*.csv", "ambient_temperature_C": 45.0, "tag": "hot"},
                             {"pattern": "a_*.csv", "ambient_temperature_C": 10.0}]), data_dir)
    assert [test.relative for test in tests] == ["b_10.csv", "b_2.csv", "a_1.csv"]
    assert [test.index for test in tests] == [0, 1, 2]
    assert [test.ambient_temperature_K for test in tests] == pytest.approx([318.15, 318.15, 283.15])
    assert [test.tag for test in tests] == ["hot", "hot", "test"]
    assert tests[0].path == data_dir / "b_10.csv" and tests[0].companions == ()


def test_the_ambient_temperature_comes_from_the_nearest_manifest(tmp_path):
    write_discharge(tmp_path / "dyn" / "cell_1.csv")
    write_discharge(tmp_path / "dyn" / "cell_2.csv")
    pd.DataFrame({"file": ["dyn/cell_1.csv", "dyn/cell_2.csv"], "chamber_C": [25.0, 0.0]}
                 ).to_csv(tmp_path / "manifest.csv", index=False)
    tests = find_tests(spec([{"pattern": "dyn/*.csv", "ambient_manifest_column": "chamber_C"}]), tmp_path)
    assert [test.ambient_temperature_K for test in tests] == pytest.approx([298.15, 273.15])
    no_column = spec([{"pattern": "dyn/*.csv", "ambient_manifest_column": "setpoint_C"}])
    with pytest.raises(DataError, match="needs columns 'file' and 'setpoint_C'"):
        find_tests(no_column, tmp_path)


def test_a_missing_manifest_names_the_file_and_the_column(data_dir):
    with pytest.raises(DataError, match=r"a_1.csv: no manifest.csv .*ambient_manifest_column = 'chamber_C'"):
        find_tests(spec([{"pattern": "a_*.csv", "ambient_manifest_column": "chamber_C"}]), data_dir)


def test_no_ambient_source_leaves_the_temperature_unknown_and_loading_refuses_it(data_dir):
    pairing = spec([{"pattern": "a_*.csv"}])
    test = find_tests(pairing, data_dir)[0]
    assert test.ambient_temperature_K is None
    with pytest.raises(ConfigError, match="no ambient temperature"):
        load_test(pairing, test.path, test.ambient_temperature_K)


def test_a_pattern_that_matches_nothing_names_itself(data_dir):
    with pytest.raises(ConfigError, match="nothing_"):
        find_tests(spec([{"pattern": "nothing_*.csv", "ambient_temperature_C": 25.0}]), data_dir)


def test_a_missing_data_dir_is_named_with_the_variable_that_sets_it(tmp_path):
    missing = tmp_path / "no_such_folder"
    with pytest.raises(ConfigError, match=f"data_dir: {missing} is not a directory .*HYBAT_REAL_DATA"):
        find_tests(spec([{"pattern": "*.csv", "ambient_temperature_C": 25.0}]), missing)


def test_a_companion_is_named_by_substitution_and_adds_its_discharge(tmp_path):
    write_discharge(tmp_path / "cell_script1.csv", current_A=2.0)
    write_discharge(tmp_path / "cell_script2.csv", current_A=1.0)
    pairing = spec([{"pattern": "*script1.csv", "ambient_temperature_C": 25.0,
                     "continued_by": {"script1": "script2"}, "full_to_empty": True}])
    test, = find_tests(pairing, tmp_path)
    assert test.companions == (tmp_path / "cell_script2.csv",) and test.full_to_empty
    measured = load_test(pairing, test.path, test.ambient_temperature_K)
    # 2 A then 1 A, each held for 3600 s
    assert measured_net_discharge(pairing, test, measured) == pytest.approx(3.0, rel=1e-12)
    wrong = spec([{"pattern": "*script1.csv", "continued_by": {"script3": "script4"}}])
    with pytest.raises(ConfigError, match="'script3' does not occur in the file name 'cell_script1.csv'"):
        find_tests(wrong, tmp_path)


def test_a_record_ends_at_its_first_sample_below_the_cut_off(data_dir):
    pairing = spec([{"pattern": "a_*.csv", "ambient_temperature_C": 25.0}], end_below_voltage_V=3.0)
    measured = load_test(pairing, data_dir / "a_1.csv", 298.15)
    voltage = measured.columns[VOLTAGE]
    assert voltage.min() >= 3.0 and len(voltage) == 301  # 4.0 V - 1.2 V * 300/360 = 3.0 V at row 300
    assert all(len(values) == 301 for values in measured.columns.values())
    assert np.all(measured.columns[AMBIENT_TEMPERATURE] == 298.15)
    with pytest.raises(DataError, match="starts below end_below_voltage_V = 4.5 V"):
        load_test(pairing.model_copy(update={"end_below_voltage_V": 4.5}), data_dir / "a_1.csv", 298.15)


def test_the_cycler_counters_become_the_net_discharge_from_zero(tmp_path):
    path = write_discharge(tmp_path / "counted.csv", current_A=2.0, counters=True)
    pairing = spec([{"pattern": "*.csv", "ambient_temperature_C": 25.0}],
                   charge_counters={"discharge": "dis_Ah", "charge": "chg_Ah"})
    measured = load_test(pairing, path, 298.15)
    np.testing.assert_allclose(measured.columns[DISCHARGE_CAPACITY], 2.0 * measured.columns[TIME] / 3600.0,
                               atol=1e-12)
    missing = pairing.model_copy(update={"charge_counters": pairing.charge_counters.model_copy(
        update={"charge": "no_such_column"})})
    with pytest.raises(DataError, match=f"{path}: charge_counters"):
        load_test(missing, path, 298.15)


@needs_real_data
def test_shipped_configs_find_every_measured_test():
    counts = {}
    for name in ("a123_dynamic", "samsung30q_hppc", "samsung30q_rate"):
        spec = load_config(CONFIGS / f"{name}.yaml", PairingSpec)
        tests = find_tests(spec, resolve_data_dir(spec.data_dir))
        counts[name] = len(tests)
        assert all(test.ambient_temperature_K is not None or name == "samsung30q_rate" for test in tests)
    assert counts == {"a123_dynamic": 6, "samsung30q_hppc": 18, "samsung30q_rate": 10}
