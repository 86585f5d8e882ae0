"""Pretraining on a synthetic corpus: a corpus spec with the (calibrated) physics cell and one
protocol per measured training record that replays its current, and the hybrid trained on it."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Sequence

from hybrid.data import TIME, Corpus, SplitOptions, assign_splits, fit_normalisation, load_corpus, replay_protocols
from hybrid.train import CHECKPOINT, TrainingSet
from hybrid.transfer.runs import TransferOptions, record_split, train_records
from sim.corpus import CorpusSpec, generate_corpus
from sim.measured import Calibration

PRETRAINED = "pretrained"  # the pretraining run's model name and folder (runs/seed<S>/pretrained)


def synthetic_corpus(spec: CorpusSpec, measured: Corpus, replay_ids: Sequence[int], out: Path, profiles: Path, *,
                     calibration: Calibration | None = None) -> tuple[Corpus, dict[str, Any]]:
    """Generate (or resume) ``spec`` in ``out``, its cell calibrated by ``calibration`` (None: as
    it is) and its protocols extended by one replay of each ``measured`` record of ``replay_ids``
    (their currents written to ``profiles``, see :func:`hybrid.data.replay_protocols`).

    Every record's time is shifted to start at 0 s, like a measured record's. Returns the loaded
    corpus and facts: sample counts by status, generation wall time [s], rows, and the number of
    cells that replay a measured current.
    """
    data = spec.model_dump()
    cell = calibration.apply(spec.cell).model_dump() if calibration is not None else data["cell"]
    spec = CorpusSpec.model_validate({**data, "cell": cell,
                                      "protocols": [*data["protocols"],
                                                    *replay_protocols(measured, replay_ids, profiles)]})
    started = time.perf_counter()
    manifest = generate_corpus(spec, out, resume=out.exists(), progress=False)
    corpus = load_corpus(out)
    for record in corpus.cells.values():
        record.columns[TIME] = record.columns[TIME] - record.columns[TIME][0]
    protocols = corpus.samples["protocol"].astype(str)
    return corpus, {"cells": manifest["counts"], "corpus_wall_s": round(time.perf_counter() - started, 1),
                    "rows": int(sum(c.rows for c in corpus.cells.values())),
                    "measured_profile_cells": int(protocols.str.contains(str(profiles), regex=False).sum())}


def pretrain(corpus: Corpus, options: TransferOptions, seed: int, runs: Path) -> tuple[Path, dict[str, Any]]:
    """The hybrid pretrained on ``corpus`` for ``options.pretrain_epochs`` with ``seed``, in
    runs/seed<seed>/pretrained: 20 % of the cells (``options.split_seed``) validate, or, with
    fewer than 4 cells, the training cells themselves. Returns (its best checkpoint, facts: the
    train and validation cells and the best epoch)."""
    if len(corpus.cells) >= 4:
        assignment = assign_splits(corpus, SplitOptions(seed=options.split_seed, val_fraction=0.2, test_fraction=0.0))
    else:  # too few cells to spare one
        assignment = record_split(corpus, corpus.sample_ids, [])
    data = TrainingSet(corpus, assignment, fit_normalisation(corpus, assignment, options.features, "hybrid"))
    run_dir = runs / f"seed{seed}" / PRETRAINED
    trained = train_records(PRETRAINED, data, options.hybrid_model,
                            options.train_config(options.pretrain_epochs, options.learning_rate, seed), run_dir)
    return run_dir / CHECKPOINT, {"train_cells": assignment.sample_ids("train"),
                                  "val_cells": assignment.sample_ids("val"), "best_epoch": trained.best_epoch}
