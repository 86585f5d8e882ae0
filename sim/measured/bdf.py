"""Export a corpus as Battery Data Format (BDF) tables, one file per sample.

:func:`export_bdf` writes, for every sample with status ok or truncated (a failed sample has no
series), a BDF table and a JSON sidecar, then ``index.json`` (written last: a directory without
it is an interrupted export)::

    out/
      sample-000000.bdf.csv     BDF table (.bdf.csv.gz or .bdf.parquet on request)
      sample-000000.hybat.json  the sample's samples-table row, the corpus name and fingerprint,
                                every column's hybat name, unit and conversion, the conventions
      index.json                the corpus manifest, the files written, the samples skipped

Column mapping. The channels :func:`sim.measured.load_measured` reads get BDF's preferred
labels and units (taken from :data:`sim.measured.columns.COLUMN_ALIASES`, so export and loader
share one name table), and the cycler counter gets BDF's net capacity:

    Time [s]                 -> Test Time / s
    Current [A]              -> Current / A                 negated (see below)
    Voltage [V]              -> Voltage / V
    Cell temperature [K]     -> Temperature T1 / degC       K - 273.15
    Ambient temperature [K]  -> Ambient Temperature / degC  K - 273.15
    Discharge capacity [A.h] -> Net Capacity / Ah           negated

Every other column (physics outputs, the plant's true states) keeps its hybat name and value,
written the BDF way: "Physics voltage [V]" -> "Physics voltage / V", "State of charge" ->
"State of charge / 1".

Sign convention. BDF counts current positive on charge; hybat corpora follow PyBaMM, positive
on discharge. The exported "Current / A" and "Net Capacity / Ah" are therefore the corpus values
negated; read them back with ``load_measured(path, current_sign="charge_positive")``.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from tqdm import tqdm

from sim.corpus.writer import write_json
from sim.errors import ConfigError, DataError
from sim.measured.columns import COLUMN_ALIASES, CURRENT, PYBAMM_NAMES, TIME
from sim.measured.fit_data import DISCHARGE_CAPACITY
from sim.measured.loader import ZERO_CELSIUS_K

TableFormat = Literal["csv", "csv.gz", "parquet"]
TABLE_FORMATS = get_args(TableFormat)
EXPORTED_STATUSES = ("ok", "truncated")
SIGN_CONVENTION = ("Current / A and Net Capacity / Ah are positive on charge (BDF); hybat corpora count "
                   "discharge positive (PyBaMM), so both are the corpus values negated. Read back with "
                   "sim.load_measured(path, current_sign='charge_positive').")
UNITS = ("Standard BDF columns use BDF units (s, A, V, degC, Ah); every other column keeps its hybat "
         "unit, named after the slash ('/ 1' is dimensionless).")
# BDF reserves "<stem>.metadata.json" for its own sidecar schema (strict keys): ours is named apart
SIDECAR_SUFFIX = ".hybat.json"


def _preferred_label(quantity: str) -> tuple[str, str]:
    """BDF's preferred label of a quantity sim.measured reads, and its unit: the first of its
    aliases written the BDF way, "Name / unit"."""
    return next((alias, unit) for alias, unit in COLUMN_ALIASES[quantity] if " / " in alias)


# corpus column -> (BDF label, BDF unit)
STANDARD_COLUMNS: dict[str, tuple[str, str]] = {
    **{name: _preferred_label(quantity) for quantity, name in PYBAMM_NAMES.items()},
    DISCHARGE_CAPACITY: ("Net Capacity / Ah", "Ah"),
}
# corpus columns whose BDF counterpart is counted positive on charge
CHARGE_POSITIVE = (CURRENT, DISCHARGE_CAPACITY)


def export_bdf(corpus_dir: str | Path, out_dir: str | Path, *, table_format: TableFormat = "csv",
               progress: bool = True) -> dict[str, Any]:
    """Write every usable sample of the corpus at ``corpus_dir`` as a BDF table in ``out_dir``.

    corpus_dir: a corpus directory (samples.parquet, series/, manifest.json).
    out_dir: a new or empty directory.
    table_format: "csv" (BDF's default), "csv.gz" or "parquet".
    Returns the index also written to ``out_dir/index.json``: the corpus manifest, the files
    of each exported sample and the samples skipped (failed: no series).
    """
    corpus_dir, out_dir = Path(corpus_dir), Path(out_dir)
    if table_format not in TABLE_FORMATS:
        raise ConfigError(f"table_format={table_format!r}: allowed values are {', '.join(TABLE_FORMATS)}")
    manifest, samples = _read_corpus(corpus_dir)
    _prepare_out(out_dir)
    usable = {row["sample_id"]: row for row in samples if row["status"] in EXPORTED_STATUSES}
    corpus = {"path": str(corpus_dir)} | {key: manifest.get(key)
                                          for key in ("name", "fingerprint", "schema_version", "created")}
    exported = []
    parts = sorted((corpus_dir / "series").glob("part-*.parquet"))
    for part in tqdm(parts, desc=f"export bdf {manifest.get('name', '')}", unit="part", disable=not progress):
        for sample_id, series in pq.read_table(part).to_pandas().groupby("sample_id", sort=True):
            if sample_id in usable:
                exported.append(_export_sample(series, usable[sample_id], corpus, out_dir, table_format))
    written = {entry["sample_id"] for entry in exported}
    skipped = [{key: row[key] for key in ("sample_id", "status", "message")}
               for row in samples if row["sample_id"] not in written]
    index = {"format": "Battery Data Format (BDF)", "table_format": table_format, "corpus": corpus,
             "note": "only samples with status ok or truncated are exported; failed samples have no series",
             "sign_convention": SIGN_CONVENTION, "units": UNITS, "exported": exported, "skipped": skipped,
             "manifest": manifest}
    write_json(out_dir / "index.json", index)
    return index


def bdf_table(series: pd.DataFrame) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """One sample's series rows (corpus names, SI, discharge positive) as a BDF table sorted by
    time, and a description of each of its columns (BDF name, unit, hybat name, conversion)."""
    series = series.sort_values(TIME, kind="stable")
    table, described = {}, []
    for name in series.columns:
        if name == "sample_id":
            continue
        values = series[name].to_numpy(dtype=float)
        if name in STANDARD_COLUMNS:
            label, unit = STANDARD_COLUMNS[name]
            values, conversion = _to_bdf_units(name, unit, values)
        else:
            label, unit, conversion = *_custom_label(name), "none"
        table[label] = values
        described.append({"name": label, "unit": unit, "hybat_name": name, "conversion": conversion,
                          "bdf_standard": name in STANDARD_COLUMNS})
    return pd.DataFrame(table), described


def _to_bdf_units(name: str, unit: str, values: np.ndarray) -> tuple[np.ndarray, str]:
    if name in CHARGE_POSITIVE:
        return -values, "negated"
    if unit == "degC":
        return values - ZERO_CELSIUS_K, "K - 273.15"
    return values, "none"


def _custom_label(name: str) -> tuple[str, str]:
    """A hybat name written the BDF way, and its unit: "X [u]" -> "X / u", "X" -> "X / 1"."""
    match = re.fullmatch(r"(.+) \[(.+)\]", name)
    return (f"{match[1]} / {match[2]}", match[2]) if match else (f"{name} / 1", "1")


def _export_sample(series: pd.DataFrame, row: dict[str, Any], corpus: dict[str, Any], out_dir: Path,
                   table_format: str) -> dict[str, Any]:
    """Write one sample's table and sidecar; return its index entry."""
    sample_id = int(row["sample_id"])
    table, described = bdf_table(series)
    stem = f"sample-{sample_id:06d}"
    data_file = f"{stem}.bdf.{table_format}"
    if table_format == "parquet":
        table.to_parquet(out_dir / data_file, index=False)
    else:
        table.to_csv(out_dir / data_file, index=False, compression="gzip" if table_format == "csv.gz" else None)
    sidecar = {"format": "Battery Data Format (BDF)", "data_file": data_file, "rows": len(table),
               "sample": _sample_metadata(row), "corpus": corpus, "sign_convention": SIGN_CONVENTION,
               "units": UNITS, "columns": described}
    write_json(out_dir / f"{stem}{SIDECAR_SUFFIX}", sidecar)
    return {"sample_id": sample_id, "status": row["status"], "data": data_file,
            "metadata": f"{stem}{SIDECAR_SUFFIX}", "rows": len(table)}


def _sample_metadata(row: dict[str, Any]) -> dict[str, Any]:
    """The samples-table row as JSON values: NaN becomes null, the protocol (stored as JSON
    text) becomes an object."""
    metadata = {key: None if isinstance(value, float) and not math.isfinite(value) else value
                for key, value in row.items()}
    if isinstance(metadata.get("protocol"), str):
        metadata["protocol"] = json.loads(metadata["protocol"])
    return metadata


def _read_corpus(corpus_dir: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The manifest and the samples-table rows of a corpus directory."""
    manifest_file, samples_file = corpus_dir / "manifest.json", corpus_dir / "samples.parquet"
    if not corpus_dir.is_dir():
        raise DataError(f"{corpus_dir}: corpus directory not found")
    if not (manifest_file.is_file() and samples_file.is_file()):
        raise DataError(f"{corpus_dir}: not a finished corpus (needs manifest.json and samples.parquet); "
                        f"allowed: a directory written by hybat corpus or hybat pair-measured")
    return json.loads(manifest_file.read_text()), pq.read_table(samples_file).to_pylist()


def _prepare_out(out_dir: Path) -> None:
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise ConfigError(f"out {out_dir}: must be a new or empty directory")
    out_dir.mkdir(parents=True, exist_ok=True)
