"""hybat's learning side: residual RNNs that learn what the physics gets wrong, the hybrid
surrogate built from them, and design loops that search through it.

    from hybrid import train_run, evaluate_run, HybridSurrogate, ReferenceModel, load_problem, design_loop

The stages, in pipeline order (each a subpackage that re-exports its public names):
data (corpus -> tensors, features, splits) -> models (one file per family) -> train (the
TBPTT loop, checkpoints, train_model with fine-tuning recipes, `hybat train` runs) -> evaluate
(predictions, error metrics, reports, `hybat evaluate`) beside baselines (ECM) -> surrogate
(physics + residual, design metrics) -> design (problems, optimiser, verification, active
learning, `hybat design`); transfer (sim-to-real: pretraining on a synthetic corpus that replays
measured currents, fine-tuning recipes chosen on validation records) sits beside design on top
of train and evaluate; quickstart and cli run them end to end.

Names load on first use, so the ``hybat`` command starts without importing torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sim.exports import lazy_exports

# public name -> stage module that defines it
_EXPORTS = {
    "hybrid.data": ("Record", "Corpus", "load_corpus", "FeatureOptions", "SplitOptions", "SplitAssignment",
                    "assign_splits", "SequenceBatch", "make_batches"),
    "hybrid.models": ("ResidualRNNConfig", "BlackBoxConfig", "TwoBranchConfig", "ForecasterConfig", "ResidualRNN",
                      "TwoBranchResidual", "Seq2SeqForecaster", "build_model"),
    "hybrid.train": ("TrainConfig", "fit", "train_model", "TrainRunConfig", "train_run", "load_trained",
                     "load_checkpoint", "seed_everything"),
    "hybrid.evaluate": ("evaluate_run", "evaluate_models", "predict_record", "rmse_mV", "error_stats"),
    "hybrid.baselines": ("OCVCurve", "ECMParameters", "ECMRecord", "fit_ecm", "simulate_ecm"),
    "hybrid.surrogate": ("HybridSurrogate", "ReferenceModel", "RunModel", "OperatingConditions", "DesignEvaluation",
                         "METRICS", "MetricOptions", "MassModel"),
    "hybrid.transfer": ("StudySettings", "run_study"),
    "hybrid.design": ("DesignProblem", "load_problem", "design_loop", "optimise", "verify", "pareto_front",
                      "hypervolume"),
}
__all__, _STAGE_OF, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:  # what type checkers and IDEs see
    from hybrid.baselines import ECMParameters, ECMRecord, OCVCurve, fit_ecm, simulate_ecm
    from hybrid.data import (Record, Corpus, FeatureOptions, SequenceBatch, SplitAssignment, SplitOptions, assign_splits,
                             load_corpus, make_batches)
    from hybrid.design import DesignProblem, design_loop, hypervolume, load_problem, optimise, pareto_front, verify
    from hybrid.evaluate import error_stats, evaluate_models, evaluate_run, predict_record, rmse_mV
    from hybrid.models import (BlackBoxConfig, ForecasterConfig, ResidualRNN, ResidualRNNConfig, Seq2SeqForecaster,
                               TwoBranchConfig, TwoBranchResidual, build_model)
    from hybrid.surrogate import (METRICS, DesignEvaluation, HybridSurrogate, MassModel, MetricOptions,
                                  OperatingConditions, ReferenceModel, RunModel)
    from hybrid.train import (TrainConfig, TrainRunConfig, fit, load_checkpoint, load_trained, seed_everything,
                              train_model, train_run)
    from hybrid.transfer import StudySettings, run_study
