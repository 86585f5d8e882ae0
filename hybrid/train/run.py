"""A training run end to end: corpus -> splits and normalisation -> black box and hybrids -> metrics.

:func:`train_run` reads a :class:`TrainRunConfig` (``configs/train/*.yaml``), trains the
black-box baseline and every hybrid with :func:`hybrid.train.recipes.train_model`, and leaves in the run
directory::

    run_dir/
      run_config.json      the resolved config (every default filled in)
      splits.json          the split assignment: sample ids and the rows each split scores
      normalisation.json   per family (hybrid, black_box): features, targets, mean/std
      summary.json         what train_run returns
      <model name>/        fit's run directory: best.pt, last.pt, history.json, grad_norms.jsonl
      metrics.json, plots/ written by evaluate_run

:func:`evaluate_run` reloads the checkpoints (``weights_only=True``) and reports physics,
black box and hybrids side by side (see :mod:`hybrid.evaluate.report`).
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationInfo, field_validator, model_validator

from hybrid.baselines.options import ECMOptions
from hybrid.data import (
    TIME_STEP,
    ContextWindow,
    Corpus,
    FeatureOptions,
    SequenceBatch,
    SplitAssignment,
    SplitOptions,
    assign_splits,
    context_size,
    context_targets,
    context_window,
    fit_normalisation,
    load_corpus,
    make_batches,
)
from hybrid.data.stream import is_streamed, open_corpus, stream_batches, stream_normalisation, stream_splits
from hybrid.data.windows import ForecastWindows, forecast_batches, forecast_windows
from hybrid.models import ContextResidualConfig, ForecasterConfig, ModelConfig, TwoBranchConfig, config_from_dict, config_to_dict
from hybrid.train.config import TrainConfig
from hybrid.train.distributed import check_workers, train_distributed, training_cluster
from hybrid.train.finetune import (FineTuneOptions, adopt_pretrained, finetune_model, pretrained_checkpoint,
                                   pretrained_normalisation)
from hybrid.train.recipes import train_model
from sim.config import StrictModel, load_config, validate
from sim.errors import ConfigError, DataError, TrainingDiverged

log = logging.getLogger(__name__)

CORPUS_MANIFEST = "corpus_manifest.json"
RUN_CONFIG = "run_config.json"
SPLITS = "splits.json"
NORMALISATION = "normalisation.json"
SUMMARY = "summary.json"
METRICS = "metrics.json"
CHECKPOINT = "best.pt"
HYBRID_KINDS = ("residual_rnn", "two_branch", "context_residual", "forecaster")
PHYSICS = "physics"
BLACK_BOX = "black_box"


class EvaluationOptions(StrictModel):
    """rest_c_rate: |current| below this C-rate is rest. fast_step_s: a row at most this long
    after the previous one is on the fast (pulse) grid. plots: write PNG plots. ecm: on a
    measured corpus, the ECM baseline scored per test (fitted on the train records; see
    hybrid.baselines.options.ECMOptions); null: none."""

    rest_c_rate: float = Field(0.02, gt=0.0)
    fast_step_s: float = Field(2.0, gt=0.0)
    plots: bool = True
    ecm: ECMOptions | None = None


_SET_BY_DATA = ("input_size", "output_size", "current_index", "time_step_index", "time_step_mean_s",
                "time_step_std_s", "context_size", "context_targets")


def _model_config(model: dict[str, Any], normalisation: dict[str, Any] | None = None) -> ModelConfig:
    """The model config for ``model`` (a YAML dict without the fields set by the data) on data
    normalised by ``normalisation`` (fit_normalisation's dict); without it, the config with its
    sizes unset, which validates the entry."""
    given = sorted(set(model) & set(_SET_BY_DATA))
    if given:
        raise ConfigError(f"model field '{given[0]}' is set from the data; allowed: leave it out")
    if normalisation is None:
        return config_from_dict(model)
    sizes = {"input_size": len(normalisation["features"]), "output_size": len(normalisation["targets"])}
    if model.get("kind") == TwoBranchConfig.kind:
        sizes |= _two_branch_inputs(normalisation)
    if model.get("kind") == ContextResidualConfig.kind:
        sizes |= {"context_size": context_size(normalisation), "context_targets": context_targets(normalisation)}
    if model.get("kind") == ForecasterConfig.kind:
        sizes["output_size"] = 1  # the voltage residual, the one measured target (hybrid.data.windows)
    return config_from_dict({**model, **sizes})


def _two_branch_inputs(normalisation: dict[str, Any]) -> dict[str, Any]:
    """Where the two-branch residual finds the current and the time step, and the time step's
    normalisation, so that it can run in seconds."""
    features = normalisation["features"]
    if TIME_STEP not in features:
        raise ConfigError(f"model kind two_branch needs the '{TIME_STEP}' feature, which the features lack "
                          "(off, or constant on the train split); allowed: features.time_step: true on a "
                          "corpus whose time steps vary")
    index = features.index(TIME_STEP)
    return {"current_index": normalisation["current_index"], "time_step_index": index,
            "time_step_mean_s": normalisation["feature_mean"][index],
            "time_step_std_s": normalisation["feature_std"][index]}


class ModelEntry(StrictModel):
    """One hybrid: a name (its run subdirectory and metrics key), its model config without the
    sizes (kind residual_rnn or two_branch), and overrides of the shared train settings.

    ensemble: train this many members, alike but for the seed (member k trains with the entry's
    seed + k: its own initial weights and batch order), a deep ensemble whose spread is the
    design surrogate's uncertainty. Member 0 is ``name``, member k ``name-mK``; each is an
    ordinary model of the run (evaluated, exported on its own).
    """

    name: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_\-]*$")
    model: dict[str, Any]
    train: dict[str, Any] = Field(default_factory=dict)
    ensemble: int = Field(1, ge=1, le=16)

    @field_validator("name")
    @classmethod
    def _not_reserved(cls, name: str) -> str:
        if name in (PHYSICS, BLACK_BOX):
            raise ValueError(f"'{name}' is reserved for a baseline; allowed: any other name")
        if re.search(r"-m[0-9]+$", name):
            raise ValueError(f"'{name}': a name ending in -mK is an ensemble member's; allowed: any other name")
        return name

    @field_validator("model")
    @classmethod
    def _hybrid_kind(cls, model: dict[str, Any]) -> dict[str, Any]:
        if model.get("kind") not in HYBRID_KINDS:
            raise ValueError(f"kind = {model.get('kind')!r}; allowed for a hybrid: {', '.join(HYBRID_KINDS)}")
        forecast_windows(_model_config(model))  # a forecaster in a run needs its time windows
        return model


class BlackBoxEntry(StrictModel):
    """The black-box baseline (always trained): its model config without the sizes (kind
    black_box, the default) and overrides of the shared train settings."""

    model: dict[str, Any] = Field(default_factory=lambda: {"kind": "black_box", "cell": "gru", "hidden_size": 32})
    train: dict[str, Any] = Field(default_factory=dict)

    @field_validator("model")
    @classmethod
    def _black_box_kind(cls, model: dict[str, Any]) -> dict[str, Any]:
        model = {"kind": "black_box", **model}
        if model["kind"] != "black_box":
            raise ValueError(f"kind = {model['kind']!r}; allowed for the baseline: 'black_box'")
        _model_config(model)
        return model


class TrainRunConfig(StrictModel):
    """A training run: features, splits, models (hybrids; the black box is always trained),
    the shared train settings, the evaluation options, and how a run started from a pretrained
    one fine-tunes (``finetune``, used with ``init``: :mod:`hybrid.train.finetune`)."""

    name: str = "run"
    features: FeatureOptions = FeatureOptions()
    splits: SplitOptions = SplitOptions()
    models: list[ModelEntry] = Field(default_factory=list)
    black_box: BlackBoxEntry = BlackBoxEntry()
    train: TrainConfig = TrainConfig()
    evaluation: EvaluationOptions = EvaluationOptions()
    finetune: FineTuneOptions = FineTuneOptions()

    @field_validator("models")
    @classmethod
    def _time_step_for_two_branch(cls, models: list[ModelEntry], info: ValidationInfo) -> list[ModelEntry]:
        features = info.data.get("features")
        in_seconds = [entry.name for entry in models if entry.model["kind"] == TwoBranchConfig.kind]
        if in_seconds and features is not None and not features.time_step:
            raise ValueError(f"model '{in_seconds[0]}' (kind two_branch) reads the time step for its dynamics; "
                             "allowed: features.time_step: true")
        return models

    @model_validator(mode="after")
    def _valid_entries(self) -> "TrainRunConfig":
        names = [entry.name for entry in self.models]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"model name '{duplicates[0]}' appears twice; allowed: unique names")
        for entry in [self.black_box, *self.models]:
            self.train_config(entry)
        return self

    def entries(self) -> list[tuple[str, str, ModelEntry | BlackBoxEntry]]:
        """(name, family, entry) of every model to train, black box first, ensemble members after
        their first (see ModelEntry.ensemble)."""
        members = [self._member(entry, k) for entry in self.models for k in range(entry.ensemble)]
        return [(BLACK_BOX, "black_box", self.black_box), *((member.name, "hybrid", member) for member in members)]

    def members(self, name: str) -> list[str]:
        """The names of the ensemble members of hybrid ``name`` (just ``name`` without an ensemble)."""
        entry = next(entry for entry in self.models if entry.name == name)
        return [self._member(entry, k).name for k in range(entry.ensemble)]

    def _member(self, entry: ModelEntry, k: int) -> ModelEntry:
        if k == 0:
            return entry
        seed = self.train_config(entry).seed + k
        return entry.model_copy(update={"name": f"{entry.name}-m{k}", "train": {**entry.train, "seed": seed},
                                        "ensemble": 1})

    def train_config(self, entry: ModelEntry | BlackBoxEntry) -> TrainConfig:
        """The shared train settings with ``entry``'s overrides."""
        return validate(TrainConfig, {**self.train.model_dump(), **entry.train},
                        f"train overrides {entry.train}")


# --- training -----------------------------------------------------------------------------


def train_run(config_path: Path, corpus_dir: Path, out_dir: Path, *, streaming: bool = False,
              workers: int | None = None, address: str | None = None, init: Path | None = None) -> dict[str, Any]:
    """Train the run described by the YAML file ``config_path`` on ``corpus_dir`` into ``out_dir``
    (``streaming``, ``workers``, ``address``, ``init``: see :func:`train_from_config`)."""
    return train_from_config(load_config(config_path, TrainRunConfig), corpus_dir, out_dir, streaming=streaming,
                             workers=workers, address=address, init=init)


def train_from_config(config: TrainRunConfig, corpus_dir: Path, out_dir: Path, *, streaming: bool = False,
                      workers: int | None = None, address: str | None = None,
                      init: Path | None = None) -> dict[str, Any]:
    """Train the black box and every hybrid of ``config``; returns (and writes) the summary.

    ``streaming``: read each record from its corpus shard when it is needed instead of loading
    the corpus, for corpora larger than memory; memory stays bounded and the result is the same
    (:mod:`hybrid.data.stream`). ``workers``: train each model data-parallel with that many Ray
    Train workers, streaming, on this machine or on the Ray cluster at ``address``
    (:mod:`hybrid.train.distributed`). ``init``: a run directory whose models (same names and
    architectures) every model starts from, fine-tuned by ``config.finetune`` with the
    pretrained run's normalisation (:mod:`hybrid.train.finetune`); in one process only.

    Raises ConfigError if ``out_dir`` already holds a run or the splits leave no train or
    validation cells, DataError if the corpus is unusable.
    """
    out_dir, corpus_dir = Path(out_dir), Path(corpus_dir)
    if (out_dir / RUN_CONFIG).exists():
        raise ConfigError(f"out_dir {out_dir} already holds a run ({RUN_CONFIG}); allowed: a new directory")
    check_workers(workers, address)
    if init is not None and (streaming or workers is not None):
        raise ConfigError(f"--init {init} with --stream or --workers; allowed: fine-tuning in one process")
    _check_weighing(config, streaming or workers is not None)
    if streaming or workers is not None:
        corpus = open_corpus(corpus_dir)
        assignment = stream_splits(corpus, config.splits)
        normalisation = stream_normalisation(corpus, assignment, config.features, ("black_box", "hybrid"))
    else:
        corpus = load_corpus(corpus_dir)
        assignment = assign_splits(corpus, config.splits)
        normalisation = ({family: fit_normalisation(corpus, assignment, config.features, family)
                          for family in ("black_box", "hybrid")} if init is None else
                         pretrained_normalisation(init, read_run_file(init / NORMALISATION),
                                                  read_run_file(init / RUN_CONFIG).get("features", {}), corpus,
                                                  config.features))
    out_dir.mkdir(parents=True, exist_ok=True)
    write_run_file(out_dir / RUN_CONFIG, config.model_dump(mode="json"))
    write_run_file(out_dir / SPLITS, assignment.to_dict())
    write_run_file(out_dir / NORMALISATION, normalisation)
    # the corpus spec travels with the run: the surrogate needs its physics model, its plant
    # and the design space the hybrid was trained on
    write_run_file(out_dir / CORPUS_MANIFEST, read_run_file(corpus_dir / "manifest.json"))
    models = {}
    with training_cluster(workers, address):
        for name, family, entry in config.entries():
            log.info("training %s (%s)", name, family)
            models[name] = _train_one(name, entry, config, corpus, assignment, normalisation[family], out_dir,
                                      str(corpus_dir), workers, init)
    summary = {
        "run": config.name, "run_dir": str(out_dir), "corpus": str(corpus_dir), "init": str(init or ""),
        "splits": {split: assignment.sample_ids(split) for split in assignment.names()},
        "features": {family: norm["features"] for family, norm in normalisation.items()},
        "dropped_features": {family: norm["dropped_features"] for family, norm in normalisation.items()},
        "models": models,
        "data": {"streamed": is_streamed(corpus), "workers": workers or 1},
    }
    write_run_file(out_dir / SUMMARY, summary)
    return summary


def _train_one(name: str, entry: ModelEntry | BlackBoxEntry, config: TrainRunConfig, corpus: Corpus,
               assignment: SplitAssignment, normalisation: dict[str, Any], out_dir: Path,
               corpus_label: str, workers: int | None = None, init: Path | None = None) -> dict[str, Any]:
    train_config = config.train_config(entry)
    model_config = _model_config(entry.model, normalisation)
    window = context_window(model_config)
    forecast = forecast_windows(model_config)
    extra = {"model_name": name, "run": config.name, "corpus": corpus_label}
    fine_tuning: dict[str, Any] = {}  # with init: the recipe chosen, each candidate's validation loss
    started = time.perf_counter()
    try:
        if workers is not None:  # the workers build their batches from the shards
            trained, result = train_distributed(
                name, model_config, corpus, _ranges(corpus, assignment, "train"), _ranges(corpus, assignment, "val"),
                normalisation, train_config, out_dir / name, workers=workers, context=window, forecast=forecast,
                extra=extra)
        else:
            power = train_config.record_weight_power
            train_batches = _batches(corpus, assignment, "train", normalisation, train_config.batch_size, window,
                                     forecast, power)
            val_batches = _batches(corpus, assignment, "val", normalisation, train_config.batch_size, window, forecast,
                                   power)
            if init is None:
                trained, result = train_model(name, model_config, train_batches, val_batches, train_config,
                                              out_dir / name, normalisation=normalisation, extra=extra)
            elif config.finetune.recipe == "none":  # zero-shot: the pretrained model as it is
                start = pretrained_checkpoint(init, name, config_to_dict(model_config))
                trained, result = adopt_pretrained(name, start, val_batches, train_config, out_dir / name)
                fine_tuning = {"recipe": "none", "val_loss": {"none": result.best_val_loss}}
            else:
                start = pretrained_checkpoint(init, name, config_to_dict(model_config))
                (trained, result), fine_tuning = finetune_model(
                    lambda recipe, settings, run_dir: train_model(
                        name, model_config, train_batches, val_batches, settings, run_dir,
                        normalisation=normalisation, init=start, **recipe.train_model_options(),
                        extra={**extra, "init_from": str(start), "recipe": recipe.name}),
                    config.finetune, train_config, out_dir / name)
    except TrainingDiverged as error:  # a run trains several models: say which one to fix
        raise TrainingDiverged(f"model '{name}' ({out_dir / name}): {error}") from None
    speeds = [epoch["steps_per_second"] for epoch in result.history]
    return {"family": normalisation["family"], "kind": model_config.kind,
            **({"finetune": fine_tuning} if fine_tuning else {}),
            "parameters": sum(p.numel() for p in trained.model.parameters()),
            "initial_val_loss": result.initial_val_loss, "best_val_loss": result.best_val_loss,
            "best_epoch": result.best_epoch, "epochs_run": result.epochs_run, "stopped_early": result.stopped_early,
            "train_steps_per_s": sum(speeds) / len(speeds) if speeds else None,
            "seconds": time.perf_counter() - started}


def _batches(corpus: Corpus, assignment: SplitAssignment, split: str, normalisation: dict[str, Any],
             batch_size: int, context: ContextWindow | None = None,
             forecast: ForecastWindows | None = None, record_weight_power: float = 0.0) -> Sequence[SequenceBatch]:
    ranges = _ranges(corpus, assignment, split)
    if is_streamed(corpus):  # each batch read from the shards when fit asks for it
        return stream_batches(corpus, ranges, normalisation, batch_size, context, forecast)
    if forecast is not None:  # a forecaster trains on time windows, not whole records
        return forecast_batches(corpus, ranges, normalisation, batch_size, forecast)
    return make_batches(corpus, ranges, normalisation, batch_size, context, record_weight_power)


def _check_weighing(config: TrainRunConfig, streamed: bool) -> None:
    """ConfigError where ``train.record_weight_power`` meets training it does not reach: the
    weights need every record's valid rows at once, in memory, and whole records."""
    for name, _, entry in config.entries():
        power = config.train_config(entry).record_weight_power
        if not power:
            continue
        if streamed:
            raise ConfigError(f"model '{name}': train.record_weight_power = {power:g} with --stream or --workers; "
                              "allowed: 0, or training in one process on a corpus in memory")
        if entry.model.get("kind") == "forecaster":
            raise ConfigError(f"model '{name}': train.record_weight_power = {power:g} for a forecaster, which "
                              "trains on time windows; allowed: 0")


def _ranges(corpus: Corpus, assignment: SplitAssignment, split: str) -> dict[int, tuple[int, int]]:
    """The rows of ``split``; ConfigError when it is empty."""
    ranges = assignment.ranges.get(split)
    if not ranges:
        raise ConfigError(f"splits: the {split} split is empty ({len(corpus.cells)} usable cells); training needs "
                          "train and val cells: raise val_fraction or use a corpus with more cells")
    return ranges


def read_run_file(path: Path) -> Any:
    """A JSON file of a run directory (or a corpus manifest); DataError naming it when missing."""
    if not path.is_file():
        raise DataError(f"{path}: not found; allowed: a run directory written by hybat train")
    return json.loads(path.read_text())


def write_run_file(path: Path, payload: Any) -> None:
    path.write_text(json.dumps(payload, indent=1))
