from hybrid.surrogate.metrics import METRICS, MassModel, MetricOptions, voltage_rmse_mV
from hybrid.surrogate.models import DesignEvaluation, HybridSurrogate, OperatingConditions, ReferenceModel, RunModel, ray_runtime

__all__ = ['DesignEvaluation', 'HybridSurrogate', 'METRICS', 'MassModel', 'MetricOptions', 'OperatingConditions', 'ReferenceModel', 'RunModel', 'ray_runtime', 'voltage_rmse_mV']
