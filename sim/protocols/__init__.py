from sim.protocols.steps import AgeingCampaign, CompiledProtocol, ConstantCurrent, ConstantVoltage, CurrentTrace, Cycling, Dynamic, HPPC, Protocol, Rest, Ripple, Sequence, VoltageWindow, compile_protocol

__all__ = ['AgeingCampaign', 'CompiledProtocol', 'ConstantCurrent', 'ConstantVoltage', 'CurrentTrace', 'Cycling', 'Dynamic', 'HPPC', 'Protocol', 'Rest', 'Ripple', 'Sequence', 'VoltageWindow', 'compile_protocol']
