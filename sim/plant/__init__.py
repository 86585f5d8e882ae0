from sim.plant.reference import TRUTH_COLUMNS, ReferenceSpec, measure_reference
from sim.plant.sensor import SensorSpec, measure

__all__ = ['ReferenceSpec', 'SensorSpec', 'TRUTH_COLUMNS', 'measure', 'measure_reference']
