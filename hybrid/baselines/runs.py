"""The ECM baseline on corpus records: an OCV curve from slow (C/30) tests, one ECM fitted per
training temperature, and its predictions for every record (parameters interpolated in temperature)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import pandas as pd

from hybrid.baselines.ecm import ECMParameters, ECMRecord, OCVCurve, fit_ecm, interpolate_parameters, simulate_ecm
from hybrid.data import CURRENT, TIME, VOLTAGE, Corpus
from hybrid.evaluate import RecordPrediction


def ocv_from_slow_tests(folder: Path, file_template: str) -> OCVCurve:
    """The OCV: mean of a C/30 discharge (script 1, to empty with script 2) and a C/30 charge
    (script 3, to full with script 4), each on an SOC axis of its own total charge.

    ``file_template`` names the CSV of a script in ``folder`` with ``{script}`` for its number
    (e.g. "A123_OCV_p25C_script{script}.csv.gz"); the files hold the columns current_A [A],
    voltage_V [V], dis_Ah_source and chg_Ah_source [A.h] (the cycler's charge counters).
    """
    def net(script: int, sign: float) -> pd.DataFrame:
        frame = pd.read_csv(folder / file_template.format(script=script))
        frame["net_Ah"] = sign * (frame["dis_Ah_source"] - frame["chg_Ah_source"])
        return frame

    branches = []
    for slow, finish, sign in ((1, 2, 1.0), (3, 4, -1.0)):
        leg, rest = net(slow, sign), net(finish, sign)
        total = float(leg["net_Ah"].iloc[-1] + rest["net_Ah"].iloc[-1])
        moving = leg["current_A"].abs() > 0.5 * leg["current_A"].abs().max()
        soc = leg["net_Ah"][moving] / total
        branches.append((1.0 - soc if sign > 0 else soc, leg["voltage_V"][moving]))
    return OCVCurve.from_branches(*branches[0], *branches[1])


def ecm_predictions(corpus: Corpus, temperatures: dict[int, float], train_ids: Sequence[int],
                    ocv: OCVCurve) -> tuple[dict[int, RecordPrediction], dict[float, ECMParameters]]:
    """An ECM fitted on each training record (its temperature [degC] from ``temperatures``, capacity
    from the corpus's throughput_capacity_Ah), interpolated in temperature for every record of
    ``corpus``; returns (sample_id -> prediction, temperature -> fitted parameters)."""
    fitted = {}
    for sample_id in train_ids:
        cell = corpus.cells[sample_id]
        record = ECMRecord(cell.columns[TIME], cell.columns[CURRENT], cell.columns[VOLTAGE],
                           float(corpus.samples.loc[sample_id, "throughput_capacity_Ah"]))
        fitted[temperatures[sample_id]] = fit_ecm([record], ocv).parameters
    predictions = {}
    for sample_id, cell in corpus.cells.items():
        output = simulate_ecm(cell.columns[TIME], cell.columns[CURRENT], ocv,
                              interpolate_parameters(fitted, temperatures[sample_id]))
        predictions[sample_id] = RecordPrediction(output.voltage_V, output.soc)
    return predictions, fitted
