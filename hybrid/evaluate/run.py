"""`hybat evaluate`: every model of a training run scored on a corpus."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hybrid.data import Corpus, SplitAssignment, load_corpus
from hybrid.evaluate.measured import is_measured, measured_baselines
from hybrid.evaluate.report import evaluate_models
from hybrid.train import load_trained
from hybrid.train.run import CHECKPOINT, METRICS, RUN_CONFIG, SPLITS, TrainRunConfig, read_run_file, write_run_file
from sim.config import validate
from sim.errors import DataError




def evaluate_run(run_dir: Path, corpus_dir: Path) -> dict[str, Any]:
    """Evaluate every model of the run in ``run_dir`` on ``corpus_dir``; writes metrics.json and
    plots/*.png and returns the report::

        {"splits": {SPLIT: {MODEL: {"rmse_mV", "mae_mV", "max_mV", "points"}}},
         "timescales", "long_horizon", "soc", "soh", "validity", "throughput", "models", "plots", ...}

    SPLIT among train, val, test, late_life, unseen_design, unseen_temperature (empty ones
    omitted); MODEL among physics, black_box and the hybrid names. A forecaster (kind
    forecaster) is scored in ``"rolling"`` only: {SPLIT: {MODEL: {"rmse_mV", ..., "horizon_s"}}}
    (see :mod:`hybrid.evaluate.rolling`).

    On a measured corpus (written by `hybat pair-measured`) the report adds ``"per_test"``: one
    row per record with every model's voltage RMSE over the record and inside 5-95 % SOC and
    SOC MAE, beside physics_nominal and the ECM (``config.evaluation.ecm``), and ``"ecm"``: its
    options, training records and fitted parameters per temperature, or null
    (see :mod:`hybrid.evaluate.measured`).
    """
    run_dir, corpus_dir = Path(run_dir), Path(corpus_dir)
    config = validate(TrainRunConfig, read_run_file(run_dir / RUN_CONFIG), str(run_dir / RUN_CONFIG))
    assignment = SplitAssignment.from_dict(read_run_file(run_dir / SPLITS))
    corpus = load_corpus(corpus_dir)
    _check_same_corpus(corpus, assignment, corpus_dir)
    models = []
    for name, _, _ in config.entries():
        trained = load_trained(run_dir / name / CHECKPOINT, name)
        trained.history = read_run_file(run_dir / name / "history.json")  # best.pt's history stops at its epoch
        models.append(trained)
    measured, baselines, ecm = is_measured(corpus_dir), None, None
    if measured:  # before the models run: a bad ECM option fails before the long inference
        baselines, ecm = measured_baselines(corpus, assignment, config.evaluation.ecm)
    report = evaluate_models(corpus, assignment, models, config.evaluation, config.features.max_residual_V,
                             plot_dir=run_dir / "plots", baselines=baselines)
    report = {"run": config.name, "corpus": str(corpus_dir), **report, **({"ecm": ecm} if measured else {})}
    write_run_file(run_dir / METRICS, report)
    return report


def _check_same_corpus(corpus: Corpus, assignment: SplitAssignment, corpus_dir: Path) -> None:
    for split in assignment.names():
        for sample_id, (_, stop) in assignment.ranges[split].items():
            cell = corpus.cells.get(sample_id)
            if cell is None or cell.rows < stop:
                raise DataError(f"{corpus_dir}: sample {sample_id} of split '{split}' is missing or shorter than "
                                "when the run was trained; allowed: the corpus the run was trained on")
