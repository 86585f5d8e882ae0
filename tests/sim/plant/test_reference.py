"""The synthetic plant of the default corpus differs from the physics model on all three
timescales, and the smoke corpus carries a residual worth learning."""

from pathlib import Path

import numpy as np
import pytest
import yaml

from sim.config import validate
from sim.corpus.generate import CorpusSpec
from sim.corpus.sample import run_sample

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def campaign():
    """One default-corpus cell (nominal design, no variability) through a short campaign."""
    raw = yaml.safe_load((ROOT / "configs/corpus/default.yaml").read_text())
    raw.update(cells=1, design=None, ambient_temperatures_K=[298.15])
    raw["reference"]["variability"] = {}
    raw["protocols"] = [{"protocol": {
        "kind": "ageing_campaign", "cycles": 12, "diagnostic_every": 4, "diagnostics": ["capacity", "hppc"],
        "cycling": {"period_s": 120, "charge_c_rate": 0.7}, "hppc": {"levels": 2, "soc_step": 0.3, "relax_s": 1800}}}]
    result = run_sample(validate(CorpusSpec, raw, "test"), 0)
    assert result.record["status"] == "ok", result.record["message"]
    return result


def _residual(series) -> np.ndarray:
    return series["Voltage [V]"] - series["Physics voltage [V]"]


def test_fast_timescale_pulse_resistance_is_higher_in_the_plant(campaign):
    cycles = campaign.cycles
    hppc = cycles["Tag"] == "hppc"
    plant = cycles["Pulse resistance [Ohm]"][hppc & (cycles["Source"] == "reference")]
    physics = cycles["Pulse resistance [Ohm]"][hppc & (cycles["Source"] == "physics")]
    # contact resistance (4 mOhm) and electrolyte polarisation the SPM lacks
    assert np.all(plant - physics > 0.005)


def _relaxed_residuals(series, min_rest_s: float = 400.0) -> tuple[list[float], list[float]]:
    """Residual at the end of each long rest, split by the sign of the current before it."""
    time_s, current, residual = series["Time [s]"], series["Current [A]"], _residual(series)
    resting = np.abs(current) < 0.05
    after_charge, after_discharge = [], []
    for end in np.flatnonzero(resting[:-1] & ~resting[1:]):
        start = end
        while start > 0 and resting[start - 1]:
            start -= 1
        if start > 0 and time_s[end] - time_s[start] >= min_rest_s:
            (after_charge if current[start - 1] < 0 else after_discharge).append(residual[end])
    return after_charge, after_discharge


def test_slow_reversible_timescale_relaxed_residual_depends_on_the_path(campaign):
    after_charge, after_discharge = _relaxed_residuals(campaign.series)
    assert len(after_charge) >= 3 and len(after_discharge) >= 3
    # the plant's hysteresis (30 mV wide) puts the relaxed voltage above the physics after a
    # charge and below it after a discharge; the physics model has a single OCP
    assert np.mean(after_charge) - np.mean(after_discharge) > 0.015


def test_ageing_timescale_residual_drifts_over_cycles(campaign):
    series, cycles = campaign.series, campaign.cycles
    checks = (cycles["Tag"] == "capacity") & (cycles["Source"] == "reference")
    residual = _residual(series)
    means = [residual[(series["Time [s]"] >= start) & (series["Time [s]"] <= end)].mean()
             for start, end in zip(cycles["Start time [s]"][checks], cycles["End time [s]"][checks])]
    assert len(means) == 4
    # loss of active material and plating in the plant pull its capacity-check voltage down,
    # check after check
    assert np.all(np.diff(means) < 0) and means[0] - means[-1] > 0.008


def test_smoke_corpus_residual_is_worth_learning(tmp_path):
    from sim.config import load_config
    from sim.corpus.generate import generate_corpus
    import pandas as pd

    generate_corpus(load_config(ROOT / "configs/corpus/smoke.yaml", CorpusSpec), tmp_path / "smoke", progress=False)
    series = pd.read_parquet(tmp_path / "smoke" / "series")
    rmse = np.sqrt(np.mean(_residual(series) ** 2))
    assert rmse > 0.010
