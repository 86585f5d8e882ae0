"""Facts about the ECM baseline on corpus records: the OCV from a slow discharge and charge is
the mean of the two branches, and ECMs fitted per training temperature predict every record,
held-out temperatures by interpolation."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hybrid.baselines.ecm import ECMParameters, simulate_ecm
from hybrid.baselines.runs import ecm_predictions, ocv_from_slow_tests
from hybrid.data.columns import CURRENT, TIME, VOLTAGE
from hybrid.data.corpus import Record, Corpus
from tests.hybrid.baselines.test_ecm import OCV, TRUE, pulse_record

TEMPLATE = "slow_script{script}.csv"
OVERPOTENTIAL_V = 0.02  # of the slow tests: below the OCV on discharge, above it on charge


def write_slow_tests(folder: Path, capacity_Ah: float = 2.0, main_Ah: float = 1.9) -> None:
    """Scripts 1/3: a C/30 discharge/charge of ``main_Ah``; scripts 2/4: the rest at a tenth of the current."""
    for script, sign in ((1, 1.0), (2, 1.0), (3, -1.0), (4, -1.0)):
        main = script in (1, 3)
        charge_Ah = main_Ah if main else capacity_Ah - main_Ah
        current = capacity_Ah / 30.0 * (1.0 if main else 0.1)
        counter = np.linspace(0.0, charge_Ah, 400)
        if sign > 0:  # discharge from full (script 1) or from the end of script 1 (script 2)
            soc = 1.0 - (counter + (0.0 if main else main_Ah)) / capacity_Ah
        else:  # charge from empty, then the rest to full
            soc = (counter + (0.0 if main else main_Ah)) / capacity_Ah
        frame = pd.DataFrame({"current_A": np.full(counter.size, sign * current),
                              "voltage_V": OCV(soc) - sign * OVERPOTENTIAL_V,
                              "dis_Ah_source": counter if sign > 0 else 0.0,
                              "chg_Ah_source": counter if sign < 0 else 0.0})
        frame.to_csv(folder / TEMPLATE.format(script=script), index=False)


def test_ocv_is_the_mean_of_the_slow_branches(tmp_path):
    write_slow_tests(tmp_path)
    ocv = ocv_from_slow_tests(tmp_path, TEMPLATE)
    covered = np.linspace(0.06, 0.94, 45)  # where both branches were measured with the main current
    np.testing.assert_allclose(ocv(covered), OCV(covered), atol=2e-3)  # the overpotentials cancel
    assert np.all(np.diff(ocv.soc) > 0)


def ecm_corpus(parameters: dict[int, ECMParameters]) -> Corpus:
    """One record per sample id, simulated by that id's ECM from full."""
    cells, capacity = {}, {}
    for sample_id, truth in parameters.items():
        time_s, current = pulse_record(seed=sample_id, hours=4.0)
        voltage = simulate_ecm(time_s, current, OCV, truth).voltage_V
        cells[sample_id] = Record(sample_id, {TIME: time_s, CURRENT: current, VOLTAGE: voltage}, {}, 298.15,
                                truth.capacity_Ah, {})
        capacity[sample_id] = truth.capacity_Ah
    samples = pd.DataFrame({"throughput_capacity_Ah": capacity})
    return Corpus(Path("."), samples, cells, [], [])


def test_ecms_fitted_per_training_temperature_predict_every_record():
    cold, warm = replace(TRUE, r0_ohm=0.030), replace(TRUE, r0_ohm=0.010)
    middle = replace(TRUE, r0_ohm=0.020)  # what linear interpolation at the held-out 15 degC gives
    corpus = ecm_corpus({0: cold, 1: warm, 2: middle})
    temperatures = {0: 5.0, 1: 25.0, 2: 15.0}
    predictions, fitted = ecm_predictions(corpus, temperatures, [0, 1], OCV)
    assert set(fitted) == {5.0, 25.0} and set(predictions) == {0, 1, 2}
    assert fitted[5.0].r0_ohm > fitted[25.0].r0_ohm  # each temperature got its own fit
    for sample_id, prediction in predictions.items():
        error_mV = 1e3 * (prediction.voltage_V - corpus.cells[sample_id].columns[VOLTAGE])
        assert np.sqrt(np.mean(error_mV ** 2)) < 5.0, sample_id  # the held-out record included
        assert prediction.soc is not None and prediction.soc[0] == pytest.approx(1.0)
