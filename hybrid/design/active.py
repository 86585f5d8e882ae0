"""Active learning for design loops: the designs verified on the reference become training
records of the residual, which is fine-tuned before the optimiser searches again.

A verified design's reference trajectory is paired exactly as a corpus sample is: the physics
model is driven by the reference's current and charge counter on the reference's time grid
(:func:`paired_cell`). The surrogate's model is then fine-tuned on those records plus a
replay of the run's own training cells (against forgetting the rest of the design space),
and saved as a new run directory beside the design report, so every round's surrogate can be
reloaded and inspected.
"""

from __future__ import annotations

import functools
import json
import logging
import shutil
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
from pydantic import Field

from hybrid.data import DESIGN_PREFIX, PHYSICS_VOLTAGE, Record, Corpus, load_corpus, make_batches
from hybrid.train import CHECKPOINT, CORPUS_MANIFEST, NORMALISATION, RUN_CONFIG, SPLITS, SUMMARY, TrainRunConfig, read_run_file
from hybrid.models import config_from_dict
from hybrid.surrogate import HybridSurrogate
from hybrid.train import train_model
from sim.config import StrictModel, validate
from sim.errors import DataError
from sim.plant import TRUTH_COLUMNS
from sim.protocols import CurrentTrace
from sim.corpus import PHYSICS_COLUMNS, left_window_message, rows_inside_window
from sim.physics import simulate

log = logging.getLogger(__name__)
MEASURED_COLUMNS = ("Time [s]", "Current [A]", "Voltage [V]", "Cell temperature [K]", "Discharge capacity [A.h]")


class ActiveLearningOptions(StrictModel):
    """rounds: fine-tune-and-search rounds after the first verification (0: off); each round
        fine-tunes the residual on every design verified so far, runs the optimiser again on
        the new surrogate (``optimiser.trials`` more surrogate evaluations) and verifies its
        picks within what is left of ``verify.budget``.
    epochs, learning_rate: the fine-tuning (constant rate, final weights kept).
    replay_cells: training cells of the run's corpus mixed into every fine-tuning epoch
        (none when the corpus is no longer where the run says).
    """

    rounds: int = Field(0, ge=0, le=5)
    epochs: int = Field(20, ge=1)
    learning_rate: float = Field(1e-3, gt=0.0)
    replay_cells: int = Field(16, ge=0)


def paired_cell(surrogate: HybridSurrogate, design: dict[str, float], reference: dict[str, np.ndarray],
                ambient_K: float, initial_soc: float, sample_id: int) -> Record | None:
    """The reference trajectory ``reference`` (columns) of ``design`` paired with the
    surrogate's physics model driven by its current, cut where the physics leaves its voltage
    window (:mod:`sim.corpus.validity`, as a corpus sample is); None when the physics solve
    fails or leaves its window within two samples."""
    trace = CurrentTrace(reference["Time [s]"], reference["Current [A]"], reference["Discharge capacity [A.h]"])
    cell = surrogate.cell(design, ambient_K, initial_soc)
    physics = simulate(cell, trace, surrogate.fidelity, cache=surrogate.cache, voltage_cutoffs=False)
    if not physics.ok:
        log.warning("active learning: physics counterpart of design %s failed: %s", design, physics.message)
        return None
    rows = min(len(physics.columns["Time [s]"]), len(reference["Time [s]"]))
    window = physics.metadata["voltage_window_V"]
    rows = rows_inside_window(physics.columns["Voltage [V]"][:rows], window)
    if rows < 2:
        log.warning("active learning: physics counterpart of design %s %s", design,
                    left_window_message(window, float(reference["Time [s]"][rows])))
        return None
    columns = {name: np.asarray(reference[name][:rows], dtype=float)
               for name in (*MEASURED_COLUMNS, *TRUTH_COLUMNS) if name in reference}
    columns["Ambient temperature [K]"] = np.full(rows, ambient_K)
    columns.update({column: physics.columns[name][:rows] for name, column in PHYSICS_COLUMNS.items()
                    if name in physics.columns})
    if PHYSICS_VOLTAGE not in columns:
        raise DataError("active learning: the physics model gave no voltage")
    return Record(sample_id, columns, {DESIGN_PREFIX + name: value for name, value in design.items()},
                ambient_K, physics.metadata["capacity_Ah"], {})


def fine_tune(surrogate: HybridSurrogate, cells: Sequence[Record], options: ActiveLearningOptions,
              out_dir: Path, seed: int = 0) -> HybridSurrogate:
    """Fine-tune ``surrogate``'s residual (every member of its ensemble) on ``cells`` (plus
    replayed training cells) into a new run directory ``out_dir``; returns the surrogate of
    that run (sharing the built physics models of ``surrogate``)."""
    if not cells:
        raise DataError("active learning: no verified design gave a usable record to fine-tune on")
    run_dir, out_dir = surrogate.run_dir, Path(out_dir)
    if out_dir.exists():
        shutil.rmtree(out_dir)  # a rerun of the same round starts over
    out_dir.mkdir(parents=True)
    for name in (RUN_CONFIG, NORMALISATION, SPLITS, CORPUS_MANIFEST, SUMMARY):
        if (run_dir / name).exists():
            shutil.copy2(run_dir / name, out_dir / name)
    records = {cell.sample_id: cell for cell in cells}
    replay = _replay_cells(run_dir, options.replay_cells, seed, first_id=max(records) + 1)
    config = validate(TrainRunConfig, read_run_file(run_dir / RUN_CONFIG), str(run_dir / RUN_CONFIG))
    entry = next(entry for name, _, entry in config.entries() if name == surrogate.model_name)
    for k, trained in enumerate(surrogate.ensemble):  # every member, each with its own batch order
        train_config = config.train_config(entry).model_copy(update={
            "epochs": options.epochs, "learning_rate": options.learning_rate, "schedule": "constant",
            "warmup_steps": 0, "early_stopping_patience": options.epochs, "seed": seed + k})
        batches = _batches({**records, **replay}, trained.normalisation, train_config.batch_size)
        val_batches = _batches(records, trained.normalisation, train_config.batch_size)
        pretrained = run_dir / trained.name / CHECKPOINT
        train_model(trained.name, config_from_dict(trained.model_config), batches, val_batches, train_config,
                    out_dir / trained.name, normalisation=trained.normalisation, init=pretrained,
                    extra={"model_name": trained.name, "fine_tuned_from": str(pretrained),
                           "records": len(records), "replayed": len(replay)}, keep="last.pt")
        # the final weights: the fine-tuning set is small and its own validation set
        shutil.copy2(out_dir / trained.name / "last.pt", out_dir / trained.name / CHECKPOINT)
    tuned = HybridSurrogate(out_dir, model=surrogate.model_name)
    tuned.cache = surrogate.cache
    return tuned


def _batches(cells: dict[int, Record], normalisation: dict, batch_size: int) -> list:
    """Batches of whole records (make_batches reads only the cells of its corpus)."""
    corpus = Corpus(Path("."), pd.DataFrame(), cells, [], [])
    return make_batches(corpus, {i: (0, cell.rows) for i, cell in cells.items()}, normalisation, batch_size)


def _replay_cells(run_dir: Path, count: int, seed: int, first_id: int) -> dict[int, Record]:
    """Up to ``count`` training cells of the run's corpus (seeded pick), renumbered from ``first_id``."""
    if count == 0:
        return {}
    summary = json.loads((run_dir / SUMMARY).read_text()) if (run_dir / SUMMARY).exists() else {}
    corpus_dir = Path(summary.get("corpus", ""))
    if not (corpus_dir / "manifest.json").exists():
        log.warning("active learning: the run's corpus %s is gone; fine-tuning without replay", corpus_dir)
        return {}
    picked = _picked_training_cells(str(corpus_dir), tuple(summary["splits"]["train"]), count, seed)
    return {first_id + k: cell for k, cell in enumerate(picked)}


@functools.lru_cache(maxsize=4)
def _picked_training_cells(corpus_dir: str, train_ids: tuple[int, ...], count: int, seed: int) -> tuple[Record, ...]:
    """The seeded pick of training cells, read once per loop (every round replays the same cells)."""
    corpus = load_corpus(corpus_dir)
    available = [i for i in train_ids if i in corpus.cells]
    picked = np.random.default_rng(seed).permutation(available)[:count]
    return tuple(corpus.cells[int(i)] for i in sorted(picked))
