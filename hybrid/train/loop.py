"""One readable TBPTT training loop for residual RNNs, with checkpoints, early stopping and resume.

The entry point is :func:`fit`. A model is any ``nn.Module`` with
``forward(x, state=None) -> (y, new_state)``, x of shape (batch, time, input_size), y of shape
(batch, time, output_size), state None, a Tensor or a (nested) tuple of Tensors, and an
attribute ``causal: bool``.

Truncated backpropagation through time (TBPTT(K, K)): each batch of long sequences is cut into
consecutive chunks of ``chunk_steps`` (default K = ``truncation_steps``) time steps; the hidden
state is carried from chunk to chunk and detached every K steps; one optimizer step per chunk.
``truncation_steps=None`` (or K >= sequence length) is full BPTT. A non-causal model
(``causal=False``, e.g. bidirectional) cannot carry a state forward in time, so it sees each
K-step segment as an independent window.

The run directory holds:

- ``last.pt``  the state after the last completed epoch (model, optimizer, scheduler, RNG states,
  early-stopping counters, history): ``fit(..., resume=True)`` continues from it and reproduces
  the uninterrupted run exactly on CPU;
- ``best.pt``  the weights with the lowest validation loss so far (same format);
- ``grad_norms.jsonl``  per-layer gradient L2 norms (before clipping) every ``log_every``
  optimizer steps, one JSON object a line (null = non-finite), to spot vanishing or exploding
  gradients;
- ``history.json``  the per-epoch history, readable without torch.

The checkpoints are written and read by :mod:`hybrid.train.checkpoint`; :mod:`hybrid.train.recipes`
builds a model, optionally from a checkpoint with a fine-tuning recipe, and calls :func:`fit`.
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn
from tqdm import tqdm

from hybrid.data import SequenceBatch
from hybrid.models import State, detach_state
from hybrid.train.checkpoint import CheckpointWriter, Progress, plain_json
from hybrid.train.config import TrainConfig, deterministic_algorithms, resolve_device, torch_threads
from sim.errors import DataError, TrainingDiverged

log = logging.getLogger(__name__)

LossFn = Callable[[Tensor, Tensor, Tensor], Tensor]
_DIVERGENCE_HINT = ("lower learning_rate (now {config.learning_rate:g}), set or lower grad_clip (now "
                    "{config.grad_clip}), or check the batches for NaN/inf values")
_RNN_LAYER = re.compile(r"_(l\d+(?:_reverse)?)$")


@dataclass
class TrainResult:
    """What fit() returns. history: one dict per epoch (epoch, train_loss, val_loss, lr, seconds,
    steps_per_second = sequence time steps x sequences processed per training second)."""

    best_val_loss: float
    best_epoch: int
    initial_val_loss: float
    epochs_run: int
    stopped_early: bool
    history: list[dict[str, float]]
    run_dir: Path


def masked_mse(prediction: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """Mean squared error over valid steps: prediction, target (batch, time, outputs), mask (batch,
    time), bool or the steps' float weights (:meth:`SequenceBatch.row_weights`)."""
    weights = mask.unsqueeze(-1).to(prediction.dtype)  # (batch, time, 1)
    return ((prediction - target) ** 2 * weights).sum() / (weights.sum() * prediction.shape[-1])


def voltage_mse(prediction: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """:func:`masked_mse` of the first output (the voltage) only."""
    return masked_mse(prediction[..., :1], target[..., :1], mask)


def validation_loss(config: TrainConfig) -> LossFn:
    """The loss early stopping and best.pt judge by (see TrainConfig.select_on)."""
    return voltage_mse if config.select_on == "voltage" else masked_mse


def split_time(batch: SequenceBatch, steps: int | None) -> Iterator[SequenceBatch]:
    """Consecutive slices of ``steps`` time steps (the last may be shorter); None = the whole batch."""
    if steps is None or steps >= batch.num_steps:
        yield batch
        return
    for start in range(0, batch.num_steps, steps):
        yield batch.time_slice(start, start + steps)


def tbptt_loss(model: nn.Module, batch: SequenceBatch, truncation_steps: int | None,
               loss_fn: LossFn = masked_mse, state: State = None) -> tuple[Tensor, State]:
    """Loss over the whole of ``batch``, running the model in segments of ``truncation_steps``.

    The state enters each segment detached, so gradients flow back at most K steps; the loss of
    each segment is weighted by its steps' weights over the batch's valid steps, which makes the
    value equal to ``loss_fn`` on the full-sequence forward for a causal model (``loss_fn`` must
    be a weighted mean over valid steps). With row weights (:meth:`SequenceBatch.row_weights`)
    it is sum(weight x loss) / valid steps, not a mean normalised by the weights: a batch of
    heavy records then moves the model more, as its records' share of the split's weight says.
    Returns (scalar loss, final state with its graph).
    """
    carry_state = getattr(model, "causal", True)
    total_valid = int(batch.mask.sum())
    loss = batch.inputs.new_zeros(())
    for segment in split_time(batch, truncation_steps):
        state = detach_state(state) if carry_state else None
        prediction, state = model(segment.inputs, state)  # (batch, K, outputs)
        weights = segment.row_weights()
        weight = float(weights.sum())
        if weight > 0:
            loss = loss + loss_fn(prediction, segment.targets, weights) * (weight / total_valid)
    return loss, state


def initial_state(model: nn.Module, batch: SequenceBatch) -> State:
    """The state a batch's sequences start from: their context windows for a context-conditioned
    model (one with ``context_state``, see :mod:`hybrid.models.context`), else None."""
    if batch.context is not None and hasattr(model, "context_state"):
        return model.context_state(batch.context, batch.context_mask)
    return None


def sequence_gradients(model: nn.Module, batch: SequenceBatch, truncation_steps: int | None) -> dict[str, Tensor]:
    """Parameter gradients of the TBPTT loss over the whole sequence, one backward.

    K >= sequence length gives the full-BPTT gradients; smaller K drops the gradient paths longer
    than K steps.
    """
    model.zero_grad(set_to_none=True)
    loss, _ = tbptt_loss(model, batch, truncation_steps)
    loss.backward()
    return {name: p.grad.detach().clone() for name, p in model.named_parameters() if p.grad is not None}


def gradient_norms(model: nn.Module) -> dict[str, float]:
    """Gradient L2 norm per layer ("rnn.l0", "rnn.l1_reverse", "head", ...) and "total"."""
    squares: dict[str, float] = {}
    for name, parameter in model.named_parameters():
        if parameter.grad is None:
            continue
        module, _, leaf = name.rpartition(".")
        layer = _RNN_LAYER.search(leaf)  # torch RNNs name parameters weight_ih_l0, bias_hh_l1_reverse, ...
        group = ".".join(part for part in (module, layer and layer.group(1)) if part) or leaf
        squares[group] = squares.get(group, 0.0) + float(parameter.grad.detach().double().pow(2).sum())
    norms = {group: math.sqrt(value) for group, value in squares.items()}
    norms["total"] = math.sqrt(sum(squares.values()))
    return norms


@torch.no_grad()
def evaluate_loss(model: nn.Module, batches: Sequence[SequenceBatch], truncation_steps: int | None,
             loss_fn: LossFn = masked_mse, device: torch.device | str = "cpu") -> float:
    """Mean loss over the valid steps of all ``batches``, each step by its weight (model in eval
    mode, chunked to bound memory)."""
    was_training = model.training
    model.eval()
    weighted, valid = 0.0, 0
    for batch in batches:
        batch = batch.to(device)
        loss, _ = tbptt_loss(model, batch, truncation_steps, loss_fn, state=initial_state(model, batch))
        count = int(batch.mask.sum())
        weighted += float(loss) * count
        valid += count
    model.train(was_training)
    if valid == 0:
        raise DataError("validation batches hold no valid (mask = True) steps")
    return weighted / valid


def fit(model: nn.Module, train_batches: Sequence[SequenceBatch] | Callable[[int], Sequence[SequenceBatch]],
        val_batches: Sequence[SequenceBatch], config: TrainConfig, *, run_dir: Path, model_config: dict,
        normalisation: dict, resume: bool = False, extra: dict | None = None) -> TrainResult:
    """Train ``model`` with TBPTT, AdamW and early stopping; checkpoints go to ``run_dir``.

    train_batches: a list of SequenceBatch, or a function epoch (0-based) -> list, for data
        that changes per epoch (it must give the same number of batches every epoch). The order
        is shuffled per epoch by a generator seeded from (seed, epoch).
    val_batches: SequenceBatch list for the validation loss (early stopping, best.pt).
    model_config, normalisation, extra: JSON-able dicts stored in every checkpoint.
    resume: continue from run_dir/last.pt (DataError if absent). Without it, a run_dir that
        already holds last.pt is refused (ConfigError) rather than overwritten.

    Raises TrainingDiverged on NaN/inf or exploding loss, keeping the last good checkpoints.
    """
    run_dir = Path(run_dir)
    stored = {name: plain_json(name, value)
              for name, value in (("model_config", model_config), ("normalisation", normalisation),
                                  ("extra", extra or {}))}
    if not val_batches:
        raise DataError("val_batches is empty; early stopping and best.pt need validation data")
    device = resolve_device(config.device)
    batches_for_epoch = train_batches if callable(train_batches) else (lambda epoch: train_batches)
    total_steps = config.epochs * _optimizer_steps(batches_for_epoch(0), config.steps_per_update)
    model.to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_multiplier(config, total_steps))
    saver = CheckpointWriter(run_dir, model, optimizer, scheduler, config, stored)
    run_dir.mkdir(parents=True, exist_ok=True)
    with deterministic_algorithms(), torch_threads(config.threads):
        if resume:
            progress = saver.restore()
        else:
            progress = saver.start_fresh()
            progress.initial_val_loss = progress.best_val_loss = _initial_val_loss(model, val_batches, config, device)
            saver.save(progress, best=True)
        bar = tqdm(total=config.epochs, initial=progress.epoch, desc="train", unit="epoch", disable=None)
        with bar:
            while (progress.epoch < config.epochs
                   and progress.epochs_without_improvement < config.early_stopping_patience):
                started = time.perf_counter()
                train_loss, lr, processed = _train_epoch(model, batches_for_epoch(progress.epoch), optimizer,
                                                         scheduler, config, progress, saver.grad_log, device)
                train_seconds = time.perf_counter() - started
                val_loss = evaluate_loss(model, val_batches, config.truncation_steps, validation_loss(config),
                                         device=device)
                if not math.isfinite(val_loss):
                    raise TrainingDiverged(f"epoch {progress.epoch + 1}: validation loss is {val_loss}; "
                                           f"{_DIVERGENCE_HINT.format(config=config)}")
                improved = progress.record_epoch(
                    train_loss, val_loss, config.min_delta, lr=lr, seconds=time.perf_counter() - started,
                    steps_per_second=processed / train_seconds)
                saver.save(progress, best=improved)
                log.info("epoch %d/%d: train %.4g, val %.4g%s", progress.epoch, config.epochs, train_loss,
                         val_loss, " (best)" if improved else "")
                bar.update(1)
                bar.set_postfix(train=f"{train_loss:.3g}", val=f"{val_loss:.3g}")
    stopped_early = progress.epoch < config.epochs
    if stopped_early:
        log.info("early stopping after epoch %d: no improvement for %d epochs (best %.4g at epoch %d)",
                 progress.epoch, config.early_stopping_patience, progress.best_val_loss, progress.best_epoch)
    return TrainResult(best_val_loss=progress.best_val_loss, best_epoch=progress.best_epoch,
                       initial_val_loss=progress.initial_val_loss, epochs_run=progress.epoch,
                       stopped_early=stopped_early, history=progress.history, run_dir=run_dir)


def _train_epoch(model: nn.Module, batches: Sequence[SequenceBatch], optimizer: torch.optim.Optimizer,
                 scheduler: torch.optim.lr_scheduler.LRScheduler, config: TrainConfig, progress: Progress,
                 grad_log: Path, device: torch.device) -> tuple[float, float, int]:
    """One pass of TBPTT over ``batches`` in a seeded order; returns (mean loss, last lr, steps processed)."""
    model.train()
    loss_sum, valid_sum, processed, lr = 0.0, 0, 0, optimizer.param_groups[0]["lr"]
    for index in epoch_order(config.seed, progress.epoch, len(batches)):
        batch = batches[index].to(device)
        processed += batch.mask.numel()
        state = initial_state(model, batch)  # every batch holds fresh sequences
        for chunk in split_time(batch, config.steps_per_update):
            loss, state = tbptt_loss(model, chunk, config.truncation_steps, state=state)  # state carries on
            valid = int(chunk.mask.sum())
            if valid == 0:
                continue
            loss_value = loss.item()
            reference = min(progress.best_train_loss, loss_sum / valid_sum if valid_sum else math.inf)
            _check_loss(loss_value, reference, config, progress)
            lr = optimizer.param_groups[0]["lr"]
            _optimizer_step(model, loss, optimizer, config, progress, grad_log)
            scheduler.step()
            progress.global_step += 1
            loss_sum += loss_value * valid
            valid_sum += valid
    if valid_sum == 0:
        raise DataError(f"epoch {progress.epoch + 1}: the training batches hold no valid (mask = True) steps")
    return loss_sum / valid_sum, lr, processed


def _check_loss(loss: float, reference: float, config: TrainConfig, progress: Progress) -> None:
    """Raise TrainingDiverged if ``loss`` is NaN/inf or exceeds divergence_factor x reference."""
    if math.isfinite(loss) and not (reference > 0 and loss > config.divergence_factor * reference):
        return
    why = "is not finite" if not math.isfinite(loss) else (
        f"exceeds divergence_factor {config.divergence_factor:g} x best mean training loss {reference:.4g}")
    raise _diverged(f"loss {loss:.4g} {why}", config, progress)


def _diverged(what: str, config: TrainConfig, progress: Progress) -> TrainingDiverged:
    return TrainingDiverged(f"training diverged at epoch {progress.epoch + 1}, step {progress.global_step + 1}: "
                            f"{what}; {_DIVERGENCE_HINT.format(config=config)}. The last good checkpoints "
                            "(last.pt, best.pt) are kept")


def _optimizer_step(model: nn.Module, loss: Tensor, optimizer: torch.optim.Optimizer, config: TrainConfig,
                    progress: Progress, grad_log: Path) -> None:
    """Backward, log per-layer gradient norms, clip, refuse non-finite gradients, step."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    log_now = (progress.global_step + 1) % config.log_every == 0
    norms = gradient_norms(model) if log_now else {}
    total = float(nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip or math.inf))
    if log_now or not math.isfinite(total):
        record = {"epoch": progress.epoch + 1, "step": progress.global_step + 1, "loss": loss.item(),
                  "lr": optimizer.param_groups[0]["lr"], **(norms or {"total": total})}
        with grad_log.open("a") as stream:
            stream.write(json.dumps({k: v if math.isfinite(v) else None for k, v in record.items()}) + "\n")
    if not math.isfinite(total):
        raise _diverged(f"gradient norm is {total}", config, progress)
    optimizer.step()


def _initial_val_loss(model: nn.Module, val_batches: Sequence[SequenceBatch], config: TrainConfig,
                      device: torch.device) -> float:
    loss = evaluate_loss(model, val_batches, config.truncation_steps, validation_loss(config), device=device)
    if not math.isfinite(loss):
        raise DataError(f"validation loss of the untrained model is {loss}: check val_batches for NaN/inf values")
    return loss


def lr_multiplier(config: TrainConfig, total_steps: int) -> Callable[[int], float]:
    """Learning-rate factor as a function of the optimizer step, for LambdaLR."""
    warmup = config.warmup_steps

    def multiplier(step: int) -> float:
        if config.schedule == "onecycle":
            rise = warmup or max(1, round(0.3 * total_steps))
            if step < rise:
                return _cosine_between(1 / 25, 1.0, step / rise)
            return _cosine_between(1.0, 1 / 25e4, min(1.0, (step - rise) / max(1, total_steps - rise)))
        if step < warmup:
            return (step + 1) / warmup
        if config.schedule == "constant":
            return 1.0
        return _cosine_between(1.0, 0.0, min(1.0, (step - warmup) / max(1, total_steps - warmup)))

    return multiplier


def _cosine_between(start: float, end: float, fraction: float) -> float:
    return end + (start - end) * 0.5 * (1.0 + math.cos(math.pi * fraction))


def epoch_order(seed: int, epoch: int, count: int) -> list[int]:
    """Batch order of one epoch, a function of (seed, epoch) only, so a resumed run repeats it."""
    derived = int(np.random.SeedSequence([seed, epoch]).generate_state(1, dtype=np.uint64)[0] >> 1)
    return torch.randperm(count, generator=torch.Generator().manual_seed(derived)).tolist()


def _optimizer_steps(batches: Sequence[SequenceBatch], steps_per_update: int | None) -> int:
    """Optimizer steps in one epoch: chunks holding at least one valid step."""
    if not batches:
        raise DataError("train_batches is empty")
    return sum(int(chunk.mask.any()) for batch in batches for chunk in split_time(batch, steps_per_update))
