"""The cell mass and volume model behind the design metrics' energy and power densities: an
electrode stack (coatings, separator, current-collector foils, electrolyte) built from the
cell's PyBaMM parameters, plus overhead fractions for the can, cap and tabs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Mapping

from pydantic import Field

from sim.cells import CellSpec, base_parameter_values, cell_parameter_values
from sim.config import StrictModel
from sim.errors import ConfigError


class MassModel(StrictModel):
    """Assumptions of the cell mass and volume model (see :func:`cell_mass_volume`).

    electrolyte_density_kg_m3: LiPF6 in carbonate solvents (EC:EMC 3:7, 1 M) is 1.2-1.3 g/cm3;
        1200 kg/m3. The PyBaMM sets carry no electrolyte density.
    current_collector_share: share of each current-collector foil one electrode layer owns.
        Coatings are double-sided in wound and stacked cells, so two layers share a foil: 0.5.
    overhead_mass_fraction: share of the cell mass outside the electrode stack (can, cap,
        tabs, mandrel, insulators). A 21700 can with its cap weighs about 9-11 g of the
        ~68 g LG M50: 0.15.
    overhead_volume_fraction: share of the cell volume outside the stack (can wall, headspace,
        mandrel hole). For OKane2022/Chen2020 the stack of this model is 19.2 cm3 of the set's
        "Cell volume [m3]" 24.2 cm3: 0.20.
    """

    electrolyte_density_kg_m3: float = Field(1200.0, gt=0.0, le=3000.0)
    current_collector_share: float = Field(0.5, gt=0.0, le=1.0)
    overhead_mass_fraction: float = Field(0.15, ge=0.0, lt=1.0)
    overhead_volume_fraction: float = Field(0.20, ge=0.0, lt=1.0)


@dataclass(frozen=True)
class MassVolume:
    """Cell mass [kg] and volume [m3], with the stack's parts [kg] and [m3]."""

    mass_kg: float
    volume_m3: float
    parts_kg: dict[str, float]
    stack_volume_m3: float

    def to_dict(self) -> dict:
        """Plain dict of the fields."""
        return asdict(self)


def stack_mass_volume(values: Mapping[str, float], set_porosities: Mapping[str, float],
                      model: MassModel = MassModel()) -> MassVolume:
    """Mass and volume of a cell from numeric PyBaMM parameters ``values``.

    Per unit of electrode area A = "Electrode height [m]" x "Electrode width [m]" x "Number of
    electrodes connected in parallel to make a cell" (the area PyBaMM's capacity uses), the
    stack holds one layer of negative coating, separator and positive coating
    (L_n, L_s, L_p = "... thickness [m]") and ``current_collector_share`` of each foil
    (L_cn, L_cp = "... current collector thickness [m]"):

    - coating and separator solids: PyBaMM's "Negative electrode density [kg.m-3]",
      "Separator density [kg.m-3]", "Positive electrode density [kg.m-3]" are read as apparent
      dry densities of the porous layer at the parameter set's own porosity eps_set (Chen2020:
      graphite 2260 kg/m3 x (1 - 0.25) = 1695, listed 1657), so a layer of porosity eps weighs
      rho (1 - eps) / (1 - eps_set) L A;
    - foils: rho_c L_c A x share ("... current collector density [kg.m-3]");
    - electrolyte: fills every pore, rho_e (eps_n L_n + eps_s L_s + eps_p L_p) A.

    Stack volume A (L_n + L_s + L_p + share (L_cn + L_cp)); the cell adds the overhead
    fractions: mass = stack mass / (1 - overhead_mass_fraction), likewise the volume.
    ``set_porosities`` maps "Negative electrode porosity", "Separator porosity" and "Positive
    electrode porosity" to the parameter set's values.
    """
    area = (values["Electrode height [m]"] * values["Electrode width [m]"]
            * values.get("Number of electrodes connected in parallel to make a cell", 1.0))
    parts, thickness, pores = {}, 0.0, 0.0
    for layer, density_name in (("Negative electrode", "Negative electrode density [kg.m-3]"),
                                ("Separator", "Separator density [kg.m-3]"),
                                ("Positive electrode", "Positive electrode density [kg.m-3]")):
        length = values[f"{layer} thickness [m]"]
        porosity = values[f"{layer} porosity"]
        solid_share = (1.0 - porosity) / (1.0 - set_porosities[f"{layer} porosity"])
        parts[layer.lower().replace(" electrode", " coating")] = values[density_name] * solid_share * length * area
        thickness += length
        pores += porosity * length
    for side in ("Negative", "Positive"):
        foil = model.current_collector_share * values[f"{side} current collector thickness [m]"]
        parts[f"{side.lower()} current collector"] = values[f"{side} current collector density [kg.m-3]"] * foil * area
        thickness += foil
    parts["electrolyte"] = model.electrolyte_density_kg_m3 * pores * area
    stack_mass = sum(parts.values())
    stack_volume = thickness * area
    return MassVolume(stack_mass / (1.0 - model.overhead_mass_fraction),
                      stack_volume / (1.0 - model.overhead_volume_fraction), parts, stack_volume)


def cell_mass_volume(cell: CellSpec, model: MassModel = MassModel()) -> MassVolume:
    """Mass and volume of ``cell`` (its parameter set with design and overrides applied)."""
    base = base_parameter_values(cell)
    values = cell_parameter_values(cell, base=base)
    names = ("Negative electrode porosity", "Separator porosity", "Positive electrode porosity")
    numeric = {}
    for name in _MASS_PARAMETERS:
        value = values[name] if name in values.keys() else None
        if not isinstance(value, (int, float)):
            raise ConfigError(f"cell.parameter_set '{cell.parameter_set}': '{name}' = {value!r} is not a number; "
                              "the mass model needs it numeric (give it in cell.overrides)")
        numeric[name] = float(value)
    return stack_mass_volume(numeric, {name: float(base[name]) for name in names}, model)


_MASS_PARAMETERS = (
    "Electrode height [m]", "Electrode width [m]",
    "Negative electrode thickness [m]", "Separator thickness [m]", "Positive electrode thickness [m]",
    "Negative electrode porosity", "Separator porosity", "Positive electrode porosity",
    "Negative electrode density [kg.m-3]", "Separator density [kg.m-3]", "Positive electrode density [kg.m-3]",
    "Negative current collector thickness [m]", "Positive current collector thickness [m]",
    "Negative current collector density [kg.m-3]", "Positive current collector density [kg.m-3]",
)
