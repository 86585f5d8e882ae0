from hybrid.data.batch import SequenceBatch
from hybrid.train.loop import TrainConfig, TrainResult, fit, load_checkpoint, seed_everything, torch_threads
from hybrid.train.run import BLACK_BOX, CHECKPOINT, CORPUS_MANIFEST, NORMALISATION, RUN_CONFIG, SPLITS, SUMMARY, PHYSICS, EvaluationOptions, TrainRunConfig, train_run

__all__ = ['BLACK_BOX', 'PHYSICS', 'EvaluationOptions', 'CHECKPOINT', 'CORPUS_MANIFEST', 'NORMALISATION', 'RUN_CONFIG', 'SPLITS', 'SUMMARY', 'SequenceBatch', 'TrainConfig', 'TrainResult', 'TrainRunConfig', 'fit', 'load_checkpoint', 'seed_everything', 'torch_threads', 'train_run']
