"""The unit of training data: padded sequences with a validity mask."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

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
