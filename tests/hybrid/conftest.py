"""Shared by the hybrid tests."""

from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
SMOKE_CORPUS = ROOT / "configs" / "corpus" / "smoke.yaml"
SMOKE_RUN = ROOT / "configs" / "train" / "smoke.yaml"
SMOKE_EPOCHS = 6  # enough for a working model; the design tests test the loop, not the fit


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models run fastest on one thread, and do not stall when other processes share the CPUs."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def smoke_corpus_dir(tmp_path_factory) -> Path:
    """The smoke corpus (configs/corpus/smoke.yaml), generated once per test session on one thread."""
    from hybrid.train.config import torch_threads  # here: collecting other tests imports no torch code
    from sim.config import load_config
    from sim.corpus.generate import CorpusSpec, generate_corpus

    out = tmp_path_factory.mktemp("smoke") / "corpus"
    with torch_threads(1):
        generate_corpus(load_config(SMOKE_CORPUS, CorpusSpec), out, progress=False)
    return out


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory, smoke_corpus_dir) -> tuple[Path, dict, dict]:
    """(run_dir, train summary, evaluation report) of configs/train/smoke.yaml as it is on the smoke
    corpus, trained and evaluated once per test session on one thread (the train and evaluate tests)."""
    from hybrid.evaluate.run import evaluate_run
    from hybrid.train.config import torch_threads
    from hybrid.train.run import train_run

    run_dir = tmp_path_factory.mktemp("runs") / "smoke"
    with torch_threads(1):
        summary = train_run(SMOKE_RUN, smoke_corpus_dir, run_dir)
        return run_dir, summary, evaluate_run(run_dir, smoke_corpus_dir)


@pytest.fixture(scope="module")
def smoke_run_dir(tmp_path_factory, one_thread, smoke_corpus_dir) -> Path:
    """A short smoke training run (SMOKE_EPOCHS) on the smoke corpus, made once per test session
    (on disk under the session's base temp; the surrogate and design tests share it), on one thread."""
    from hybrid.train.run import TrainRunConfig, train_from_config  # here: collecting other tests needs no training
    from sim.config import load_config

    run = tmp_path_factory.getbasetemp() / "design_smoke" / "run"
    if not (run / "summary.json").exists():
        config = load_config(SMOKE_RUN, TrainRunConfig)
        config = config.model_copy(update={"train": config.train.model_copy(update={"epochs": SMOKE_EPOCHS})})
        train_from_config(config, smoke_corpus_dir, run)
    return run
