"""Cross-validation folds from a samples table: no held-out test ever trains, validates or calibrates."""

import pandas as pd
import pytest

from hybrid.data import fold_of, leave_one_out, training_order
from sim.errors import ConfigError

A123_TEMPERATURES_C = (-25, -15, 5, 15, 25, 45)
A123_CALIBRATION = "dyn/A123_DYN_p25C_script1.csv.gz"
SAMSUNG_CALIBRATION = "hppc/DNN01_HPPC_1C_20C.csv.gz"


def a123_file(celsius: float) -> str:
    return f"dyn/A123_DYN_{'m' if celsius < 0 else 'p'}{abs(celsius):02g}C_script1.csv.gz"


def a123_samples(temperatures_C=A123_TEMPERATURES_C) -> pd.DataFrame:
    """One test per temperature, like the paired A123 corpus, plus a failed one at 35 degC."""
    rows = [{"sample_id": k, "status": "ok", "file": a123_file(t), "tag": "dynamic",
             "ambient_temperature_K": t + 273.15 + (k - 3) * 1e-10}  # a measured mean: not exact
            for k, t in enumerate(temperatures_C)]
    rows.append({"sample_id": len(rows), "status": "failed", "file": a123_file(35), "tag": "dynamic",
                 "ambient_temperature_K": 308.15})
    return pd.DataFrame(rows)


def samsung_samples() -> pd.DataFrame:
    """Three HPPC cells x 3 rates x 20/30 degC and two rate cells x 5 CC discharges, with cell ids."""
    rows = [(f"hppc/{cell}_HPPC_{rate}_{t}C.csv.gz", "hppc", cell, t) for cell in ("DNN01", "DNN02", "DNN03")
            for rate in ("1C", "2C", "C2") for t in (20, 30)]
    rows += [(f"rate/Q30_{cell}_{rate}.csv.gz", "cc_discharge", cell, 22.7) for cell in ("S001", "S002")
             for rate in ("C10", "1C", "2C", "3C", "4C")]
    return pd.DataFrame([{"sample_id": k, "status": "ok", "file": file, "tag": tag, "cell_id": cell,
                          "ambient_temperature_K": t + 273.15} for k, (file, tag, cell, t) in enumerate(rows)])


def assert_sound(fold, samples: pd.DataFrame) -> None:
    """Held-out tests neither train nor validate nor calibrate; every usable test has one role."""
    test, val, train = set(fold.test_files), set(fold.val_files), set(fold.train_files)
    assert test and val and train
    assert not test & (val | train) and not val & train
    assert not set(fold.validation) & set(fold.held_out)
    assert fold.calibration_file not in test
    assert test | val | train == set(samples.loc[samples["status"] == "ok", "file"])


def test_a123_leave_one_temperature_out_validates_on_the_inner_neighbour():
    samples = a123_samples()
    folds = leave_one_out(samples, group_by="ambient_temperature_K", calibration_file=A123_CALIBRATION)
    for fold in folds:
        assert_sound(fold, samples)
    # an inner training temperature nearest the held-out one; never 25 degC (calibration) while another fits
    assert {fold.held_out[0]: fold.validation[0] for fold in folds} == {
        -25.0: 5.0, -15.0: 5.0, 5.0: 15.0, 15.0: 5.0, 25.0: 15.0, 45.0: 15.0}
    assert [fold.held_out for fold in folds] == [(t,) for t in map(float, A123_TEMPERATURES_C)]  # 35 failed


def test_a123_held_out_calibration_test_is_replaced_by_the_nearest_training_test():
    samples = a123_samples()
    folds = {fold.held_out: fold for fold in
             leave_one_out(samples, group_by="ambient_temperature_K", calibration_file=A123_CALIBRATION)}
    assert folds[(15.0,)].calibration_file == A123_CALIBRATION
    # 25 held out, 15 validates: 5 and 45 degC are both 20 K away; the file name breaks the tie
    assert folds[(25.0,)].calibration_file == a123_file(5)


def test_a123_fixed_split_matches_the_issue_with_or_without_the_validation_given():
    samples = a123_samples()
    options = {"group_by": "ambient_temperature_K", "calibration_file": A123_CALIBRATION}
    given = fold_of(samples, **options, held_out=[-15.0, 15.0], validation=[5.0], kind="fixed")
    ruled = fold_of(samples, **options, held_out=["-15", "15"])
    for fold in (given, ruled):
        assert_sound(fold, samples)
        assert fold.validation == (5.0,)
        assert set(fold.train_files) == {a123_file(t) for t in (-25, 25, 45)}
    assert given.name == "-15C+15C_val_5C" and given.kind == "fixed"


def test_a_data_efficiency_curve_adds_training_tests_from_the_calibration_test_outward():
    samples = a123_samples((0, 10, 20, 30, 40, 50))
    fold = fold_of(samples, group_by="ambient_temperature_K", calibration_file=a123_file(20), held_out=[30.0],
                   validation=[10.0])
    # 20 first (calibration), then the farthest from those taken: 50, then 0, then 40 (10 K from 50, 20 from 20)
    assert training_order(samples, fold) == tuple(a123_file(t) for t in (20, 50, 0, 40))


def test_temperatures_never_seen_before_form_their_own_folds():
    samples = a123_samples((0, 10, 20, 30, 40))
    folds = leave_one_out(samples, group_by="ambient_temperature_K", calibration_file=a123_file(20))
    # 20 degC holds the calibration test, so 0 and 10 degC validate on 30 although 20 is nearer
    assert {fold.held_out[0]: fold.validation[0] for fold in folds} == {
        0.0: 30.0, 10.0: 30.0, 20.0: 10.0, 30.0: 10.0, 40.0: 10.0}
    for fold in folds:
        assert_sound(fold, samples)


def test_samsung_leave_one_cell_out_validates_on_the_next_cell_of_the_same_kind_while_one_still_trains():
    samples = samsung_samples()
    folds = leave_one_out(samples, group_by="cell_id", calibration_file=SAMSUNG_CALIBRATION)
    for fold in folds:
        assert_sound(fold, samples)
    # the next cell in order with tests of the same kind, skipping DNN01 (calibration); a rate
    # cell held out leaves one rate cell, which trains, so an HPPC cell validates
    assert {fold.held_out[0]: fold.validation[0] for fold in folds} == {
        "DNN01": "DNN02", "DNN02": "DNN03", "DNN03": "DNN02", "S001": "DNN02", "S002": "DNN02"}
    for fold in folds:
        trained_tags = set(samples.loc[samples["file"].isin(fold.train_files), "tag"])
        assert set(samples.loc[samples["file"].isin(fold.test_files), "tag"]) <= trained_tags
    calibrations = {fold.held_out[0]: fold.calibration_file for fold in folds}
    assert calibrations["DNN02"] == SAMSUNG_CALIBRATION
    assert calibrations["DNN01"] == "hppc/DNN03_HPPC_1C_20C.csv.gz"  # same tag and temperature, a training cell


@pytest.mark.parametrize(("held_out", "validation", "message"), [
    (["17"], [], "held_out = 17: no usable tests there; allowed: -25C, -15C"),
    (["35"], [], "held_out = 35"),  # its only test failed to pair
    (["5"], ["5"], "validation = \\['5C'\\]"),
    (["-25", "-15", "5", "15", "25"], [], "leaves no validation and training groups"),
])
def test_bad_folds_are_one_line_config_errors(held_out, validation, message):
    with pytest.raises(ConfigError, match=message):
        fold_of(a123_samples(), group_by="ambient_temperature_K", calibration_file=A123_CALIBRATION,
                held_out=held_out, validation=validation)


def test_a_missing_group_column_is_named():
    with pytest.raises(ConfigError, match="group_by = 'cell_id': not a column"):
        leave_one_out(a123_samples(), group_by="cell_id", calibration_file=A123_CALIBRATION)
