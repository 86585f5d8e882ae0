from hybrid.surrogate.mass import MassModel
from hybrid.surrogate.metrics import METRICS, MetricOptions, voltage_rmse_mV
from hybrid.surrogate.models import DesignEvaluation, HybridSurrogate, OperatingConditions, ReferenceModel, RunModel

__all__ = ['DesignEvaluation', 'HybridSurrogate', 'METRICS', 'MassModel', 'MetricOptions', 'OperatingConditions', 'ReferenceModel', 'RunModel', 'voltage_rmse_mV']
