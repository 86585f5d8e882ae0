"""Extra temperature dependence of transport and kinetics, for plants that must span real cells.

Parameter sets differ in how much temperature dependence they carry: Prada2013 (A123 LFP) has
Arrhenius exchange-current densities but constant particle diffusivities and an electrolyte
whose conductivity ignores temperature, while a real LFP cell at -25 degC is far more
resistive than at 25 degC. A synthetic plant meant to contain real cells (sim-to-real domain
randomisation) therefore multiplies chosen parameters by an Arrhenius factor

    exp(E / R * (1 / T_ref - 1 / T))

on top of whatever dependence the set already has (``T`` the cell temperature [K], ``T_ref``
the ``reference_K`` of :class:`ExtraArrhenius`). Each activation energy ``E`` [J/mol] is a
PyBaMM parameter of its own (:data:`ACTIVATION_PARAMETERS`), so a corpus's
``reference.variability`` can spread it from cell to cell like any other parameter.
"""

from __future__ import annotations

import pybamm
from pydantic import Field

from sim.config import StrictModel

# group -> (the activation-energy parameter it adds, the PyBaMM parameters it multiplies)
ACTIVATION_PARAMETERS = {
    "particle_diffusivity": ("Extra particle diffusivity activation energy [J.mol-1]",
                             ("Negative particle diffusivity [m2.s-1]", "Positive particle diffusivity [m2.s-1]")),
    "electrolyte": ("Extra electrolyte transport activation energy [J.mol-1]",
                    ("Electrolyte diffusivity [m2.s-1]", "Electrolyte conductivity [S.m-1]")),
    "exchange_current": ("Extra exchange-current density activation energy [J.mol-1]",
                         ("Negative electrode exchange-current density [A.m-2]",
                          "Positive electrode exchange-current density [A.m-2]")),
}


class ExtraArrhenius(StrictModel):
    """Activation energies [J/mol] of the extra Arrhenius factors (0: none) and their
    reference temperature [K], at which every factor is 1."""

    particle_diffusivity: float = Field(0.0, ge=0.0, le=2e5)
    electrolyte: float = Field(0.0, ge=0.0, le=2e5)
    exchange_current: float = Field(0.0, ge=0.0, le=2e5)
    reference_K: float = Field(298.15, gt=200.0, lt=400.0)


def add_extra_arrhenius(values: pybamm.ParameterValues, extra: ExtraArrhenius) -> None:
    """Multiply, in place, the parameters of every group with a nonzero activation energy by
    its Arrhenius factor (module docstring); the activation energies become parameters."""
    for group, (energy_name, names) in ACTIVATION_PARAMETERS.items():
        energy = getattr(extra, group)
        if energy == 0.0:
            continue
        values.update({energy_name: energy}, check_already_exists=False)
        for name in names:
            values[name] = _with_factor(values[name], energy_name, extra.reference_K)


def _with_factor(value, energy_name: str, reference_K: float):
    """``value`` (a number or a function whose last argument is the temperature [K]) as a
    function of the same arguments times the Arrhenius factor."""
    base = value if callable(value) else (lambda *args: value)

    def factored(*args):
        temperature = args[-1]
        energy = pybamm.Parameter(energy_name)
        return base(*args) * pybamm.exp(energy / pybamm.constants.R * (1.0 / reference_K - 1.0 / temperature))

    return factored
