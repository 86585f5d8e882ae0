from hybrid.baselines.ecm import ECMParameters, ECMRecord, OCVCurve, fit_ecm, interpolate_parameters, simulate_ecm

__all__ = ['ECMParameters', 'ECMRecord', 'OCVCurve', 'fit_ecm', 'interpolate_parameters', 'simulate_ecm']
