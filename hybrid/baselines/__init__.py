from hybrid.baselines.ecm import ECMParameters, ECMRecord, OCVCurve, fit_ecm, interpolate_parameters, simulate_ecm
from hybrid.baselines.runs import ecm_predictions, ocv_from_slow_tests

__all__ = ['ECMParameters', 'ECMRecord', 'OCVCurve', 'ecm_predictions', 'fit_ecm', 'interpolate_parameters', 'ocv_from_slow_tests', 'simulate_ecm']
