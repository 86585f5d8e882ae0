"""Facts about pretraining: the synthetic corpus is the given spec with the calibrated cell and one
replay of each measured training record, its records start at 0 s, and pretraining validates on
held-out synthetic cells when there are enough of them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hybrid.data.columns import CURRENT, TIME
from hybrid.data.corpus import Record, Corpus, load_corpus
from hybrid.transfer import synthetic as pretraining
from hybrid.transfer.synthetic import pretrain, synthetic_corpus
from sim.config import load_config
from sim.corpus import CorpusSpec
from tests.hybrid.transfer.test_selection import OPTIONS

ROOT = Path(__file__).resolve().parents[3]
SPEC = load_config(ROOT / "configs" / "corpus" / "smoke.yaml", CorpusSpec)


class Warmer:
    """A stand-in calibration: the cell 5 K warmer."""

    def apply(self, cell):
        return cell.model_copy(update={"ambient_temperature_K": 303.15})


def measured_corpus() -> Corpus:
    cells = {i: Record(i, {TIME: np.arange(5.0) + 100.0, CURRENT: np.full(5, 1.0 + i)}, {}, 298.15, 2.0, {})
             for i in (0, 1)}
    return Corpus(Path("."), pd.DataFrame({"physics_capacity_Ah": [2.0, 2.0]}, index=[0, 1]), cells, [], [])


def test_synthetic_corpus_adds_a_replay_of_each_training_record(tmp_path, monkeypatch):
    generated = {}

    def generate_corpus(spec, out, resume, progress):
        generated["spec"] = spec
        return {"counts": {"samples": 2}}

    def load(out):
        protocols = [choice.protocol.model_dump_json() for choice in generated["spec"].protocols[-2:]]
        cells = {i: Record(i, {TIME: np.arange(3.0) + 50.0}, {}, 298.15, 2.0, {}) for i in (0, 1)}
        return Corpus(out, pd.DataFrame({"protocol": protocols}, index=[0, 1]), cells, [], [])

    monkeypatch.setattr(pretraining, "generate_corpus", generate_corpus)
    monkeypatch.setattr(pretraining, "load_corpus", load)
    corpus, facts = synthetic_corpus(SPEC, measured_corpus(), [0, 1], tmp_path / "corpus", tmp_path / "profiles",
                                     calibration=Warmer())
    spec = generated["spec"]
    assert len(spec.protocols) == len(SPEC.protocols) + 2 and spec.cell.ambient_temperature_K == 303.15
    assert Path(spec.protocols[-1].protocol.current_csv) == tmp_path / "profiles" / "test_1.csv"
    assert all(cell.columns[TIME][0] == 0.0 for cell in corpus.cells.values())
    assert facts["measured_profile_cells"] == 2 and facts["rows"] == 6


@pytest.mark.parametrize("cells, disjoint", [(4, True), (2, False)])
def test_pretraining_validates_on_held_out_cells_when_there_are_four(smoke_corpus_dir, tmp_path, monkeypatch,
                                                                      cells, disjoint):
    corpus = load_corpus(smoke_corpus_dir)
    corpus = Corpus(corpus.path, corpus.samples, {i: corpus.cells[i] for i in corpus.sample_ids[:cells]},
                    corpus.physics_columns, corpus.design_columns)
    monkeypatch.setattr(pretraining, "train_records",
                        lambda name, data, model, config, run_dir: type("Trained", (), {"best_epoch": config.epochs}))
    checkpoint, facts = pretrain(corpus, OPTIONS, seed=1, runs=tmp_path)
    assert checkpoint == tmp_path / "seed1" / "pretrained" / "best.pt" and facts["best_epoch"] == OPTIONS.pretrain_epochs
    train, val = set(facts["train_cells"]), set(facts["val_cells"])
    assert train and val and train | val == set(corpus.sample_ids)
    assert (not train & val) if disjoint else train == val
