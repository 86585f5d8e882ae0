"""Corpus -> tensors: online features, residual targets, train-only normalisation, decoding.

What a model may read at time t is what a battery management system knows online: the
measured current, the ambient temperature, the time since the previous sample, the physics
model's outputs and states (the ``Physics ...`` columns) and the cell's static design
(``design_*`` columns broadcast in time). Reference truth (``Voltage [V]``, ``State of
charge``, ageing states) and the plant's hidden variability (``scale_*``) are targets or
evaluation data only; :func:`check_online` refuses them as features.

Two families of feature/target sets:

- ``hybrid``: all online features; targets the voltage residual ``Voltage [V] - Physics
  voltage [V]``, with an SOC head the SOC residual ``State of charge - Physics state of
  charge`` and with a temperature head the temperature residual ``Cell temperature [K] -
  Physics cell temperature [K]``.
- ``black_box``: the same without any ``Physics ...`` column; targets the voltage itself and,
  with the heads, the state of charge and the cell temperature themselves.
"""

from __future__ import annotations

from typing import Any, Literal, NamedTuple

import numpy as np
from pydantic import Field, field_validator

from hybrid.data.columns import (
    AMBIENT,
    CURRENT,
    DESIGN_PREFIX,
    PHYSICS_PREFIX,
    PHYSICS_SOC,
    PHYSICS_TEMPERATURE,
    PHYSICS_VOLTAGE,
    SOC,
    SOC_RESIDUAL,
    TEMPERATURE,
    TEMPERATURE_RESIDUAL,
    TIME_STEP,
    VOLTAGE,
    VOLTAGE_RESIDUAL,
)
from hybrid.data.corpus import Corpus, Record
from hybrid.data.splits import SplitAssignment
from sim.config import StrictModel
from sim.errors import ConfigError, DataError

Family = Literal["hybrid", "black_box"]

# Below these train-set standard deviations a feature is constant up to solver noise (e.g. an
# isothermal model's temperature, LLI of 1e-13 % without SEI) and is dropped: it teaches nothing
# and would extrapolate wildly where it does vary. Keyed by unit; other features use 0.
_RESOLUTION = {"[K]": 1e-3, "[%]": 1e-6, "[m]": 1e-12, "[V]": 1e-6, "[A]": 1e-6, "[s]": 1e-9}
_RELATIVE_RESOLUTION = 1e-6
# Normalised features are clipped to this many standard deviations (see cell_inputs).
FEATURE_CLIP = 20.0
# Smallest target scale: a target that never varies on train (SOC residual of a plant with the
# physics capacity) still normalises to finite values. Units: V, SOC fraction, K.
_TARGET_SCALE_FLOOR = {VOLTAGE_RESIDUAL: 1e-4, VOLTAGE: 1e-4, SOC_RESIDUAL: 1e-4, SOC: 1e-4,
                       TEMPERATURE_RESIDUAL: 1e-3, TEMPERATURE: 1e-3}


class FeatureOptions(StrictModel):
    """Which online features the models read and whether they also estimate SOC and temperature.

    physics_columns: the ``Physics ...`` columns to read (hybrids only); null = every one the
        corpus has.
    design: broadcast the static ``design_*`` values in time as features.
    time_step: add the time since the previous sample [s] (the grid is not uniform).
    soc_head: a second output per model for the state of charge (hybrids: its residual
        against the physics SOC; black box: the SOC itself).
    temperature_head: one more output for the cell temperature [K] (hybrids: its residual
        against the physics cell temperature, e.g. heat the physics lacks; black box: the
        temperature itself).
    max_residual_V: rows where |Voltage - Physics voltage| exceeds this [V] (or the physics
        voltage is not finite) are invalid: no loss, no metric, counted in the evaluation.
        A physics model driven open-loop by the reference current can leave its stoichiometry
        window over a long campaign and return nonsense (10^3 V); a hybrid cannot fix that.
    """

    physics_columns: list[str] | None = None
    design: bool = True
    time_step: bool = True
    soc_head: bool = False
    temperature_head: bool = False
    max_residual_V: float = Field(0.5, gt=0.0)

    @field_validator("physics_columns")
    @classmethod
    def _physics_only(cls, names: list[str] | None) -> list[str] | None:
        for name in names or []:
            if not name.startswith(PHYSICS_PREFIX):
                raise ValueError(f"'{name}' is not a physics column; allowed: names starting with "
                                 f"'{PHYSICS_PREFIX}' (reference truth is never a feature)")
        return names


def check_online(name: str) -> None:
    """Raise DataError unless ``name`` is known online (never reference truth or scale_*)."""
    if name in (CURRENT, AMBIENT, TIME_STEP) or name.startswith((PHYSICS_PREFIX, DESIGN_PREFIX)):
        return
    raise DataError(f"feature '{name}' is not known online; allowed: '{CURRENT}', '{AMBIENT}', '{TIME_STEP}', "
                    f"'{PHYSICS_PREFIX}...' and '{DESIGN_PREFIX}...' columns")


def candidate_features(corpus: Corpus, options: FeatureOptions, family: Family) -> list[str]:
    """Online feature names for ``family``, current first (before constant ones are dropped)."""
    names = [CURRENT, AMBIENT] + ([TIME_STEP] if options.time_step else [])
    if family == "hybrid":
        physics = corpus.physics_columns if options.physics_columns is None else options.physics_columns
        absent = [name for name in physics if name not in corpus.physics_columns]
        if absent:
            raise ConfigError(f"features.physics_columns: '{absent[0]}' is not in the corpus; allowed: "
                              f"{', '.join(corpus.physics_columns)}")
        names += physics
    if options.design:
        names += corpus.design_columns
    for name in names:
        check_online(name)
    return names


def target_names(family: Family, soc_head: bool, temperature_head: bool = False) -> list[str]:
    """Voltage first, then SOC and cell temperature if their heads are on (residuals for hybrids)."""
    if family == "hybrid":
        return ([VOLTAGE_RESIDUAL] + ([SOC_RESIDUAL] if soc_head else [])
                + ([TEMPERATURE_RESIDUAL] if temperature_head else []))
    return [VOLTAGE] + ([SOC] if soc_head else []) + ([TEMPERATURE] if temperature_head else [])


def _stack(corpus: Corpus, ranges: dict[int, tuple[int, int]], names: list[str],
           max_residual_V: float) -> np.ndarray:
    """(rows, len(names)) of the valid ranged rows of every cell, stacked."""
    parts = []
    for sample_id, (start, stop) in sorted(ranges.items()):
        cell = corpus.cells[sample_id]
        valid = cell.valid_rows(max_residual_V)[start:stop]
        parts.append(np.column_stack([cell.column(name)[start:stop][valid] for name in names]))
    return np.concatenate(parts)


def fit_normalisation(corpus: Corpus, assignment: SplitAssignment, options: FeatureOptions,
                      family: Family) -> dict[str, Any]:
    """Mean/std per feature and target from the train split only, as a plain JSON-able dict.

    The current is scaled by its root mean square with no shift, so zero current maps to a
    zero feature. Features constant on train (below a unit-dependent resolution) are dropped
    and listed under ``dropped_features``.
    """
    train = assignment.ranges.get("train")
    if not train:
        raise DataError("the train split is empty; nothing to compute normalisation statistics on")
    names = candidate_features(corpus, options, family)
    targets = target_names(family, options.soc_head, options.temperature_head)
    present = set.intersection(*(set(corpus.cells[i].columns) for i in train))
    require_head_columns(present, options, family)
    values = _stack(corpus, train, names + targets, options.max_residual_V)
    statistics = {name: (float(values[:, k].mean()), float(values[:, k].std()), float(np.sqrt(np.mean(values[:, k] ** 2))))
                  for k, name in enumerate(names + targets)}
    return normalisation_from_statistics(family, names, targets, statistics, options)


def require_head_columns(present: set[str], options: FeatureOptions, family: Family) -> None:
    """ConfigError when a head is on but the corpus (columns ``present``) lacks what its target
    is made of."""
    for head, on, truth, physics in (("soc_head", options.soc_head, SOC, PHYSICS_SOC),
                                     ("temperature_head", options.temperature_head, TEMPERATURE, PHYSICS_TEMPERATURE)):
        needed = (truth, physics) if family == "hybrid" else (truth,)
        absent = [name for name in needed if on and name not in present]
        if absent:
            raise ConfigError(f"features.{head} = true, but the corpus has no '{absent[0]}' column; "
                              f"allowed: {head}: false")


def normalisation_from_statistics(family: Family, features: list[str], targets: list[str],
                                  statistics: dict[str, tuple[float, float, float]],
                                  options: FeatureOptions) -> dict[str, Any]:
    """fit_normalisation's dict from each column's (mean, std, root mean square) over the valid
    training rows (however they were gathered: in memory, or streamed shard by shard)."""
    mean = np.array([statistics[name][0] for name in features])
    std = np.array([statistics[name][1] for name in features])
    current = features.index(CURRENT)
    mean[current], std[current] = 0.0, statistics[CURRENT][2]
    keep = [k for k, name in enumerate(features) if std[k] > _resolution(name, mean[k])]
    if current not in keep:
        raise DataError("the training cells carry no current; a model of the residual needs current")
    return {
        "family": family,
        "features": [features[k] for k in keep],
        "feature_mean": [float(mean[k]) for k in keep],
        "feature_std": [float(std[k]) for k in keep],
        "current_index": keep.index(current),
        "dropped_features": [name for k, name in enumerate(features) if k not in keep],
        "targets": targets,
        "target_mean": [statistics[name][0] for name in targets],
        "target_std": [max(statistics[name][1], _TARGET_SCALE_FLOOR[name]) for name in targets],
        "max_residual_V": options.max_residual_V,
    }


def _resolution(name: str, mean: float) -> float:
    unit = next((floor for unit, floor in _RESOLUTION.items() if name.endswith(unit)), 0.0)
    return max(unit, _RELATIVE_RESOLUTION * abs(mean))


def cell_inputs(cell: Record, normalisation: dict[str, Any]) -> np.ndarray:
    """Normalised features of the whole record, (rows, features) float32.

    Values are clipped to +-FEATURE_CLIP standard deviations (and non-finite ones set to 0)
    so that the invalid rows of a failed physics solve cannot wreck the carried state.
    """
    return normalise_features(np.column_stack([cell.column(name) for name in normalisation["features"]]),
                              normalisation)


def normalise_features(raw: np.ndarray, normalisation: dict[str, Any]) -> np.ndarray:
    """Raw features (rows, features) in physical units -> the model's inputs, as :func:`cell_inputs`."""
    mean, std = np.asarray(normalisation["feature_mean"]), np.asarray(normalisation["feature_std"])
    scaled = np.nan_to_num((raw - mean) / std, nan=0.0, posinf=FEATURE_CLIP, neginf=-FEATURE_CLIP)
    return np.clip(scaled, -FEATURE_CLIP, FEATURE_CLIP).astype(np.float32)


def cell_targets(cell: Record, normalisation: dict[str, Any]) -> np.ndarray:
    """Normalised targets of the whole record, (rows, targets) float32; 0 at invalid rows."""
    raw = np.column_stack([cell.column(name) for name in normalisation["targets"]])
    mean, std = np.asarray(normalisation["target_mean"]), np.asarray(normalisation["target_std"])
    valid = cell.valid_rows(normalisation["max_residual_V"])
    return np.where(valid[:, None], (raw - mean) / std, 0.0).astype(np.float32)


class Decoded(NamedTuple):
    """A model's estimates over one record: voltage [V], SOC and cell temperature [K] (None
    without their heads)."""

    voltage: np.ndarray
    soc: np.ndarray | None
    temperature_K: np.ndarray | None


def decode_outputs(outputs: np.ndarray, cell: Record, normalisation: dict[str, Any]) -> Decoded:
    """Model outputs (rows, targets), normalised -> voltage, SOC and temperature over the record
    (hybrids: the physics value plus the decoded residual; a hybrid without a SOC head reports
    the physics SOC, which it does not correct)."""
    values = outputs * np.asarray(normalisation["target_std"]) + np.asarray(normalisation["target_mean"])
    targets = normalisation["targets"]
    hybrid = VOLTAGE_RESIDUAL in targets

    def estimate(residual: str, truth: str, physics: str) -> np.ndarray | None:
        if residual in targets:
            return values[:, targets.index(residual)] + cell.columns[physics]
        return values[:, targets.index(truth)] if truth in targets else None

    soc = estimate(SOC_RESIDUAL, SOC, PHYSICS_SOC)
    if soc is None and hybrid:
        soc = cell.columns.get(PHYSICS_SOC)
    return Decoded(estimate(VOLTAGE_RESIDUAL, VOLTAGE, PHYSICS_VOLTAGE), soc,
                   estimate(TEMPERATURE_RESIDUAL, TEMPERATURE, PHYSICS_TEMPERATURE))
