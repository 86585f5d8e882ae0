"""The fast-charge test: a multi-stage constant-current charge, cycled, optionally between
reference performance tests. A design problem optimises its stage C-rates and switch SOCs
(:mod:`hybrid.design.protocols`); a corpus can hold the same protocol, so the residual learns
on what the problem asks of it. It compiles to a plain ``sequence`` (:meth:`FastCharge.to_sequence`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Literal, Mapping

from pydantic import Field, model_validator

from sim.config import validate
from sim.errors import ConfigError
from sim.protocols.base import ProtocolBase

if TYPE_CHECKING:
    from sim.protocols.steps import Sequence


class FastCharge(ProtocolBase):
    """Multi-stage constant-current fast charging, cycled.

    From the starting state: a discharge at ``discharge_c_rate`` to ``lower_voltage_V``, a rest,
    then ``cycles`` times: the charge stages, a rest, a discharge to the cut-off, a rest (the
    last rest dropped). Stage k charges at ``c_rates[k]`` (C) from the previous switch SOC to
    ``switch_socs[k]`` (the last stage to ``target_soc``), SOC counted from the end of the
    discharge (0); each stage also ends at ``upper_voltage_V``. Compiled by :meth:`to_sequence`
    to a plain ``sequence`` protocol, so a corpus can hold the same protocols.
    Variables: ``c_rate_1..n``, ``switch_soc_1..n-1``, ``target_soc``, ``discharge_c_rate``.

    reference_tests: a reference performance test before the first fast charge and after the
    last cycle: a CC charge at ``reference_c_rate`` to ``upper_voltage_V``, a CV hold there
    until ``reference_cv_cutoff_c_rate``, a rest, a discharge to the cut-off. Retention then
    compares two full capacities, which see the lithium the fast cycles lost; without them
    each cycle's discharge returns the fixed charge of its fast charge and hides the loss.
    The first charge is then the reference test's: score the fast charge with
    ``metric_options.charge_index: 1``.
    """

    kind: Literal["fast_charge"] = "fast_charge"
    c_rates: list[Annotated[float, Field(gt=0.0, le=10.0)]] = Field(min_length=1, max_length=10)
    switch_socs: list[Annotated[float, Field(gt=0.0, lt=1.0)]] = Field(default_factory=list)
    target_soc: float = Field(0.8, gt=0.0, le=1.0)
    cycles: int = Field(3, ge=1, le=1000)
    discharge_c_rate: float = Field(1.0, gt=0.0, le=10.0)
    rest_s: float = Field(300.0, ge=0.0)
    lower_voltage_V: float = Field(2.5, gt=0.0, le=5.0)
    upper_voltage_V: float = Field(4.2, gt=0.0, le=5.0)
    period_s: float = Field(30.0, gt=0.0, le=3600.0)
    reference_tests: bool = False
    reference_c_rate: float = Field(0.5, gt=0.0, le=10.0)
    reference_cv_cutoff_c_rate: float = Field(0.05, gt=0.0, le=1.0)

    @model_validator(mode="after")
    def _stages_ordered(self) -> "FastCharge":
        if len(self.switch_socs) != len(self.c_rates) - 1:
            raise ValueError(f"{len(self.c_rates)} stages need {len(self.c_rates) - 1} switch_socs, got "
                             f"{len(self.switch_socs)}")
        socs = [0.0, *self.switch_socs, self.target_soc]
        if any(b <= a for a, b in zip(socs, socs[1:])):
            raise ValueError(f"switch_socs {self.switch_socs} then target_soc {self.target_soc}: allowed: "
                             "strictly increasing")
        return self

    def variable_names(self) -> list[str]:
        """c_rate_1..n, switch_soc_1..n-1, target_soc, discharge_c_rate."""
        return ([f"c_rate_{k}" for k in range(1, len(self.c_rates) + 1)]
                + [f"switch_soc_{k}" for k in range(1, len(self.switch_socs) + 1)] + ["target_soc", "discharge_c_rate"])

    def with_values(self, values: Mapping[str, float]) -> "FastCharge":
        """A copy with variables set (ConfigError for an unknown name or an invalid result)."""
        data = self.model_dump()
        for name, value in values.items():
            if name not in self.variable_names():
                raise ConfigError(f"fast_charge variable '{name}': unknown; allowed: "
                                  f"{', '.join(self.variable_names())}")
            if name.startswith(("c_rate_", "switch_soc_")):
                listing = "c_rates" if name.startswith("c_rate_") else "switch_socs"
                data[listing][int(name.rsplit("_", 1)[1]) - 1] = float(value)
            else:
                data[name] = float(value)
        return validate(FastCharge, data, "fast_charge")

    def to_sequence(self) -> "Sequence":
        """The plain ``sequence`` protocol of the class docstring (stage durations in s)."""
        from sim.protocols.steps import Sequence  # steps.py compiles this protocol: imported here, not above

        socs = [0.0, *self.switch_socs, self.target_soc]
        discharge = {"kind": "cc", "c_rate": self.discharge_c_rate, "until_voltage_V": self.lower_voltage_V,
                     "period_s": self.period_s}
        rest = {"kind": "rest", "duration_s": self.rest_s, "period_s": self.period_s}
        stages = [{"kind": "cc", "c_rate": -c_rate, "duration_s": round((end - start) * 3600.0 / c_rate, 6),
                   "until_voltage_V": self.upper_voltage_V, "period_s": self.period_s}
                  for c_rate, start, end in zip(self.c_rates, socs, socs[1:])]
        rests = [rest] if self.rest_s > 0 else []
        reference = [{"kind": "cc", "c_rate": -self.reference_c_rate, "until_voltage_V": self.upper_voltage_V,
                      "period_s": self.period_s},
                     {"kind": "cv", "voltage_V": self.upper_voltage_V, "until_c_rate": self.reference_cv_cutoff_c_rate,
                      "period_s": self.period_s},
                     *rests, discharge, *rests] if self.reference_tests else []
        steps = [discharge, *rests, *reference]
        for _ in range(self.cycles):
            steps += [*stages, *rests, discharge, *rests]
        steps += reference
        if rests:
            steps.pop()
        return Sequence.model_validate({"kind": "sequence", "period_s": self.period_s, "steps": steps})
