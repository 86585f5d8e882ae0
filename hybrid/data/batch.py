"""The unit of training data: padded sequences with a validity mask, and how a corpus becomes batches."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from hybrid.data.context import ContextWindow, context_features
from hybrid.data.corpus import Corpus
from hybrid.data.features import cell_inputs, cell_targets
from sim.errors import DataError


@dataclass
class SequenceBatch:
    """Padded sequences: inputs (batch, time, features), targets (batch, time, outputs), float;
    mask (batch, time) bool, True at valid (non-padding) steps. For context-conditioned models
    also each sequence's context window (batch, context rows, context features) with its mask
    (batch, context rows) (see :mod:`hybrid.data.context`); None otherwise. ``weights`` (batch,)
    float: the loss weight of each valid row of each sequence (None: 1 everywhere)."""

    inputs: Tensor
    targets: Tensor
    mask: Tensor
    context: Tensor | None = None
    context_mask: Tensor | None = None
    weights: Tensor | None = None

    def __post_init__(self) -> None:
        if self.inputs.ndim != 3 or self.targets.ndim != 3 or self.mask.ndim != 2:
            raise DataError(
                f"SequenceBatch: shapes inputs {tuple(self.inputs.shape)}, targets {tuple(self.targets.shape)}, "
                f"mask {tuple(self.mask.shape)}; expected (batch, time, features), (batch, time, outputs), "
                "(batch, time)")
        if self.inputs.shape[:2] != self.targets.shape[:2] or self.inputs.shape[:2] != self.mask.shape:
            raise DataError(
                f"SequenceBatch: (batch, time) differ: inputs {tuple(self.inputs.shape[:2])}, targets "
                f"{tuple(self.targets.shape[:2])}, mask {tuple(self.mask.shape)}")
        if self.mask.dtype != torch.bool:
            raise DataError(f"SequenceBatch: mask dtype = {self.mask.dtype}; allowed: torch.bool")
        if not (self.inputs.is_floating_point() and self.targets.is_floating_point()):
            raise DataError(
                f"SequenceBatch: inputs dtype {self.inputs.dtype}, targets dtype {self.targets.dtype}; "
                "allowed: floating point")

    @property
    def num_steps(self) -> int:
        return self.inputs.shape[1]

    def row_weights(self) -> Tensor:
        """(batch, time) float: each step's loss weight, 0 at invalid steps."""
        rows = self.mask.to(self.inputs.dtype)
        return rows if self.weights is None else rows * self.weights.unsqueeze(-1)

    def time_slice(self, start: int, stop: int) -> "SequenceBatch":
        """Steps [start, stop) of every sequence (views, no copy)."""
        return SequenceBatch(self.inputs[:, start:stop], self.targets[:, start:stop], self.mask[:, start:stop],
                             self.context, self.context_mask, self.weights)

    def to(self, device: torch.device | str) -> "SequenceBatch":
        context = None if self.context is None else self.context.to(device)
        context_mask = None if self.context_mask is None else self.context_mask.to(device)
        weights = None if self.weights is None else self.weights.to(device)
        return SequenceBatch(self.inputs.to(device), self.targets.to(device), self.mask.to(device), context,
                             context_mask, weights)


def make_batches(corpus: Corpus, ranges: dict[int, tuple[int, int]], normalisation: dict[str, Any],
                 batch_size: int, context: ContextWindow | None = None,
                 record_weight_power: float = 0.0) -> list[SequenceBatch]:
    """Padded batches of the records up to ``stop``, masked to the valid scored rows [start, stop).

    With ``context``, each sequence also carries its context window, whose rows are not scored.
    With ``record_weight_power`` p > 0, each sequence's rows carry a weight proportional to its
    valid rows n to the power -p (:func:`record_weights`): p = 1 weighs every record the same.
    Sequences are sorted by length before grouping so that little padding is needed; fit
    shuffles the batch order per epoch.
    """
    sequences, contexts = [], []
    for sample_id, (start, stop) in sorted(ranges.items(), key=lambda item: (item[1][1], item[0])):
        cell = corpus.cells[sample_id]
        mask = cell.valid_rows(normalisation["max_residual_V"])[:stop]
        mask[:start] = False
        if context is not None:
            rows = context.rows(cell)
            contexts.append(context_features(cell, normalisation, rows))
            mask[:rows] = False
        sequences.append((cell_inputs(cell, normalisation)[:stop], cell_targets(cell, normalisation)[:stop], mask))
    weights = record_weights([mask for _, _, mask in sequences], record_weight_power) if record_weight_power else None
    batches = []
    for k in range(0, len(sequences), batch_size):
        batch = pad_sequences(sequences[k:k + batch_size])
        if context is not None:
            batch.context, batch.context_mask = pad_contexts(contexts[k:k + batch_size])
        if weights is not None:
            batch.weights = torch.from_numpy(weights[k:k + batch_size])
        batches.append(batch)
    return batches


def record_weights(masks: list[np.ndarray], power: float) -> np.ndarray:
    """(records,) float32: the row weight of each record of ``masks``, proportional to its valid
    rows n to the power -``power``, so that a record weighs n^(1 - power) in all (1: every record
    the same; 0.5: as the square root of its length, so that a record of a few rows cannot
    outweigh a long one), scaled so the weights of all valid rows sum to their count; 0 for a
    record without valid rows."""
    valid = np.array([int(mask.sum()) for mask in masks], dtype=np.float64)
    scored = valid > 0
    weights = np.zeros(len(masks))
    weights[scored] = valid[scored] ** -power
    weights *= valid.sum() / (weights * valid).sum()
    return weights.astype(np.float32)


def pad_contexts(contexts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[Tensor, Tensor]:
    """(features (rows, context features), mask (rows,)) list -> zero-padded (batch, rows,
    features) and (batch, rows) bool tensors."""
    rows = max(len(mask) for _, mask in contexts)
    features = torch.zeros(len(contexts), rows, contexts[0][0].shape[1])
    mask = torch.zeros(len(contexts), rows, dtype=torch.bool)
    for row, (x, valid) in enumerate(contexts):
        features[row, :len(x)] = torch.from_numpy(x)
        mask[row, :len(valid)] = torch.from_numpy(valid)
    return features, mask


def pad_sequences(sequences: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> SequenceBatch:
    """(inputs (time, features), targets (time, outputs), mask (time,)) list -> one SequenceBatch,
    zero-padded at the end with mask False."""
    if not sequences:
        raise DataError("pad_sequences: no sequences to batch")
    steps = max(len(mask) for _, _, mask in sequences)
    inputs = torch.zeros(len(sequences), steps, sequences[0][0].shape[1])  # (batch, time, features)
    targets = torch.zeros(len(sequences), steps, sequences[0][1].shape[1])  # (batch, time, outputs)
    mask = torch.zeros(len(sequences), steps, dtype=torch.bool)  # (batch, time)
    for row, (x, y, valid) in enumerate(sequences):
        inputs[row, :len(x)] = torch.from_numpy(x)
        targets[row, :len(y)] = torch.from_numpy(y)
        mask[row, :len(valid)] = torch.from_numpy(valid)
    return SequenceBatch(inputs, targets, mask)
