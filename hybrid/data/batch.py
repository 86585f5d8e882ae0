"""The unit of training data: padded sequences with a validity mask, and how a corpus becomes batches."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from hybrid.data.corpus import Corpus
from hybrid.data.features import cell_inputs, cell_targets
from sim.errors import DataError


@dataclass
class SequenceBatch:
    """Padded sequences: inputs (batch, time, features), targets (batch, time, outputs), float;
    mask (batch, time) bool, True at valid (non-padding) steps."""

    inputs: Tensor
    targets: Tensor
    mask: Tensor

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

    def time_slice(self, start: int, stop: int) -> "SequenceBatch":
        """Steps [start, stop) of every sequence (views, no copy)."""
        return SequenceBatch(self.inputs[:, start:stop], self.targets[:, start:stop], self.mask[:, start:stop])

    def to(self, device: torch.device | str) -> "SequenceBatch":
        return SequenceBatch(self.inputs.to(device), self.targets.to(device), self.mask.to(device))


def make_batches(corpus: Corpus, ranges: dict[int, tuple[int, int]], normalisation: dict[str, Any],
                 batch_size: int) -> list[SequenceBatch]:
    """Padded batches of the records up to ``stop``, masked to the valid scored rows [start, stop).

    Sequences are sorted by length before grouping so that little padding is needed; fit
    shuffles the batch order per epoch.
    """
    sequences = []
    for sample_id, (start, stop) in sorted(ranges.items(), key=lambda item: (item[1][1], item[0])):
        cell = corpus.cells[sample_id]
        mask = cell.valid_rows(normalisation["max_residual_V"])[:stop]
        mask[:start] = False
        sequences.append((cell_inputs(cell, normalisation)[:stop], cell_targets(cell, normalisation)[:stop], mask))
    return [pad_sequences(sequences[k:k + batch_size]) for k in range(0, len(sequences), batch_size)]


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
