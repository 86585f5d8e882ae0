"""Corpus -> tensors: online features, residual targets, normalisation, splits by cell, batches.

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

Splits are by cell (sample_id), never by time inside a cell, except ``late_life``: for cells
with ageing cycles, the rows after the end of ageing cycle ``after_cycle`` are held out from
training and scored separately (the training part of those cells stops there). A split is a
map sample_id -> (start, stop): the rows scored; a model always runs from row 0 of the record
so that late-life rows are predicted with the state carried over the whole early life.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import torch
from pydantic import Field, field_validator, model_validator

from hybrid.data.batch import SequenceBatch
from sim.config import StrictModel
from sim.errors import ConfigError, DataError

log = logging.getLogger(__name__)

TIME = "Time [s]"
CURRENT = "Current [A]"
AMBIENT = "Ambient temperature [K]"
VOLTAGE = "Voltage [V]"
SOC = "State of charge"
TEMPERATURE = "Cell temperature [K]"
CHARGE = "Discharge capacity [A.h]"
PHYSICS_PREFIX = "Physics "
PHYSICS_VOLTAGE = "Physics voltage [V]"
PHYSICS_SOC = "Physics state of charge"
PHYSICS_TEMPERATURE = "Physics cell temperature [K]"
DESIGN_PREFIX = "design_"
TIME_STEP = "Time step [s]"  # derived: time since the previous sample (0 at the first)
VOLTAGE_RESIDUAL = "Voltage residual [V]"
SOC_RESIDUAL = "State of charge residual"
TEMPERATURE_RESIDUAL = "Cell temperature residual [K]"

SPLIT_NAMES = ("train", "val", "test", "late_life", "unseen_design", "unseen_temperature")
CELL_SPLITS = ("train", "val", "test")
Family = Literal["hybrid", "black_box"]

# Below these train-set standard deviations a feature is constant up to solver noise (e.g. an
# isothermal model's temperature, LLI of 1e-13 % without SEI) and is dropped: it teaches nothing
# and would extrapolate wildly where it does vary. Keyed by unit; other features use 0.
_RESOLUTION = {"[K]": 1e-3, "[%]": 1e-6, "[m]": 1e-12, "[V]": 1e-6, "[A]": 1e-6, "[s]": 1e-9}
_RELATIVE_RESOLUTION = 1e-6
# Smallest target scale: a target that never varies on train (SOC residual of a plant with the
# physics capacity) still normalises to finite values. Units: V, SOC fraction, K.
FEATURE_CLIP = 20.0
_TARGET_SCALE_FLOOR = {VOLTAGE_RESIDUAL: 1e-4, VOLTAGE: 1e-4, SOC_RESIDUAL: 1e-4, SOC: 1e-4,
                       TEMPERATURE_RESIDUAL: 1e-3, TEMPERATURE: 1e-3}


# --- options ------------------------------------------------------------------------------


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


class LateLifeSplit(StrictModel):
    """Rows after the end of ageing cycle ``after_cycle`` (Tag "cycle", counted from 1) of every
    train/val/test cell that has more ageing cycles are held out as ``late_life``."""

    after_cycle: int = Field(ge=1)


class UnseenDesignSplit(StrictModel):
    """Cells whose design ``variable`` lies beyond its ``quantile`` over the corpus (strictly
    above, or below with side "below") are held out of training as ``unseen_design``."""

    variable: str
    quantile: float = Field(0.8, gt=0.0, lt=1.0)
    side: Literal["above", "below"] = "above"


class UnseenTemperatureSplit(StrictModel):
    """Cells at the ``held_out_K`` ambient temperatures are held out as ``unseen_temperature``;
    null = the highest temperature of the corpus. Omitted when the corpus has one temperature."""

    held_out_K: list[float] | None = None


class SplitOptions(StrictModel):
    """How cells are split. Out-of-distribution splits are taken first; the remaining cells
    are shuffled with ``seed`` and cut into test, val and train by the fractions."""

    seed: int = Field(0, ge=0)
    val_fraction: float = Field(0.2, ge=0.0, lt=1.0)
    test_fraction: float = Field(0.2, ge=0.0, lt=1.0)
    late_life: LateLifeSplit | None = None
    unseen_design: UnseenDesignSplit | None = None
    unseen_temperature: UnseenTemperatureSplit | None = None

    @model_validator(mode="after")
    def _train_left(self) -> "SplitOptions":
        if self.val_fraction + self.test_fraction >= 1.0:
            raise ValueError(f"val_fraction + test_fraction = {self.val_fraction + self.test_fraction:g} "
                             "leaves no training cells; allowed: a sum below 1")
        return self


# --- corpus -------------------------------------------------------------------------------


@dataclass
class Cell:
    """One usable sample: its series columns (float64, sorted by time), static values and the
    reference per-cycle summary (columns -> arrays, possibly empty)."""

    sample_id: int
    columns: dict[str, np.ndarray]
    design: dict[str, float]
    ambient_temperature_K: float
    capacity_Ah: float
    cycles: dict[str, np.ndarray]

    @property
    def rows(self) -> int:
        return len(self.columns[TIME])

    def column(self, name: str) -> np.ndarray:
        """A series column, a derived one (time step, residuals) or a broadcast design value."""
        if name == TIME_STEP:
            return np.diff(self.columns[TIME], prepend=self.columns[TIME][0])
        if name == VOLTAGE_RESIDUAL:
            return self.columns[VOLTAGE] - self.columns[PHYSICS_VOLTAGE]
        if name == SOC_RESIDUAL:
            return self.columns[SOC] - self.columns[PHYSICS_SOC]
        if name == TEMPERATURE_RESIDUAL:
            return self.columns[TEMPERATURE] - self.columns[PHYSICS_TEMPERATURE]
        if name.startswith(DESIGN_PREFIX):
            return np.full(self.rows, self.design[name])
        if name not in self.columns:
            raise DataError(f"sample {self.sample_id}: column '{name}' is missing")
        return self.columns[name]

    def valid_rows(self, max_residual_V: float) -> np.ndarray:
        """(rows,) bool: rows where the physics voltage is finite and within max_residual_V of
        the reference (see FeatureOptions.max_residual_V)."""
        with np.errstate(invalid="ignore"):
            return np.abs(self.columns[VOLTAGE] - self.columns[PHYSICS_VOLTAGE]) <= max_residual_V

    def ageing_cycle_ends(self) -> np.ndarray:
        """End times [s] of the ageing cycles (Tag "cycle"), in order."""
        if "Tag" not in self.cycles:
            return np.empty(0)
        return np.asarray(self.cycles["End time [s]"], dtype=float)[self.cycles["Tag"] == "cycle"]


@dataclass
class Corpus:
    """The usable samples (status ok or truncated) of a corpus directory."""

    path: Path
    samples: pd.DataFrame
    cells: dict[int, Cell]
    physics_columns: list[str]
    design_columns: list[str]

    @property
    def sample_ids(self) -> list[int]:
        return sorted(self.cells)


REQUIRED_SERIES = (TIME, CURRENT, AMBIENT, VOLTAGE, PHYSICS_VOLTAGE)


def load_corpus(path: str | Path) -> Corpus:
    """Read ``samples.parquet``, ``series/`` and ``cycles/`` of the corpus at ``path``.

    Failed samples are skipped; a sample whose series holds non-finite values is skipped with
    a warning. Raises DataError when a file or a required column is missing.
    """
    path = Path(path)
    samples_file = path / "samples.parquet"
    if not samples_file.is_file():
        raise DataError(f"{path}: not a corpus (no samples.parquet); allowed: a directory written by hybat corpus")
    samples = pd.read_parquet(samples_file)
    samples = samples[samples["status"].isin(["ok", "truncated"])].set_index("sample_id", drop=False)
    series = _read_parts(path / "series")
    missing = [name for name in REQUIRED_SERIES if name not in series.columns]
    if missing:
        raise DataError(f"{path / 'series'}: column '{missing[0]}' is missing; required: {', '.join(REQUIRED_SERIES)}")
    cycles = _read_parts(path / "cycles", required=False)
    if "Source" in cycles.columns:
        cycles = cycles[cycles["Source"] == "reference"]
    physics_columns = [name for name in series.columns if name.startswith(PHYSICS_PREFIX)]
    design_columns = sorted(name for name in samples.columns if name.startswith(DESIGN_PREFIX))
    numeric = [name for name in series.columns if name != "sample_id" and pd.api.types.is_numeric_dtype(series[name])]
    cycles_by_id = dict(tuple(cycles.groupby("sample_id"))) if len(cycles) else {}
    cells = {}
    for sample_id, rows in series.groupby("sample_id", sort=True):
        if sample_id not in samples.index:
            continue
        rows = rows.sort_values(TIME, kind="stable")
        columns = {name: rows[name].to_numpy(dtype=float) for name in numeric}
        # a non-finite physics voltage only invalidates its rows (Cell.valid_rows)
        bad = [name for name in numeric if not np.all(np.isfinite(columns[name])) and name != PHYSICS_VOLTAGE
               and (name in REQUIRED_SERIES or name.startswith(PHYSICS_PREFIX) or name == SOC)]
        if bad:
            log.warning("sample %s: non-finite values in '%s'; skipped", sample_id, bad[0])
            continue
        cells[int(sample_id)] = _cell(int(sample_id), columns, samples.loc[sample_id], design_columns,
                                      cycles_by_id.get(sample_id))
    if not cells:
        raise DataError(f"{path}: no usable samples (status ok or truncated with series rows)")
    samples = samples.loc[sorted(cells)]
    return Corpus(path, samples, cells, physics_columns, design_columns)


def _read_parts(folder: Path, required: bool = True) -> pd.DataFrame:
    parts = sorted(folder.glob("part-*.parquet"))
    if not parts:
        if required:
            raise DataError(f"{folder}: no part-*.parquet files")
        return pd.DataFrame()
    return pd.concat([pq.read_table(part).to_pandas() for part in parts], ignore_index=True)


def _cell(sample_id: int, columns: dict[str, np.ndarray], record: pd.Series, design_columns: list[str],
          cycles: pd.DataFrame | None) -> Cell:
    capacity = next((float(record[name]) for name in ("physics_capacity_Ah", "capacity_Ah")
                     if name in record and np.isfinite(record[name])), float("nan"))
    summary = {} if cycles is None else {
        name: cycles[name].to_numpy() for name in cycles.columns if name not in ("sample_id", "Source")}
    return Cell(sample_id, columns, {name: float(record[name]) for name in design_columns},
                float(record.get("ambient_temperature_K", columns[AMBIENT][0])), capacity, summary)


# --- splits -------------------------------------------------------------------------------


@dataclass
class SplitAssignment:
    """split name -> {sample_id: (start, stop)} rows scored; ``late_life_start`` holds, for every
    cell with ageing past the threshold, the first late-life row (whatever its split)."""

    ranges: dict[str, dict[int, tuple[int, int]]]
    late_life_start: dict[int, int]

    def names(self) -> list[str]:
        """The non-empty splits, in the order of SPLIT_NAMES."""
        return [name for name in SPLIT_NAMES if self.ranges.get(name)]

    def sample_ids(self, split: str) -> list[int]:
        return sorted(self.ranges.get(split, {}))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able form (sample ids as list entries, not keys)."""
        return {"splits": {name: [[sample_id, start, stop] for sample_id, (start, stop) in sorted(ranges.items())]
                           for name, ranges in self.ranges.items()},
                "late_life_start": [[sample_id, row] for sample_id, row in sorted(self.late_life_start.items())]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SplitAssignment":
        ranges = {name: {int(sample_id): (int(start), int(stop)) for sample_id, start, stop in entries}
                  for name, entries in data["splits"].items()}
        return cls(ranges, {int(sample_id): int(row) for sample_id, row in data["late_life_start"]})


def assign_splits(corpus: Corpus, options: SplitOptions) -> SplitAssignment:
    """Split ``corpus`` by cell (see :class:`SplitOptions`); late life by time inside aged cells.

    Raises ConfigError when an option names something the corpus lacks or leaves no train or
    validation cells.
    """
    remaining = corpus.sample_ids
    held: dict[str, list[int]] = {}
    if options.unseen_temperature is not None:
        held["unseen_temperature"] = _unseen_temperature(corpus, remaining, options.unseen_temperature)
        remaining = [i for i in remaining if i not in held["unseen_temperature"]]
    if options.unseen_design is not None:
        held["unseen_design"] = _unseen_design(corpus, remaining, options.unseen_design)
        remaining = [i for i in remaining if i not in held["unseen_design"]]
    by_cell = {**_cut_by_fraction(remaining, options), **held}
    ranges = {name: {i: (0, corpus.cells[i].rows) for i in ids} for name, ids in by_cell.items()}
    late_life_start = _late_life_starts(corpus, options.late_life)
    if late_life_start:
        ranges["late_life"] = {}
        for name in CELL_SPLITS:
            for sample_id in list(ranges[name]):
                if sample_id in late_life_start:
                    row, stop = late_life_start[sample_id], corpus.cells[sample_id].rows
                    ranges[name][sample_id] = (0, row)
                    ranges["late_life"][sample_id] = (row, stop)
    return SplitAssignment({name: value for name, value in ranges.items() if value}, late_life_start)


def _unseen_temperature(corpus: Corpus, candidates: list[int], option: UnseenTemperatureSplit) -> list[int]:
    temperatures = sorted({corpus.cells[i].ambient_temperature_K for i in candidates})
    if option.held_out_K is None:
        if len(temperatures) < 2:
            log.info("unseen_temperature split omitted: the corpus has one ambient temperature")
            return []
        held_out = [temperatures[-1]]
    else:
        held_out = option.held_out_K
        for value in held_out:
            if not np.any(np.isclose(temperatures, value)):
                raise ConfigError(f"splits.unseen_temperature.held_out_K: {value} K is not in the corpus; "
                                  f"allowed: {', '.join(f'{t:g}' for t in temperatures)}")
    return [i for i in candidates if np.any(np.isclose(held_out, corpus.cells[i].ambient_temperature_K))]


def _unseen_design(corpus: Corpus, candidates: list[int], option: UnseenDesignSplit) -> list[int]:
    column = option.variable if option.variable.startswith(DESIGN_PREFIX) else DESIGN_PREFIX + option.variable
    if column not in corpus.design_columns:
        allowed = ", ".join(name.removeprefix(DESIGN_PREFIX) for name in corpus.design_columns) or "(none)"
        raise ConfigError(f"splits.unseen_design.variable = {option.variable!r}: not a design variable of the "
                          f"corpus; allowed: {allowed}")
    values = {i: corpus.cells[i].design[column] for i in corpus.sample_ids}
    threshold = float(np.quantile(list(values.values()), option.quantile))
    beyond = (lambda v: v > threshold) if option.side == "above" else (lambda v: v < threshold)
    return [i for i in candidates if beyond(values[i])]


def _cut_by_fraction(sample_ids: list[int], options: SplitOptions) -> dict[str, list[int]]:
    """Shuffle with the seed, then test, val and train cells; at least one train and one val."""
    order = [sample_ids[k] for k in np.random.default_rng(options.seed).permutation(len(sample_ids))]
    count = len(order)
    test = round(options.test_fraction * count)
    val = max(round(options.val_fraction * count), 1 if options.val_fraction > 0 else 0)
    if count - test - val < 1:
        test = max(0, count - val - 1)
    if val == 0 or count - test - val < 1:
        raise ConfigError(f"splits: {count} cell(s) left after the out-of-distribution splits cannot give train "
                          f"and val cells (val_fraction = {options.val_fraction:g}); allowed: val_fraction > 0 "
                          "and at least two cells left")
    return {"test": sorted(order[:test]), "val": sorted(order[test:test + val]),
            "train": sorted(order[test + val:])}


def _late_life_starts(corpus: Corpus, option: LateLifeSplit | None) -> dict[int, int]:
    if option is None:
        return {}
    starts = {}
    for sample_id, cell in corpus.cells.items():
        ends = cell.ageing_cycle_ends()
        if len(ends) > option.after_cycle:
            row = int(np.searchsorted(cell.columns[TIME], ends[option.after_cycle - 1], side="right"))
            if 0 < row < cell.rows:
                starts[sample_id] = row
    if not starts:
        log.info("late_life split omitted: no cell has more than %d ageing cycles", option.after_cycle)
    return starts


# --- features, targets, normalisation -----------------------------------------------------


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
    values = _stack(corpus, train, names, options.max_residual_V)
    mean, std = values.mean(axis=0), values.std(axis=0)
    current = names.index(CURRENT)
    mean[current], std[current] = 0.0, float(np.sqrt(np.mean(values[:, current] ** 2)))
    keep = [k for k, name in enumerate(names) if std[k] > _resolution(name, mean[k])]
    if current not in keep:
        raise DataError("the training cells carry no current; a model of the residual needs current")
    targets = target_names(family, options.soc_head, options.temperature_head)
    for head, on, truth, physics in (("soc_head", options.soc_head, SOC, PHYSICS_SOC),
                                     ("temperature_head", options.temperature_head, TEMPERATURE, PHYSICS_TEMPERATURE)):
        needed = (truth, physics) if family == "hybrid" else (truth,)
        absent = [name for name in needed if on and any(name not in corpus.cells[i].columns for i in train)]
        if absent:
            raise ConfigError(f"features.{head} = true, but the corpus has no '{absent[0]}' column; "
                              f"allowed: {head}: false")
    target_values = _stack(corpus, train, targets, options.max_residual_V)
    target_std = [max(float(s), _TARGET_SCALE_FLOOR[name]) for s, name in zip(target_values.std(axis=0), targets)]
    return {
        "family": family,
        "features": [names[k] for k in keep],
        "feature_mean": [float(mean[k]) for k in keep],
        "feature_std": [float(std[k]) for k in keep],
        "current_index": keep.index(current),
        "dropped_features": [name for k, name in enumerate(names) if k not in keep],
        "targets": targets,
        "target_mean": [float(m) for m in target_values.mean(axis=0)],
        "target_std": target_std,
        "max_residual_V": options.max_residual_V,
    }


def _resolution(name: str, mean: float) -> float:
    unit = next((floor for unit, floor in _RESOLUTION.items() if name.endswith(unit)), 0.0)
    return max(unit, _RELATIVE_RESOLUTION * abs(mean))


def cell_inputs(cell: Cell, normalisation: dict[str, Any]) -> np.ndarray:
    """Normalised features of the whole record, (rows, features) float32.

    Values are clipped to +-FEATURE_CLIP standard deviations (and non-finite ones set to 0)
    so that the invalid rows of a failed physics solve cannot wreck the carried state.
    """
    raw = np.column_stack([cell.column(name) for name in normalisation["features"]])
    mean, std = np.asarray(normalisation["feature_mean"]), np.asarray(normalisation["feature_std"])
    scaled = np.nan_to_num((raw - mean) / std, nan=0.0, posinf=FEATURE_CLIP, neginf=-FEATURE_CLIP)
    return np.clip(scaled, -FEATURE_CLIP, FEATURE_CLIP).astype(np.float32)


def cell_targets(cell: Cell, normalisation: dict[str, Any]) -> np.ndarray:
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


def decode_outputs(outputs: np.ndarray, cell: Cell, normalisation: dict[str, Any]) -> Decoded:
    """Model outputs (rows, targets), normalised -> voltage, SOC and temperature over the record
    (hybrids: the physics value plus the decoded residual)."""
    values = outputs * np.asarray(normalisation["target_std"]) + np.asarray(normalisation["target_mean"])
    targets = normalisation["targets"]

    def estimate(residual: str, truth: str, physics: str) -> np.ndarray | None:
        if residual in targets:
            return values[:, targets.index(residual)] + cell.columns[physics]
        return values[:, targets.index(truth)] if truth in targets else None

    return Decoded(estimate(VOLTAGE_RESIDUAL, VOLTAGE, PHYSICS_VOLTAGE), estimate(SOC_RESIDUAL, SOC, PHYSICS_SOC),
                   estimate(TEMPERATURE_RESIDUAL, TEMPERATURE, PHYSICS_TEMPERATURE))


# --- batches ------------------------------------------------------------------------------


def make_batches(corpus: Corpus, ranges: dict[int, tuple[int, int]], normalisation: dict[str, Any],
                 batch_size: int) -> list[SequenceBatch]:
    """Padded batches of the records up to ``stop``, masked to the valid scored rows [start, stop).

    Sequences are sorted by length before grouping so that little padding is needed; fit
    shuffles the batch order per epoch.
    """
    sequences = []
    for sample_id, (start, stop) in sorted(ranges.items(), key=lambda item: (item[1][1], item[0])):
        cell = corpus.cells[sample_id]
        mask = cell.valid_rows(normalisation["max_residual_V"])[:stop]
        mask[:start] = False
        sequences.append((cell_inputs(cell, normalisation)[:stop], cell_targets(cell, normalisation)[:stop], mask))
    return [pad_sequences(sequences[k:k + batch_size]) for k in range(0, len(sequences), batch_size)]


def pad_sequences(sequences: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> SequenceBatch:
    """(inputs (time, features), targets (time, outputs), mask (time,)) list -> one SequenceBatch,
    zero-padded at the end with mask False."""
    if not sequences:
        raise DataError("pad_sequences: no sequences to batch")
    steps = max(len(mask) for _, _, mask in sequences)
    inputs = torch.zeros(len(sequences), steps, sequences[0][0].shape[1])  # (batch, time, features)
    targets = torch.zeros(len(sequences), steps, sequences[0][1].shape[1])  # (batch, time, outputs)
    mask = torch.zeros(len(sequences), steps, dtype=torch.bool)  # (batch, time)
    for row, (x, y, valid) in enumerate(sequences):
        inputs[row, :len(x)] = torch.from_numpy(x)
        targets[row, :len(y)] = torch.from_numpy(y)
        mask[row, :len(valid)] = torch.from_numpy(valid)
    return SequenceBatch(inputs, targets, mask)
