"""The ECM baseline on corpus records: one ECM fitted per training temperature, and its
predictions for every record (parameters interpolated in temperature)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from hybrid.baselines.ecm import (
    ECMParameters,
    ECMRecord,
    OCVCurve,
    check_scale,
    fit_ecm,
    interpolate_parameters,
    simulate_ecm,
)
from hybrid.data import CURRENT, TIME, VOLTAGE, Corpus
from hybrid.evaluate import RecordPrediction


def ecm_predictions(corpus: Corpus, temperatures: dict[int, float], train_ids: Sequence[int], ocv: OCVCurve, *,
                    scale: str = "arrhenius", capacities_Ah: dict[int, float] | None = None,
                    sample_ids: Sequence[int] | None = None
                    ) -> tuple[dict[int, RecordPrediction], dict[float, ECMParameters]]:
    """One ECM fitted jointly on the training records of each temperature [degC] (from
    ``temperatures``; each record's capacity [A.h] from ``capacities_Ah``, by default the corpus's
    throughput_capacity_Ah), interpolated in temperature on ``scale`` (see interpolate_parameters)
    for every record of ``sample_ids`` (default: the whole corpus); returns
    (sample_id -> prediction, temperature -> fitted parameters)."""
    check_scale(scale)  # before the fits, which take minutes on measured records
    if capacities_Ah is None:
        capacities_Ah = {i: float(corpus.samples.loc[i, "throughput_capacity_Ah"]) for i in train_ids}
    records_at = defaultdict(list)
    for sample_id in train_ids:
        cell = corpus.cells[sample_id]
        records_at[temperatures[sample_id]].append(ECMRecord(
            cell.columns[TIME], cell.columns[CURRENT], cell.columns[VOLTAGE], capacities_Ah[sample_id]))
    fitted = {temperature: fit_ecm(records, ocv).parameters for temperature, records in records_at.items()}
    predictions = {}
    for sample_id in corpus.sample_ids if sample_ids is None else sample_ids:
        cell = corpus.cells[sample_id]
        output = simulate_ecm(cell.columns[TIME], cell.columns[CURRENT], ocv,
                              interpolate_parameters(fitted, temperatures[sample_id], scale))
        predictions[sample_id] = RecordPrediction(output.voltage_V, output.soc)
    return predictions, fitted
