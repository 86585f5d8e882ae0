"""Cross-validation folds of a paired measured corpus: which tests are held out, which validate,
which train, and which test the physics is calibrated on, decided from the samples table alone.

Tests are grouped by ambient temperature (``ambient_temperature_K``, as degC to 0.1: one cell at
several temperatures) or by a text column such as a cell id (several cells): a group is held out
or kept whole. Only usable tests (status ok or truncated) count, so new temperatures or cells in
a data folder give new folds unchanged.

Nothing is chosen on a held-out test:

- **validation**: among the groups left for training, those with tests of the held-out ones'
  kind (``tag``) where at least two are left, so that one of that kind still trains (with two
  rate-test cells, holding one out and validating on the other would train the models on no
  constant-current discharge at all); else any group left; one without the physics
  calibration test if any; then the nearest: for
  temperatures an inner one (neither the coldest nor the hottest left, so training keeps its
  span) nearest a held-out temperature, ties to the colder; for cells the next after a held-out
  cell in order (cyclic).
- **calibration**: the configured calibration test, unless it is held out; then the training
  test of its tag nearest it in ambient temperature, ties by file name.
- **training order** (a data-efficiency curve trains on the first 1 ... N): the calibration test
  first, then each time the test farthest in ambient temperature from those taken (covering the
  range as an experimenter would), ties by file name.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from sim.errors import ConfigError

TEMPERATURE_COLUMN = "ambient_temperature_K"
USABLE = ("ok", "truncated")


@dataclass(frozen=True)
class FoldGroup:
    """Tests held out (or validating) together: one temperature [degC] (float key) or one cell."""

    key: float | str
    files: tuple[str, ...]
    tags: frozenset[str]
    has_calibration: bool


@dataclass(frozen=True)
class Fold:
    """One fold: its groups' keys and their tests' files (as in the samples table's ``file``);
    ``kind`` leave_one_out, fixed or explicit; ``name`` e.g. "-15C+15C_val_5C"."""

    name: str
    kind: str
    held_out: tuple[float | str, ...]
    validation: tuple[float | str, ...]
    test_files: tuple[str, ...]
    val_files: tuple[str, ...]
    train_files: tuple[str, ...]
    calibration_file: str


def group_label(key: float | str) -> str:
    """"-15C" for a temperature key, the key itself for a cell."""
    return f"{key:g}C" if isinstance(key, float) else key


def fold_groups(samples: pd.DataFrame, group_by: str, calibration_file: str) -> list[FoldGroup]:
    """The usable tests of ``samples`` (columns sample_id, status, file, tag, ambient_temperature_K
    and ``group_by``) grouped by ``group_by``, in order of their keys."""
    usable = samples[samples["status"].isin(USABLE)]
    if group_by not in usable.columns:
        raise ConfigError(f"group_by = {group_by!r}: not a column of the samples table; allowed: "
                          f"{', '.join(map(str, usable.columns))}")
    if usable[group_by].isna().any():
        missing = usable.loc[usable[group_by].isna(), "file"].iloc[0]
        raise ConfigError(f"group_by = {group_by!r}: test {missing} has no value; allowed: a value for every test")
    keys = ((usable[TEMPERATURE_COLUMN] - 273.15).round(1) if group_by == TEMPERATURE_COLUMN
            else usable[group_by].astype(str))
    groups = [FoldGroup(float(key) if group_by == TEMPERATURE_COLUMN else key, tuple(sorted(rows["file"])),
                        frozenset(rows["tag"].astype(str)), calibration_file in set(rows["file"]))
              for key, rows in usable.groupby(keys)]
    if len(groups) < 3:
        raise ConfigError(f"group_by = {group_by!r}: {len(groups)} group(s) of usable tests; allowed: 3 or more "
                          "(held out, validation, training)")
    return sorted(groups, key=lambda group: group.key)


def leave_one_out(samples: pd.DataFrame, *, group_by: str, calibration_file: str) -> list[Fold]:
    """Each group held out in turn, validated by the module's rule."""
    groups = fold_groups(samples, group_by, calibration_file)
    return [_fold("leave_one_out", groups, [group], None, samples, calibration_file) for group in groups]


def fold_of(samples: pd.DataFrame, *, group_by: str, calibration_file: str, held_out: Sequence[float | str],
            validation: Sequence[float | str] = (), kind: str = "explicit") -> Fold:
    """The fold holding out the groups ``held_out`` (temperatures [degC] or cell ids, as numbers or
    text) validated on ``validation`` (empty: the module's rule)."""
    groups = fold_groups(samples, group_by, calibration_file)
    chosen = _find(groups, validation, "validation") if validation else None
    return _fold(kind, groups, _find(groups, held_out, "held_out"), chosen, samples, calibration_file)


def choose_validation(groups: list[FoldGroup], held_out: list[FoldGroup]) -> FoldGroup:
    """The validation group when ``held_out`` is held out (the module's rule)."""
    left = [group for group in groups if group not in held_out]
    held_tags = frozenset().union(*(group.tags for group in held_out))
    same_kind = [group for group in left if group.tags & held_tags]
    candidates = same_kind if len(same_kind) > 1 else [group for group in left if group not in same_kind] or left
    if isinstance(groups[0].key, float):
        coldest, hottest = min(group.key for group in left), max(group.key for group in left)
        candidates = [group for group in candidates if coldest < group.key < hottest] or candidates

        def distance(group: FoldGroup) -> float:
            return min(abs(group.key - held.key) for held in held_out)
    else:
        def distance(group: FoldGroup) -> float:
            return min((groups.index(group) - groups.index(held)) % len(groups) for held in held_out)
    return min(candidates, key=lambda group: (group.has_calibration, distance(group), group.key))


def _fold(kind: str, groups: list[FoldGroup], held_out: list[FoldGroup], validation: list[FoldGroup] | None,
          samples: pd.DataFrame, calibration_file: str) -> Fold:
    if len(held_out) >= len(groups) - 1:
        raise ConfigError(f"held_out = {[group_label(g.key) for g in held_out]}: leaves no validation and training "
                          f"groups; allowed: fewer of {', '.join(group_label(g.key) for g in groups)}")
    validation = validation or [choose_validation(groups, held_out)]
    train = [group for group in groups if group not in held_out and group not in validation]
    if any(group in held_out for group in validation) or not train:
        raise ConfigError(f"validation = {[group_label(g.key) for g in validation]}: allowed: groups neither held "
                          "out nor all of the rest")
    files = {role: tuple(file for group in chosen for file in group.files)
             for role, chosen in (("test", held_out), ("val", validation), ("train", train))}
    name = "+".join(group_label(g.key) for g in held_out) + "_val_" + "+".join(group_label(g.key) for g in validation)
    return Fold(name, kind, tuple(g.key for g in held_out), tuple(g.key for g in validation), files["test"],
                files["val"], files["train"], _calibration(samples, calibration_file, files))


def training_order(samples: pd.DataFrame, fold: Fold) -> tuple[str, ...]:
    """The fold's training tests in the order a data-efficiency curve adds them (the module's rule)."""
    temperature = samples.set_index("file")[TEMPERATURE_COLUMN]
    left = sorted(fold.train_files)
    taken = [fold.calibration_file] if fold.calibration_file in left else [left[0]]
    left.remove(taken[0])
    while left:
        farthest = min(left, key=lambda file: (  # distances to 0.01 K, as the calibration rule
            -round(min(abs(temperature[file] - temperature[other]) for other in taken), 2), file))
        taken.append(farthest)
        left.remove(farthest)
    return tuple(taken)


def _calibration(samples: pd.DataFrame, configured: str, files: dict[str, tuple[str, ...]]) -> str:
    """The configured calibration test, or the training test standing in for it when it is held out."""
    if configured not in files["test"]:
        return configured
    calibration = samples.set_index("file").loc[configured]
    train = samples[samples["file"].isin(files["train"])]
    nearest = min(train.itertuples(), key=lambda test: (  # distances to 0.01 K: a tie is not decided by rounding
        test.tag != calibration["tag"], round(abs(test.ambient_temperature_K - calibration[TEMPERATURE_COLUMN]), 2),
        test.file))
    return nearest.file


def _find(groups: list[FoldGroup], values: Sequence[float | str], field: str) -> list[FoldGroup]:
    """The groups named by ``values`` (a temperature [degC] matches to 0.05 degC)."""
    found = []
    for value in values:
        matches = [group for group in groups if _names(group, value)]
        if not matches:
            raise ConfigError(f"{field} = {value}: no usable tests there; allowed: "
                              f"{', '.join(group_label(group.key) for group in groups)}")
        found += [group for group in matches if group not in found]
    return found


def _names(group: FoldGroup, value: float | str) -> bool:
    if not isinstance(group.key, float):
        return str(value) == group.key
    try:
        return abs(float(str(value).removesuffix("C")) - group.key) < 0.05
    except ValueError:
        return False
