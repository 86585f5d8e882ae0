"""Protocols with variables: the test protocols a design problem runs, and the variables it may
optimise on them (``<protocol>.<variable>`` in :class:`hybrid.design.problem.DesignProblem`).

A design problem runs any hybat protocol (:data:`sim.protocols.Protocol`). Any of them offers
its top-level numbers as variables; :class:`sim.protocols.FastCharge` (a multi-stage
constant-current charge, cycled) offers its stage C-rates and switch SOCs. To add a protocol
with its own variables, give it ``variable_names`` and ``with_values`` as FastCharge does.
"""

from __future__ import annotations

from typing import Mapping

from sim.config import validate
from sim.errors import ConfigError
from sim.protocols import FastCharge, Protocol


def protocol_variable_names(protocol: Protocol) -> list[str]:
    """The variables a protocol offers: a fast charge's stages, or any top-level number."""
    if isinstance(protocol, FastCharge):
        return protocol.variable_names()
    return [name for name, value in protocol.model_dump().items()
            if isinstance(value, (int, float)) and not isinstance(value, bool)]


def protocol_with_values(protocol: Protocol, values: Mapping[str, float], label: str) -> Protocol:
    """``protocol`` with variables ``values`` set; ConfigError names ``label`` if invalid."""
    if not values:
        return protocol
    if isinstance(protocol, FastCharge):
        return protocol.with_values(values)
    allowed = protocol_variable_names(protocol)
    unknown = [name for name in values if name not in allowed]
    if unknown:
        raise ConfigError(f"{label}: variable '{unknown[0]}' unknown; allowed: {', '.join(allowed)}")
    original = protocol.model_dump()
    integers = {name: int(round(value)) for name, value in values.items() if isinstance(original[name], int)}
    return validate(type(protocol), {**original, **values, **integers}, label)
