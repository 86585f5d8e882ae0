"""The sim-to-real stage: the transfer study over the folds of a measured data set, run from the
library and CLI steps of the README's workflow (pair, synthetic corpus, pretrain, fine-tune,
evaluate).

- ``study.py``: the data sets' defaults, the chain per fold, the data-efficiency curve, :func:`run_study`;
- ``tables.py``: per-test tables over seeds, the summary per fold kind and the issue's targets.
"""

from hybrid.transfer.study import DATASETS, QUICK, Dataset, StudySettings, check_overrides, run_fold, run_study
from hybrid.transfer.tables import COLUMNS, CURVE, LABELS, VARIANTS, markdown, summarise_rows

__all__ = [
           'COLUMNS',
           'CURVE',
           'DATASETS',
           'LABELS',
           'QUICK',
           'VARIANTS',
           'Dataset',
           'StudySettings',
           'check_overrides',
           'markdown',
           'run_fold',
           'run_study',
           'summarise_rows',
]
