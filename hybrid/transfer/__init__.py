"""The sim-to-real stage: pretrain the hybrid on a synthetic corpus that replays measured
currents, choose epochs and a fine-tuning recipe on validation records, train on measured records.

- ``runs.py``: :class:`TransferOptions`, the model names, one resumable training on whole records;
- ``synthetic.py``: the synthetic corpus and pretraining on it;
- ``selection.py``: epoch budgets and the fine-tuning recipe chosen on validation records;
- ``measured.py``: training and scoring on measured records, the data-efficiency curve;
- ``workflow.py``: all of it in one call, :func:`transfer`.
"""

from hybrid.transfer.measured import (Scores, data_efficiency, finetune, measured_runs, plot_data_efficiency,
                                      train_measured, train_scratch)
from hybrid.transfer.runs import (FINETUNED, LAST, SCRATCH, TRAINED, ZERO_SHOT, TransferOptions, record_split,
                                  train_records)
from hybrid.transfer.selection import (NO_FINETUNING, Selection, candidates_table, choose, epoch_budgets,
                                       select_by_validation, validation_error)
from hybrid.transfer.synthetic import PRETRAINED, pretrain, synthetic_corpus
from hybrid.transfer.workflow import TransferResult, transfer

__all__ = ['FINETUNED', 'LAST', 'NO_FINETUNING', 'PRETRAINED', 'SCRATCH', 'Scores', 'Selection', 'TRAINED',
           'TransferOptions', 'TransferResult', 'ZERO_SHOT', 'candidates_table', 'choose', 'data_efficiency',
           'epoch_budgets', 'finetune', 'measured_runs', 'plot_data_efficiency', 'pretrain', 'record_split',
           'select_by_validation', 'synthetic_corpus', 'train_measured', 'train_records', 'train_scratch', 'transfer',
           'validation_error']
