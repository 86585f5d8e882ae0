"""The sim-to-real workflow in one call: pretrain on a synthetic corpus that replays the measured
training records, choose epochs and recipe on validation records, train and score on the measured
training records, and, when asked, the data-efficiency curve."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from hybrid.data import Corpus
from hybrid.evaluate import Predictions
from hybrid.transfer.measured import Scores, data_efficiency, measured_runs
from hybrid.transfer.synthetic import pretrain, synthetic_corpus
from hybrid.transfer.runs import TransferOptions, record_split
from hybrid.transfer.selection import Selection, select_by_validation
from sim.corpus import CorpusSpec
from sim.errors import ConfigError
from sim.measured import Calibration


@dataclass
class TransferResult:
    """What :func:`transfer` produced.

    scores: model name -> per seed: sample_id -> :func:`hybrid.evaluate.score_record`, every
        record of the measured corpus; predictions: the first seed's, model -> sample_id -> prediction;
    selection: the choice of the validation records;
    pretraining: facts of the synthetic corpus ("corpus") and of each seed's pretraining ("seed<S>");
    curve: the points of :func:`hybrid.transfer.data_efficiency`, or None;
    timings_s: wall time [s] per step (synthetic_corpus_s, pretraining_s, validation_s,
        measured_training_s, curve_s).
    """

    scores: Scores
    predictions: Predictions
    selection: Selection
    pretraining: dict[str, Any]
    curve: list[dict] | None
    timings_s: dict[str, float]


def transfer(measured: Corpus, spec: CorpusSpec, train_ids: Sequence[int], val_ids: Sequence[int],
             test_ids: Sequence[int], options: TransferOptions, work: Path, *, calibration: Calibration | None = None,
             curve_order: Sequence[int] | None = None) -> TransferResult:
    """Pretrain, select, train and score on the ``measured`` records.

    ``spec`` (with ``calibration`` applied to its cell) plus one replay of each training record
    is generated in work/synthetic_corpus (currents in work/profiles) and the hybrid pretrained on
    it per seed; the epochs and recipe are chosen on ``val_ids`` (a subset of ``train_ids``) with
    models fitted on the other training records; then every model is trained on all ``train_ids``
    and scored on every record (``test_ids`` held out). ``curve_order`` (the training records in
    the order they are added) asks for the data-efficiency curve. Runs go to work/runs (layout in
    :mod:`hybrid.transfer.runs`); what is left there is resumed.
    """
    if not set(val_ids) < set(train_ids) or set(train_ids) & set(test_ids):
        raise ConfigError(f"records: train {list(train_ids)}, validation {list(val_ids)}, test {list(test_ids)}; "
                          "allowed: validation a proper subset of train, test disjoint from train")
    if curve_order is not None and sorted(curve_order) != sorted(train_ids):
        raise ConfigError(f"curve_order = {list(curve_order)}; allowed: the training records {list(train_ids)} "
                          "in any order")
    runs, timings = work / "runs", {}
    tick = time.perf_counter()
    synthetic, corpus_facts = synthetic_corpus(spec, measured, train_ids, work / "synthetic_corpus", work / "profiles",
                                               calibration=calibration)
    timings["synthetic_corpus_s"] = time.perf_counter() - tick
    tick = time.perf_counter()
    pretrained, pretraining = {}, {"corpus": corpus_facts}
    for seed in options.seeds:
        pretrained[seed], pretraining[f"seed{seed}"] = pretrain(synthetic, options, seed, runs)
    timings["pretraining_s"] = time.perf_counter() - tick
    tick = time.perf_counter()
    selection = select_by_validation(measured, [i for i in train_ids if i not in val_ids], val_ids, pretrained,
                                     options, runs)
    timings["validation_s"] = time.perf_counter() - tick
    tick = time.perf_counter()
    scores, predictions = measured_runs(measured, record_split(measured, train_ids, test_ids), pretrained, selection,
                                        options, runs)
    timings["measured_training_s"] = time.perf_counter() - tick
    curve = None
    if curve_order is not None:
        tick = time.perf_counter()
        curve = data_efficiency(measured, curve_order, test_ids, pretrained, selection, options, runs, scores)
        timings["curve_s"] = time.perf_counter() - tick
    return TransferResult(scores, predictions, selection, pretraining, curve, timings)
