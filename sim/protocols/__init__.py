from sim.protocols.base import ProtocolBase, Ripple
from sim.protocols.fast_charge import FastCharge
from sim.protocols.steps import (
    HPPC,
    AgeingCampaign,
    CompiledProtocol,
    ConstantCurrent,
    ConstantVoltage,
    CurrentTrace,
    Cycling,
    Dynamic,
    Protocol,
    Rest,
    Sequence,
    VoltageWindow,
    compile_protocol,
)

__all__ = ['AgeingCampaign', 'CompiledProtocol', 'ConstantCurrent', 'ConstantVoltage', 'CurrentTrace', 'Cycling',
           'Dynamic', 'FastCharge', 'HPPC', 'Protocol', 'ProtocolBase', 'Rest', 'Ripple', 'Sequence', 'VoltageWindow',
           'compile_protocol']
