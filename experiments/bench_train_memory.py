"""Benchmark: peak memory of `hybat train` on a corpus and on one 4x larger, streamed and in memory.

Usage:
    python experiments/bench_train_memory.py --corpus DIR [--copies 64] [--factor 4] [--epochs 1]
                                             [--keep DIR]

Makes two corpora from the corpus ``--corpus`` (e.g. ``hybat corpus configs/corpus/smoke.yaml
--out corpora/smoke``) without simulating: ``--copies`` copies of its samples, and ``--factor``
times as many, each copy's shards rewritten under new sample ids. Trains a small GRU black box
(``--epochs`` epochs) on each with ``hybat train --stream`` and with the in-memory ``hybat
train`` (the baseline), each in a fresh process, and reads that process's peak resident memory
(``ru_maxrss`` of the child, from ``os.wait4``).

Prints one JSON line: cells and rows of each corpus; per path the peak memory [MiB] on each,
its growth from the smaller to the larger (streamed target: below 10 %), the wall time and the
best validation loss (streamed and in-memory training give the same loss on the same corpus).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

TARGET_GROWTH = 0.10  # streamed peak memory, larger corpus over smaller
RUN_CONFIG = {
    "name": "bench_train_memory",
    "splits": {"seed": 0, "val_fraction": 0.1, "test_fraction": 0.1},
    "black_box": {"model": {"kind": "black_box", "cell": "gru", "hidden_size": 16, "layers": 1}},
    "train": {"batch_size": 8, "truncation_steps": 100, "learning_rate": 3.0e-3, "seed": 0},
}


def replicate(source: Path, copies: int, out: Path) -> dict:
    """``copies`` copies of the corpus at ``source`` in ``out``: copy k's sample ids shifted by
    k x (largest id + 1), one series and one cycles shard per sample as the source has them;
    returns its cells and series rows."""
    samples = pd.read_parquet(source / "samples.parquet")
    stride = int(samples["sample_id"].max()) + 1
    rows = 0
    for folder in ("series", "cycles"):
        (out / folder).mkdir(parents=True)
        for part in sorted((source / folder).glob("part-*.parquet")):
            table, number = pq.read_table(part), int(part.stem.removeprefix("part-"))
            column = table.schema.get_field_index("sample_id")
            ids = table.column(column).to_numpy()
            for copy in range(copies):
                shifted = table.set_column(column, "sample_id", pa.array(ids + copy * stride))
                pq.write_table(shifted, out / folder / f"part-{number + copy * stride:06d}.parquet")
            rows += copies * len(table) if folder == "series" else 0
    copied = pd.concat([samples.assign(sample_id=samples["sample_id"] + copy * stride) for copy in range(copies)])
    copied.to_parquet(out / "samples.parquet", index=False)
    shutil.copy(source / "manifest.json", out / "manifest.json")
    return {"cells": len(copied), "rows": rows}


def train_peak(config: Path, corpus: Path, run: Path, streamed: bool) -> dict:
    """`hybat train` in a fresh process: its peak resident memory [MiB], wall time [s] and the
    black box's best validation loss."""
    command = [sys.executable, "-m", "hybrid.cli", "train", str(config), "--corpus", str(corpus), "--out", str(run)]
    started = time.perf_counter()
    child = subprocess.Popen(command + (["--stream"] if streamed else []), stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
    stderr = child.stderr.read()  # to its end, then reap the child with its resource usage
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise RuntimeError(f"hybat train on {corpus} failed: {stderr[-2000:]}")
    summary = json.loads((run / "summary.json").read_text())
    return {"peak_MiB": round(usage.ru_maxrss / 1024, 1), "wall_s": round(time.perf_counter() - started, 1),
            "best_val_loss": summary["models"]["black_box"]["best_val_loss"]}


def measure(args: argparse.Namespace, work: Path) -> dict:
    config = work / "train.yaml"
    config.write_text(yaml.safe_dump(RUN_CONFIG | {"train": RUN_CONFIG["train"] | {"epochs": args.epochs}}))
    sizes = {"small": args.copies, "large": args.factor * args.copies}
    corpora = {size: replicate(args.corpus, copies, work / size) for size, copies in sizes.items()}
    runs = {path: {size: train_peak(config, work / size, work / f"run-{path}-{size}", path == "streamed")
                   for size in sizes} for path in ("streamed", "in_memory")}
    figures = {"corpora": corpora}
    for path, by_size in runs.items():
        growth = by_size["large"]["peak_MiB"] / by_size["small"]["peak_MiB"] - 1.0
        figures[path] = {"peak_MiB": [by_size[size]["peak_MiB"] for size in sizes],
                         "peak_growth_pct": round(100.0 * growth, 2),
                         "wall_s": [by_size[size]["wall_s"] for size in sizes],
                         "best_val_loss": [by_size[size]["best_val_loss"] for size in sizes]}
    streamed_growth = figures["streamed"]["peak_growth_pct"] / 100.0
    figures["targets_met"] = {f"streamed_peak_growth<{TARGET_GROWTH:.0%}": streamed_growth < TARGET_GROWTH,
                              "streamed_loss_equals_in_memory": all(
                                  abs(a - b) <= 1e-6 * abs(b) for a, b in zip(figures["streamed"]["best_val_loss"],
                                                                               figures["in_memory"]["best_val_loss"]))}
    return figures


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, required=True, help="corpus to copy (e.g. the smoke corpus)")
    parser.add_argument("--copies", type=int, default=64, help="copies of it in the smaller corpus")
    parser.add_argument("--factor", type=int, default=4, help="the larger corpus is this many times the smaller")
    parser.add_argument("--epochs", type=int, default=1, help="training epochs")
    parser.add_argument("--keep", type=Path, default=None, help="write corpora and runs here and keep them")
    args = parser.parse_args(argv)
    begun = time.perf_counter()
    work = args.keep or Path(tempfile.mkdtemp(prefix="bench-train-memory-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        figures = measure(args, work)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    figures |= {"source": str(args.corpus), "copies": [args.copies, args.factor * args.copies], "epochs": args.epochs,
                "load_1min_end": round(os.getloadavg()[0], 2), "bench_wall_s": round(time.perf_counter() - begun, 1)}
    print(json.dumps(figures))
    return figures


if __name__ == "__main__":
    main()
