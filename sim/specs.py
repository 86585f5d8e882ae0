"""Top-level config files of the sim stage."""

from __future__ import annotations

from sim.cell import CellSpec
from sim.config import StrictModel
from sim.fidelity import Fidelity
from sim.protocols import Protocol


class SimulateConfig(StrictModel):
    """`hybat simulate CONFIG`: one cell, one protocol, one fidelity."""

    cell: CellSpec = CellSpec()
    fidelity: Fidelity = Fidelity()
    protocol: Protocol
