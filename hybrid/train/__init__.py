from hybrid.train.checkpoint import TrainedModel, load_checkpoint, load_trained, seed_everything
from hybrid.train.config import TrainConfig, torch_threads
from hybrid.train.dataset import TrainingSet, corpus_on_demand, load_training_set
from hybrid.train.loop import TrainResult, fit
from hybrid.train.recipes import FINETUNE_CANDIDATES, RECIPES, FineTune, Recipe, train_model
from hybrid.train.run import (BLACK_BOX, CHECKPOINT, CORPUS_MANIFEST, NORMALISATION, PHYSICS, RUN_CONFIG, SPLITS,
                              SUMMARY, EvaluationOptions, TrainRunConfig, read_run_file, train_run)

__all__ = ['BLACK_BOX', 'CHECKPOINT', 'CORPUS_MANIFEST', 'FINETUNE_CANDIDATES', 'NORMALISATION', 'PHYSICS', 'RECIPES',
           'RUN_CONFIG', 'SPLITS', 'SUMMARY', 'EvaluationOptions', 'FineTune', 'Recipe', 'TrainConfig', 'TrainResult',
           'TrainRunConfig', 'TrainedModel', 'TrainingSet', 'corpus_on_demand', 'fit', 'load_checkpoint',
           'load_trained', 'load_training_set', 'read_run_file', 'seed_everything', 'torch_threads', 'train_model',
           'train_run']
