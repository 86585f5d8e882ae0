from sim.physics.config import SimulateConfig
from sim.physics.fidelity import Fidelity, Hysteresis
from sim.physics.simulate import ModelCache, prepare_cell, simulate
from sim.physics.summary import cycle_summary
from sim.physics.trajectory import Trajectory

__all__ = ['Fidelity', 'Hysteresis', 'ModelCache', 'SimulateConfig', 'Trajectory', 'cycle_summary', 'prepare_cell',
           'simulate']
