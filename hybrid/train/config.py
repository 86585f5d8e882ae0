"""How to train: :class:`TrainConfig`, and the torch runtime it names (device, CPU threads,
deterministic kernels)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Literal

import torch
from pydantic import Field, model_validator

from sim.config import StrictModel
from sim.errors import ConfigError


class TrainConfig(StrictModel):
    """How to train.

    epochs: maximum number of passes over the training batches.
    batch_size: sequences per batch (used by whoever builds the SequenceBatch list).
    truncation_steps: K, time steps between state detachments; None = full BPTT.
    chunk_steps: time steps per optimizer step, a multiple of K (default K): the loss of a chunk
        is accumulated over its K-step segments before one backward.
    learning_rate, weight_decay: AdamW settings.
    schedule: "cosine" (anneal to 0 over all steps), "constant", or "onecycle" (cosine rise from
        lr/25 over the warmup (30 % of the steps if warmup_steps = 0), then cosine decay to lr/25e4).
    warmup_steps: linear warmup, in optimizer steps (cosine and constant schedules).
    grad_clip: maximum global gradient L2 norm; None = no clipping.
    early_stopping_patience: epochs without a validation improvement larger than min_delta
        before stopping.
    record_weight_power: p, how the loss weighs records of different lengths: a row of a record
        with n valid rows weighs in proportion to n^-p, in training and validation (0: every row
        the same, so long records dominate; 1: every record the same; 0.5: a record weighs as
        sqrt(n)). Measured data mix lengths: on a 10 s grid a Samsung 30Q HPPC test holds about
        9,000 rows, a 1C discharge 345, so by rows each discharge is 4 % of an HPPC test, by
        sqrt 20 %; a 3C discharge the physics follows for 6 rows would, at p = 1, weigh as
        much as a whole HPPC test. In-memory corpora of whole records only (not streamed,
        distributed or forecast-window training).
    select_on: what the validation loss (early stopping, best.pt) measures: "voltage" (the
        first output only) or "all" outputs. The SOC and temperature heads are normalised by
        their own small spreads, so with "all" a head that barely matters (SOC residuals of
        0.05 %) can outweigh the voltage and pick the epoch: measured on the quickstart corpus,
        its validation loss stayed near 1 while the voltage error halved.
    seed: seeds torch, numpy and python RNGs and the per-epoch batch order.
    divergence_factor: a chunk loss above this factor times the best (lowest) mean training loss
        so far counts as divergence, as does any NaN/inf loss or gradient.
    log_every: optimizer steps between two lines of grad_norms.jsonl.
    device: torch device string, e.g. "cpu", "cuda", "cuda:1".
    threads: torch intra-op CPU threads while training. Small RNNs step through time in tiny
        kernels that gain nothing from more threads, and threads that outnumber the free cores
        spin against each other: measured here, an LSTM 64x2 step took 13 ms on one thread and
        80 ms to 8 s on two while other jobs ran.
    """

    epochs: int = Field(50, ge=1)
    batch_size: int = Field(8, ge=1)
    truncation_steps: int | None = Field(200, ge=1)
    chunk_steps: int | None = Field(None, ge=1)
    learning_rate: float = Field(1e-3, gt=0.0)
    weight_decay: float = Field(1e-4, ge=0.0)
    schedule: Literal["cosine", "constant", "onecycle"] = "cosine"
    warmup_steps: int = Field(0, ge=0)
    grad_clip: float | None = Field(1.0, gt=0.0)
    early_stopping_patience: int = Field(10, ge=1)
    min_delta: float = Field(0.0, ge=0.0)
    record_weight_power: float = Field(0.0, ge=0.0, le=1.0)
    select_on: Literal["voltage", "all"] = "voltage"
    seed: int = Field(0, ge=0)
    divergence_factor: float = Field(1e3, gt=1.0)
    log_every: int = Field(1, ge=1)
    device: str = "cpu"
    threads: int = Field(1, ge=1)

    @model_validator(mode="after")
    def _chunks_hold_whole_segments(self) -> "TrainConfig":
        if self.chunk_steps is None:
            return self
        if self.truncation_steps is None:
            raise ValueError(
                f"chunk_steps = {self.chunk_steps} needs truncation_steps; allowed: chunk_steps null "
                "when truncation_steps is null (full BPTT)")
        if self.chunk_steps % self.truncation_steps:
            raise ValueError(
                f"chunk_steps = {self.chunk_steps} is not a multiple of truncation_steps = "
                f"{self.truncation_steps}; allowed: k * truncation_steps, k >= 1")
        return self

    @model_validator(mode="after")
    def _known_device(self) -> "TrainConfig":
        try:
            torch.device(self.device)
        except RuntimeError:
            raise ValueError(f"device = {self.device!r}: not a torch device; allowed e.g. 'cpu', 'cuda:0'") from None
        return self

    @property
    def steps_per_update(self) -> int | None:
        """Time steps per optimizer step (None = the whole sequence)."""
        return self.chunk_steps or self.truncation_steps


@contextlib.contextmanager
def deterministic_algorithms() -> Iterator[None]:
    """Deterministic torch kernels inside the block; the caller's setting is restored after."""
    enabled, warn_only = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(enabled, warn_only=warn_only)


@contextlib.contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """torch uses ``count`` intra-op threads inside the block; the caller's setting is restored after."""
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def resolve_device(name: str) -> torch.device:
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device = {name!r}: CUDA is not available here; allowed: 'cpu'")
    return device
