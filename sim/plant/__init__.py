from sim.plant.reference import NOMINAL_PLANT_VOLTAGE, TRUTH_COLUMNS, ReferenceSpec, measure_reference
from sim.plant.sensor import SensorSpec, measure

__all__ = ['NOMINAL_PLANT_VOLTAGE', 'ReferenceSpec', 'SensorSpec', 'TRUTH_COLUMNS', 'measure', 'measure_reference']
