from hybrid.baselines.ecm import ECMParameters, ECMRecord, OCVCurve, fit_ecm, interpolate_parameters, simulate_ecm
from hybrid.baselines.ocv import ocv_from_relaxations, ocv_from_slow_tests
from hybrid.baselines.runs import ecm_predictions

__all__ = ['ECMParameters', 'ECMRecord', 'OCVCurve', 'ecm_predictions', 'fit_ecm', 'interpolate_parameters',
           'ocv_from_relaxations', 'ocv_from_slow_tests', 'simulate_ecm']
