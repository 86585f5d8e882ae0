from sim.signals.filters import AntiAliasFilter, alias_frequency, lowpass_gain, resample, tone_amplitude
from sim.signals.grid import check_time

__all__ = ['AntiAliasFilter', 'alias_frequency', 'check_time', 'lowpass_gain', 'resample', 'tone_amplitude']
