from hybrid.data.batch import SequenceBatch, make_batches
from hybrid.data.columns import (
    AMBIENT,
    CHARGE,
    CURRENT,
    DESIGN_PREFIX,
    PHYSICS_SOC,
    PHYSICS_TEMPERATURE,
    PHYSICS_VOLTAGE,
    SOC,
    TEMPERATURE,
    TIME,
    TIME_STEP,
    VOLTAGE,
    VOLTAGE_RESIDUAL,
)
from hybrid.data.context import ContextWindow, context_features, context_size, context_targets, context_window
from hybrid.data.corpus import Record, Corpus, load_corpus
from hybrid.data.folds import Fold, fold_of, group_label, leave_one_out, training_order
from hybrid.data.features import (
    FeatureOptions,
    cell_inputs,
    normalise_features,
    cell_targets,
    decode_outputs,
    fit_normalisation,
)
from hybrid.data.splits import (
    SPLIT_NAMES,
    LateLifeSplit,
    SplitAssignment,
    SplitOptions,
    assign_splits,
)
from hybrid.data.stream import open_corpus, stream_batches, stream_normalisation, stream_splits

__all__ = ['ContextWindow', 'context_features', 'context_size', 'context_targets', 'context_window', 'SequenceBatch', 'AMBIENT', 'CHARGE', 'CURRENT', 'Record', 'Corpus', 'DESIGN_PREFIX', 'FeatureOptions', 'Fold', 'LateLifeSplit', 'PHYSICS_SOC', 'PHYSICS_TEMPERATURE', 'PHYSICS_VOLTAGE', 'SOC', 'SPLIT_NAMES', 'SplitAssignment', 'SplitOptions', 'TEMPERATURE', 'TIME', 'TIME_STEP', 'VOLTAGE', 'VOLTAGE_RESIDUAL', 'assign_splits', 'cell_inputs', 'cell_targets', 'decode_outputs', 'fit_normalisation', 'fold_of', 'group_label', 'leave_one_out', 'training_order', 'load_corpus', 'make_batches', 'normalise_features', 'open_corpus', 'stream_batches', 'stream_normalisation', 'stream_splits']
