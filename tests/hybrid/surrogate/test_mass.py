"""Facts about the cell mass and volume model: it matches a hand computation and the LG M50's
size, and its assumptions enter as documented."""

from __future__ import annotations

import pytest

from hybrid.surrogate.mass import MassModel, cell_mass_volume, stack_mass_volume
from sim.cells.spec import CellSpec


def test_mass_and_volume_match_a_hand_computation():
    # OKane2022 (LG M50) with a more porous anode and a thinner cathode
    cell = CellSpec(design={"negative_porosity": 0.30, "positive_thickness_m": 70e-6})
    area = 0.065 * 1.58  # electrode height x width [m2]
    coatings = (1657.0 * (1 - 0.30) / (1 - 0.25) * 85.2e-6  # anode: apparent density rescaled to eps 0.30
                + 397.0 * 12e-6  # separator at its own porosity
                + 3262.0 * 70e-6)  # cathode at the set's porosity
    foils = 0.5 * (8960.0 * 12e-6 + 2700.0 * 16e-6)  # copper, aluminium; half a foil per layer
    electrolyte = 1200.0 * (0.30 * 85.2e-6 + 0.47 * 12e-6 + 0.335 * 70e-6)
    stack_mass = (coatings + foils + electrolyte) * area
    stack_volume = (85.2e-6 + 12e-6 + 70e-6 + 0.5 * (12e-6 + 16e-6)) * area

    result = cell_mass_volume(cell)

    assert result.mass_kg == pytest.approx(stack_mass / (1 - 0.15), rel=1e-12)
    assert result.volume_m3 == pytest.approx(stack_volume / (1 - 0.20), rel=1e-12)
    assert result.stack_volume_m3 == pytest.approx(stack_volume, rel=1e-12)
    assert sum(result.parts_kg.values()) == pytest.approx(stack_mass, rel=1e-12)
    # per m2: coatings 0.13177 + 0.00476 + 0.22834, foils 0.07536, electrolyte 0.06558 -> 0.50581 kg
    assert result.mass_kg == pytest.approx(0.50581 * 0.1027 / 0.85, rel=1e-4)  # 61.1 g


def test_nominal_lg_m50_has_the_size_of_a_21700():
    result = cell_mass_volume(CellSpec())
    assert result.volume_m3 == pytest.approx(2.42e-5, rel=0.02)  # the set's "Cell volume [m3]"
    assert result.mass_kg == pytest.approx(0.068, rel=0.10)  # LG M50 datasheet: about 68 g


def test_mass_model_assumptions_enter_as_documented():
    values = {"Electrode height [m]": 1.0, "Electrode width [m]": 1.0,
              "Negative electrode thickness [m]": 1.0, "Separator thickness [m]": 1.0,
              "Positive electrode thickness [m]": 1.0, "Negative electrode porosity": 0.5,
              "Separator porosity": 0.5, "Positive electrode porosity": 0.5,
              "Negative electrode density [kg.m-3]": 1.0, "Separator density [kg.m-3]": 1.0,
              "Positive electrode density [kg.m-3]": 1.0, "Negative current collector thickness [m]": 1.0,
              "Positive current collector thickness [m]": 1.0, "Negative current collector density [kg.m-3]": 1.0,
              "Positive current collector density [kg.m-3]": 1.0}
    porosities = {"Negative electrode porosity": 0.5, "Separator porosity": 0.5, "Positive electrode porosity": 0.5}
    model = MassModel(electrolyte_density_kg_m3=2.0, current_collector_share=1.0, overhead_mass_fraction=0.5,
                      overhead_volume_fraction=0.0)
    result = stack_mass_volume(values, porosities, model)
    assert result.parts_kg["electrolyte"] == pytest.approx(2.0 * 1.5)  # 3 layers, half pores
    assert result.mass_kg == pytest.approx((3.0 + 2.0 + 3.0) / 0.5)  # solids + foils + electrolyte
    assert result.volume_m3 == pytest.approx(5.0)
