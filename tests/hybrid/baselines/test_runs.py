"""Facts about the ECM baseline on corpus records: ECMs fitted per training temperature (jointly
on the records that share one) predict every record, held-out temperatures by interpolation."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hybrid.baselines.ecm import ECMParameters, simulate_ecm
from hybrid.baselines.runs import ecm_predictions
from hybrid.data.columns import CURRENT, TIME, VOLTAGE
from hybrid.data.corpus import Corpus, Record
from sim.errors import ConfigError
from tests.hybrid.baselines.test_ecm import OCV, TRUE, pulse_record


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
    predictions, fitted = ecm_predictions(corpus, temperatures, [0, 1], OCV, scale="linear")
    assert set(fitted) == {5.0, 25.0} and set(predictions) == {0, 1, 2}
    assert fitted[5.0].r0_ohm > fitted[25.0].r0_ohm  # each temperature got its own fit
    for sample_id, prediction in predictions.items():
        error_mV = 1e3 * (prediction.voltage_V - corpus.cells[sample_id].columns[VOLTAGE])
        assert np.sqrt(np.mean(error_mV ** 2)) < 5.0, sample_id  # the held-out record included
        assert prediction.soc is not None and prediction.soc[0] == pytest.approx(1.0)


def test_records_sharing_a_temperature_are_fitted_jointly():
    cold = replace(TRUE, r0_ohm=0.030)
    corpus = ecm_corpus({0: TRUE, 1: TRUE, 2: cold})  # two different current records at 25 degC
    _, fitted = ecm_predictions(corpus, {0: 25.0, 1: 25.0, 2: 5.0}, [0, 1, 2], OCV)
    assert set(fitted) == {5.0, 25.0}
    assert fitted[25.0].r0_ohm == pytest.approx(TRUE.r0_ohm, rel=0.05)
    assert fitted[5.0].r0_ohm == pytest.approx(cold.r0_ohm, rel=0.05)
    with pytest.raises(ConfigError, match="scale"):
        ecm_predictions(corpus, {0: 25.0, 1: 25.0, 2: 5.0}, [0, 1, 2], OCV, scale="Arrhenius")
