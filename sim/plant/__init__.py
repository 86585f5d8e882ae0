from sim.plant.reference import ReferenceSpec, TRUTH_COLUMNS, measure_reference

__all__ = ['ReferenceSpec', 'TRUTH_COLUMNS', 'measure_reference']
