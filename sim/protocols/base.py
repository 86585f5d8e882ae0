"""What every protocol shares: its output periods and an optional current ripple."""

from __future__ import annotations

from pydantic import Field

from sim.config import StrictModel


class Ripple(StrictModel):
    """Current ripple from power electronics: a sinusoid on top of the drive current while
    current flows. amplitude_c_rate is the peak amplitude as a C-rate."""

    frequency_hz: float = Field(gt=0.0, le=1e6)
    amplitude_c_rate: float = Field(gt=0.0, le=2.0)
    phase_rad: float = 0.0


class ProtocolBase(StrictModel):
    """Output periods shared by all protocols: ``period_s`` for slow steps (CC, CV, long
    rests), ``fast_period_s`` for pulses, pulse rests and dynamic profiles."""

    period_s: float = Field(10.0, gt=0.0, le=3600.0)
    fast_period_s: float = Field(1.0, gt=0.0, le=60.0)
    ripple: Ripple | None = None
