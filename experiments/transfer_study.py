"""Sim-to-real transfer over the folds of a measured data set: physics, ECM, black box and hybrids
(from scratch, zero-shot from synthetic pretraining, fine-tuned) on every held-out test.

Usage:
    python experiments/transfer_study.py --dataset a123|samsung30q --out DIR [--data-dir DIR] [--work DIR]
        [--folds loto|fixed|all|loco] [--held-out VALUE ...] [--validation VALUE ...] [--seeds N]
        [--resample-period-s S] [--synthetic-cells N] [--workers N] [--curve] [--context-window-s S] [--quick]
        [--set KEY=VALUE ...] [--corpus-set KEY=VALUE ...]

    --dataset     a123: the A123 dynamic tests, folds by chamber temperature (values in degC);
                  samsung30q: the Samsung 30Q HPPC and rate tests, folds by cell (values: cell ids)
    --data-dir    a folder laid out like ../shared/data/real/ (default: $HYBAT_REAL_DATA, else that)
    --folds       a123: loto (each temperature held out in turn), fixed (held out -15 and 15 degC,
                  validation 5 degC) or all (both; default); samsung30q: loco (each cell in turn)
    --held-out    instead, one fold holding out these temperatures / cells; --validation: its
                  validation ones (default: the rule of hybrid.data.folds)
    --seeds       seeds 0 .. N-1 for every trained model (default 3); tables: mean ± sd over them
    --work        pairings, synthetic corpora and runs (default OUT/work); all of it is resumed,
                  by the same code only (each code's under WORK/code_FINGERPRINT)
    --synthetic-cells  cells of each fold's synthetic corpus (default: the corpus config's)
    --set         overrides of the pretraining and fine-tuning configs by dotted path, e.g.
                  features.soc_head=false; --corpus-set: of the synthetic corpus spec, e.g. cells=24
                  (runs and corpora of other overrides keep their own directories under --work)
    --workers     generate the synthetic corpora on a local Ray runtime with N CPUs (default: serial)
    --curve       also the data-efficiency curve: per fold, the hybrid from scratch and fine-tuned
                  trained on the first 1 ... N-1 of its N training tests (same validation, same
                  pretrained run: only the measured voltages are cut), next to the full runs
    --context-window-s  also zero-shot with a characterisation context: an LSTM residual told which
                  cell it corrects, pretrained on the synthetic corpus only, reads the first S
                  seconds of each held-out test (at most a quarter of it) and predicts the rest;
                  scored beside the calibrated physics on the same rows (those after the context)
    --quick       smoke run: 60 s grid, 2 epochs, 4 synthetic cells, 1 seed, the first fold

The chain, the fold rules and the curve's order: hybrid.transfer.study and hybrid.data.folds.
Writes OUT/results.md and OUT/figures.json; prints the tables and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from hybrid.evaluate import json_safe
from hybrid.train import torch_threads
from hybrid.transfer import DATASETS, QUICK, StudySettings, check_overrides, run_study
from sim.errors import ConfigError, HybatError
from sim.measured import REAL_DATA_VARIABLE, default_real_data_dir


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=sorted(DATASETS), required=True)
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--folds", choices=("all", "loto", "fixed", "loco"), default=None)
    parser.add_argument("--held-out", nargs="+", default=[])
    parser.add_argument("--validation", nargs="+", default=[])
    for flag, kind in (("--seeds", int), ("--resample-period-s", float), ("--workers", int),
                       ("--synthetic-cells", int), ("--context-window-s", float)):
        parser.add_argument(flag, type=kind, default=None)
    for flag in ("--set", "--corpus-set"):
        parser.add_argument(flag, nargs="*", default=[], metavar="KEY=VALUE")
    parser.add_argument("--curve", action="store_true")
    parser.add_argument("--quick", action="store_true")
    return parser.parse_args(argv)


def settings_from(args: argparse.Namespace) -> StudySettings:
    """The data set's defaults, --quick's, then the options given; ConfigError naming a bad one."""
    dataset = DATASETS[args.dataset]
    if args.folds is not None and args.folds not in dataset.fold_kinds:
        raise ConfigError(f"--folds {args.folds}: allowed for {args.dataset}: {', '.join(dataset.fold_kinds)}")
    if args.validation and not args.held_out:
        raise ConfigError(f"--validation {' '.join(args.validation)}: allowed only with --held-out")
    for flag, value in (("--seeds", args.seeds), ("--resample-period-s", args.resample_period_s),
                        ("--workers", args.workers), ("--synthetic-cells", args.synthetic_cells),
                        ("--context-window-s", args.context_window_s)):
        if value is not None and value <= 0:
            raise ConfigError(f"{flag} {value}: allowed: a positive number")
    quick = QUICK if args.quick else {}
    given = {"seeds": args.seeds, "resample_period_s": args.resample_period_s,
             "synthetic_cells": args.synthetic_cells}
    settings = StudySettings(dataset, **{"resample_period_s": dataset.resample_period_s, **quick,
                                         **{key: value for key, value in given.items() if value is not None}},
                             workers=args.workers, curve=args.curve, quick=args.quick,
                             corpus_overrides=tuple(args.corpus_set), train_overrides=tuple(args.set),
                             context_window_s=args.context_window_s)
    check_overrides(settings)
    return settings


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the study; returns the figures (also in OUT/figures.json)."""
    args = parse_args(argv)
    settings = settings_from(args)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger(__name__).setLevel(logging.INFO)
    data_dir = (args.data_dir or default_real_data_dir()).resolve()
    if not data_dir.is_dir():
        raise ConfigError(f"--data-dir {data_dir}: not a directory; allowed: a folder laid out like "
                          "../shared/data/real/")
    os.environ[REAL_DATA_VARIABLE] = str(data_dir)  # the configs read ${HYBAT_REAL_DATA}
    with torch_threads(1):  # small RNNs gain nothing from more threads (see TrainConfig.threads)
        figures = run_study(settings, args.dataset, args.out, args.work or args.out / "work", args.folds,
                            args.held_out, args.validation)
    print((args.out / "results.md").read_text())
    print(json.dumps(json_safe({key: figures[key] for key in ("experiment", "dataset", "summary", "wall_s")})))
    return figures


if __name__ == "__main__":
    try:
        main()
    except HybatError as error:
        print(f"transfer_study.py: error: {error}", file=sys.stderr)
        sys.exit(error.exit_code)
