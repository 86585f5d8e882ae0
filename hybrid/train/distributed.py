"""Data-parallel training on Ray: ``hybat train CONFIG --corpus DIR --out RUN --workers N
[--address HOST:PORT]``.

Ray Train (``ray.train.torch.TorchTrainer``) starts N worker processes joined by a torch process
group. Each streams its share of the training sequences from the corpus's shards
(:func:`hybrid.data.stream.stream_batches`: every N-th of the length-sorted order, batch_size / N
sequences a batch, so that one step of all the workers sees batch_size sequences, as one process
would) and runs :func:`hybrid.train.loop.fit` on a replica of the model built from the same seed.
After each backward the gradients are averaged over the workers, so every replica takes the same
optimizer step and the replicas stay identical. Every worker validates on the whole validation
split (the same loss everywhere, so they stop early together); worker 0 writes the checkpoints
(best.pt, last.pt, history.json) to the run directory in the format of a one-process run, so
``hybat evaluate`` reads them unchanged.

Why not torch's DistributedDataParallel wrapper: it renames the state dict ("module."), hides the
attributes of the model that fit and the checkpoints read (``causal``, ``context_state``) and
expects one forward per backward, while TBPTT runs several segments per optimizer step and skips
chunks without valid steps. The gradients are averaged as its reducer does instead: one all-reduce
queued at the end of each backward, before clipping.

Each optimizer step's all-reduce waits for every worker, so all must take the same number of steps
per epoch: a worker whose share holds fewer (fewer or shorter sequences) repeats the first chunks of
its own batches to make up the difference, as torch's DistributedSampler repeats samples.

The corpus and the run directory must be at the same path on every node (a shared filesystem).
Ray is imported here only, and only when a distributed run starts.
"""

from __future__ import annotations

import contextlib
import itertools
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from hybrid.data import ContextWindow, Corpus, SequenceBatch
from hybrid.data.stream import stream_batches
from hybrid.data.windows import ForecastWindows
from hybrid.models import ModelConfig, build_model, config_to_dict
from hybrid.train.checkpoint import TrainedModel, load_checkpoint, load_trained, seed_everything
from hybrid.train.config import TrainConfig
from hybrid.train.loop import TrainResult, fit, split_time
from sim.errors import ConfigError, DataError, HybatError


def check_workers(workers: int | None, address: str | None) -> None:
    """ConfigError unless ``workers`` is None (one process, no ``address``) or at least 1."""
    if workers is None and address is not None:
        raise ConfigError(f"--address {address} without --workers: how many training workers?; allowed: "
                          "--workers N with --address")
    if workers is not None and workers < 1:
        raise ConfigError(f"--workers = {workers}; allowed: 1 or more training workers")


@contextlib.contextmanager
def training_cluster(workers: int | None, address: str | None) -> Iterator[None]:
    """Ray for the block when ``workers`` is given (a local runtime with that many CPUs, or the
    cluster at ``address``; see :func:`sim.backends.ray_backend.ray_runtime`), nothing otherwise."""
    check_workers(workers, address)
    if workers is None:
        yield
        return
    from sim.backends.ray_backend import ray_runtime

    with ray_runtime(None if address else workers, address):
        yield


@dataclass(frozen=True)
class _Job:
    """What every worker needs to train its replica (pickled to the workers)."""

    model_config: ModelConfig
    corpus: Corpus
    train: dict[int, tuple[int, int]]
    val: dict[int, tuple[int, int]]
    normalisation: dict[str, Any]
    context: ContextWindow | None
    forecast: ForecastWindows | None
    config: TrainConfig
    run_dir: Path
    extra: dict[str, Any]


def train_distributed(name: str, model_config: ModelConfig, corpus: Corpus, train: dict[int, tuple[int, int]],
                      val: dict[int, tuple[int, int]], normalisation: dict[str, Any], config: TrainConfig,
                      run_dir: Path, *, workers: int, context: ContextWindow | None = None,
                      forecast: ForecastWindows | None = None,
                      extra: dict[str, Any] | None = None) -> tuple[TrainedModel, TrainResult]:
    """Train a model of ``model_config`` on the ``train`` rows of the streamed ``corpus`` (see
    :func:`hybrid.data.stream.open_corpus`) with ``workers`` Ray Train workers, validated on
    ``val``, into ``run_dir``; Ray must be running (:func:`training_cluster`). Returns what
    :func:`hybrid.train.recipes.train_model` returns: the best checkpoint loaded as ``name`` and
    fit's result. ConfigError for settings a distributed run cannot honour."""
    if config.batch_size % workers:
        raise ConfigError(f"train.batch_size = {config.batch_size} with --workers {workers}: each worker takes "
                          f"batch_size / workers sequences a step; allowed: a multiple of {workers}")
    if torch.device(config.device).type != "cpu":
        raise ConfigError(f"train.device = {config.device!r} with --workers: distributed training runs on CPU "
                          "workers; allowed: device 'cpu'")
    if forecast is None and len(train) < workers:
        raise ConfigError(f"--workers {workers}: the train split has {len(train)} records, one worker would have "
                          f"none; allowed: at most {len(train)} workers")
    from sim.backends.ray_backend import ray_train

    train_api = ray_train()
    job = _Job(model_config, corpus, train, val, normalisation, context, forecast, config, Path(run_dir).resolve(),
               extra or {})
    job.run_dir.parent.mkdir(parents=True, exist_ok=True)
    storage = Path(tempfile.mkdtemp(prefix=".ray_train_", dir=job.run_dir.parent))  # Ray Train's own files
    trainer = train_api.torch.TorchTrainer(
        _train_worker, train_loop_config={"job": job},
        scaling_config=train_api.ScalingConfig(num_workers=workers, use_gpu=False),
        run_config=train_api.RunConfig(name=name, storage_path=str(storage)))
    try:
        trainer.fit()
    except train_api.TrainingFailedError as error:  # it wraps a worker's exception: hybat's stay one line
        raise _hybat_error(error) or error
    finally:
        shutil.rmtree(storage, ignore_errors=True)
    return load_trained(job.run_dir / "best.pt", name), _result(job.run_dir, config)


def _train_worker(loop_config: dict[str, Any]) -> None:
    """One worker: its share of the training batches, the whole validation split, fit."""
    job: _Job = loop_config["job"]
    rank, workers = dist.get_rank(), dist.get_world_size()
    train = stream_batches(job.corpus, job.train, job.normalisation, job.config.batch_size // workers, job.context,
                           job.forecast, part=(rank, workers))
    val = stream_batches(job.corpus, job.val, job.normalisation, job.config.batch_size, job.context, job.forecast)
    seed_everything(job.config.seed)  # the same initial weights on every worker
    model = build_model(job.model_config)
    average_gradients(model)
    with tempfile.TemporaryDirectory() as scratch:  # the other workers' checkpoints are copies of worker 0's
        fit(model, even_steps(train, job.config.steps_per_update), val, job.config,
            run_dir=job.run_dir if rank == 0 else Path(scratch), model_config=config_to_dict(job.model_config),
            normalisation=job.normalisation, extra=job.extra)


def average_gradients(model: nn.Module) -> None:
    """From now on, at the end of every backward, replace each gradient of ``model`` by its mean
    over the workers of the process group (one all-reduce of all of them); a gradient that no
    worker has stays None. Every worker must run the same number of backwards."""
    parameters = [parameter for parameter in model.parameters() if parameter.requires_grad]
    queued = False

    def all_reduce() -> None:
        nonlocal queued
        queued = False
        present = torch.tensor([float(p.grad is not None) for p in parameters])
        flat = torch.cat([present, *((p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1)
                                     for p in parameters)])  # (parameters + weights,)
        dist.all_reduce(flat)
        values = flat[len(parameters):] / dist.get_world_size()
        for parameter, count, gradient in zip(parameters, flat[:len(parameters)],
                                              values.split([p.numel() for p in parameters])):
            parameter.grad = gradient.view_as(parameter).clone() if count > 0 else None

    def on_gradient(_: torch.Tensor) -> None:
        nonlocal queued
        if not queued:  # the first gradient of a backward: reduce them all once it has finished
            queued = True
            # the engine's end-of-backward callback, the one torch's DDP and FSDP reduce in
            torch.autograd.Variable._execution_engine.queue_callback(all_reduce)

    for parameter in parameters:
        parameter.register_post_accumulate_grad_hook(on_gradient)


class _WithRepeats(Sequence[SequenceBatch]):
    """``batches`` followed by ``repeats``: (batch index, time steps) = the first steps of a batch."""

    def __init__(self, batches: Sequence[SequenceBatch], repeats: list[tuple[int, int | None]]):
        self.batches, self.repeats = batches, repeats

    def __len__(self) -> int:
        return len(self.batches) + len(self.repeats)

    def __getitem__(self, index: int) -> SequenceBatch:  # type: ignore[override]
        if index < len(self.batches):
            return self.batches[index]
        batch, steps = self.repeats[index - len(self.batches)]
        return self.batches[batch] if steps is None else self.batches[batch].time_slice(0, steps)


def even_steps(batches: Sequence[SequenceBatch], steps_per_update: int | None) -> Sequence[SequenceBatch]:
    """``batches`` followed by repeats of the first chunks of its batches, as many optimizer steps
    (chunks of ``steps_per_update`` with a valid step) as the worker with the most has more (one
    pass over ``batches`` counts them)."""
    valid = [[k for k, chunk in enumerate(split_time(batch, steps_per_update)) if chunk.mask.any()]
             for batch in batches]
    steps = torch.tensor([sum(len(chunks) for chunks in valid)])
    most = steps.clone()
    dist.all_reduce(most, op=dist.ReduceOp.MAX)
    missing = int(most - steps)
    if missing and not int(steps):
        raise DataError(f"worker {dist.get_rank()}: its share of the training split holds no valid rows; "
                        "allowed: fewer workers")
    repeats: list[tuple[int, int | None]] = []
    for index, chunks in itertools.cycle(enumerate(valid)):
        if missing <= 0:
            break
        take = min(missing, len(chunks))
        if take:
            repeats.append((index, None if steps_per_update is None else (chunks[take - 1] + 1) * steps_per_update))
            missing -= take
    return _WithRepeats(batches, repeats)


def _result(run_dir: Path, config: TrainConfig) -> TrainResult:
    """fit's result, from the last checkpoint worker 0 wrote."""
    progress = load_checkpoint(run_dir / "last.pt")["progress"]
    return TrainResult(best_val_loss=progress["best_val_loss"], best_epoch=progress["best_epoch"],
                       initial_val_loss=progress["initial_val_loss"], epochs_run=progress["epoch"],
                       stopped_early=progress["epoch"] < config.epochs, history=progress["history"], run_dir=run_dir)


def _hybat_error(error: BaseException) -> HybatError | None:
    """The first HybatError a worker raised, found in the error Ray Train reports (its workers'
    failures and causes), or None."""
    pending, seen = [error], set()
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, HybatError):
            return current
        pending += [current.__cause__, current.__context__, *getattr(current, "worker_failures", {}).values()]
    return None
