from sim.signals.filters import AntiAliasFilter, _check_time, alias_frequency, lowpass_gain, resample, tone_amplitude

__all__ = ['AntiAliasFilter', '_check_time', 'alias_frequency', 'lowpass_gain', 'resample', 'tone_amplitude']
