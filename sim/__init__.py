"""hybat's simulation side: PyBaMM physics with ageing submodels, protocols, the synthetic
plant and its sensor, measured cycler data, and paired corpora on disk. Never imports torch.

    from sim import CellSpec, Fidelity, HPPC, simulate, CorpusSpec, generate_corpus

The stages, in pipeline order (each a subpackage that re-exports its public names):
cells (CellSpec, design variables) -> protocols -> physics (Fidelity, simulate, Trajectory)
-> plant (synthetic reference, sensor) / measured (cycler files, calibration, pairing)
-> corpus (CorpusSpec, generate_corpus, the one corpus writer) on backends (serial, Ray).

Names load on first use, so ``import sim`` (and the ``hybat`` command) starts without
importing PyBaMM until a name is needed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sim.exports import lazy_exports

# public name -> stage module that defines it
_EXPORTS = {
    "sim.errors": ("HybatError", "ConfigError", "DataError", "SimulationError", "InfeasibleDesign",
                   "SampleTimeout", "TrainingDiverged"),
    "sim.config": ("load_config",),
    "sim.cells": ("CellSpec", "DESIGN_VARIABLES"),
    "sim.protocols": ("Protocol", "Rest", "ConstantCurrent", "ConstantVoltage", "Sequence", "Cycling", "FastCharge",
                      "HPPC", "Dynamic",
                      "AgeingCampaign", "CurrentTrace", "Ripple"),
    "sim.physics": ("Fidelity", "Hysteresis", "ModelCache", "Trajectory", "simulate"),
    "sim.plant": ("ReferenceSpec", "SensorSpec"),
    "sim.signals": ("AntiAliasFilter", "resample"),
    "sim.measured": ("MeasuredSeries", "load_measured", "ColumnMap", "Calibration", "CalibrationOptions",
                     "calibrate", "PairingSpec", "pair_measured", "export_bdf"),
    "sim.corpus": ("CorpusSpec", "generate_corpus"),
    "sim.backends": ("Backend", "make_backend", "ray_runtime"),
}
__all__, _STAGE_OF, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:  # what type checkers and IDEs see
    from sim.backends import Backend, make_backend, ray_runtime
    from sim.cells import DESIGN_VARIABLES, CellSpec
    from sim.config import load_config
    from sim.corpus import CorpusSpec, generate_corpus
    from sim.errors import (ConfigError, DataError, HybatError, InfeasibleDesign, SampleTimeout, SimulationError,
                            TrainingDiverged)
    from sim.measured import (Calibration, CalibrationOptions, ColumnMap, MeasuredSeries, PairingSpec, calibrate,
                              export_bdf, load_measured, pair_measured)
    from sim.physics import Fidelity, Hysteresis, ModelCache, Trajectory, simulate
    from sim.plant import ReferenceSpec, SensorSpec
    from sim.protocols import (HPPC, AgeingCampaign, ConstantCurrent, ConstantVoltage, CurrentTrace, Cycling, Dynamic,
                               FastCharge, Protocol, Rest, Ripple, Sequence)
    from sim.signals import AntiAliasFilter, resample
