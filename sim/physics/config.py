"""Top-level config files of the sim stage."""

from __future__ import annotations

from sim.cells import CellSpec
from sim.config import StrictModel
from sim.physics.fidelity import Fidelity
from sim.protocols import Protocol


class SimulateConfig(StrictModel):
    """`hybat simulate CONFIG`: one cell, one protocol, one fidelity."""

    cell: CellSpec = CellSpec()
    fidelity: Fidelity = Fidelity()
    protocol: Protocol
