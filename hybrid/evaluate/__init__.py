from hybrid.evaluate.report import TIMESCALES, TrainedModel, capacity_to_cutoff, error_stats, evaluate_models, load_trained, predict_record, timescale_masks
from hybrid.evaluate.run import evaluate_run

__all__ = ['TIMESCALES', 'TrainedModel', 'capacity_to_cutoff', 'error_stats', 'evaluate_models', 'evaluate_run', 'load_trained', 'predict_record', 'timescale_masks']
