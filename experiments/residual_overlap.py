"""Does the synthetic population contain the real cells? Measured residuals against synthetic ones.

Usage:
    python experiments/residual_overlap.py --measured PAIRED --synthetic CORPUS --out DIR [--band 5 95]

PAIRED is a paired measured corpus (``hybat pair-measured``); CORPUS a synthetic corpus built
around it (a corpus spec with ``measured: {corpus: PAIRED}``), whose replays of each measured
test's current run at that test's own temperature. For every measured test, the residual to
learn (measured voltage - calibrated physics voltage) is compared, row by row on the test's own
time grid, with the residuals of the synthetic replays of the same current (plant voltage -
the same physics model's voltage). The **overlap** of a test is the fraction of its rows whose
measured residual lies inside the band (default 5th-95th percentile) of the synthetic
residuals at that time; a population that contains the real cell puts about 90 % of the rows
inside. Rows where fewer than three replays are valid are not counted. Also reported per test:
the RMS of the measured residual and of the synthetic ones, and the median band width.

Writes DIR/overlap.json and DIR/residual_overlap.png (one panel per test: the measured residual
over the synthetic band) and prints one JSON line: the row-weighted overall overlap and the
per-test figures.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from hybrid.data import PHYSICS_VOLTAGE, TIME, VOLTAGE, Corpus, load_corpus

MIN_REPLAYS = 3


def replays_of(synthetic: Corpus) -> dict[int, list[int]]:
    """measured sample_id -> synthetic sample ids replaying its current (profiles/test_<id>.csv)."""
    replays: dict[int, list[int]] = {}
    for sample_id, protocol in synthetic.samples["protocol"].astype(str).items():
        match = re.search(r"test_(\d+)\.csv", protocol)
        if match and sample_id in synthetic.cells:
            replays.setdefault(int(match.group(1)), []).append(int(sample_id))
    return replays


def residual(cell) -> tuple[np.ndarray, np.ndarray]:
    """(time from the record's start [s], voltage - physics voltage [V])."""
    time = cell.columns[TIME] - cell.columns[TIME][0]
    return time, cell.columns[VOLTAGE] - cell.columns[PHYSICS_VOLTAGE]


def test_overlap(measured_cell, synthetic_cells: list, band: tuple[float, float]) -> dict:
    """The overlap figures of one measured test against its synthetic replays (module docstring)."""
    time, measured = residual(measured_cell)
    others = []
    for cell in synthetic_cells:
        t, r = residual(cell)
        inside = time <= t[-1]  # a replay cut short (its physics left the window) says nothing later
        others.append(np.where(inside, np.interp(time, t, r), np.nan))
    stack = np.array(others)
    valid = (np.sum(np.isfinite(stack), axis=0) >= MIN_REPLAYS) & np.isfinite(measured)
    low, high = (np.nanpercentile(stack[:, valid], q, axis=0) for q in band)
    inside = (measured[valid] >= low) & (measured[valid] <= high)
    return {"replays": len(synthetic_cells), "rows": int(valid.sum()),
            "overlap": float(inside.mean()) if valid.any() else None,
            "measured_rms_mV": 1e3 * float(np.sqrt(np.nanmean(measured[valid] ** 2))),
            "synthetic_rms_mV": 1e3 * float(np.sqrt(np.nanmean(stack[:, valid] ** 2))),
            "median_band_mV": 1e3 * float(np.median(high - low)) if valid.any() else None,
            "_plot": (time[valid], measured[valid], low, high)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--measured", type=Path, required=True, help="paired measured corpus (hybat pair-measured)")
    parser.add_argument("--synthetic", type=Path, required=True, help="synthetic corpus built around it")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--band", type=float, nargs=2, default=(5.0, 95.0), help="percentiles of the band")
    args = parser.parse_args()
    measured, synthetic = load_corpus(args.measured), load_corpus(args.synthetic)
    replays = replays_of(synthetic)
    tests = {}
    for sample_id in measured.sample_ids:
        cells = [synthetic.cells[i] for i in replays.get(sample_id, [])]
        if len(cells) >= MIN_REPLAYS:
            tests[str(measured.samples.loc[sample_id, "file"])] = test_overlap(measured.cells[sample_id], cells,
                                                                               tuple(args.band))
    if not tests:
        raise SystemExit(f"no measured test of {args.measured} has {MIN_REPLAYS} or more replays in {args.synthetic}")
    rows = sum(t["rows"] for t in tests.values())
    overall = sum(t["overlap"] * t["rows"] for t in tests.values() if t["overlap"] is not None) / max(rows, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    _plot(tests, args.out / "residual_overlap.png", args.band)
    figures = {"experiment": "residual_overlap", "measured": str(args.measured), "synthetic": str(args.synthetic),
               "band_pct": list(args.band), "overlap": overall,
               "tests": {name: {k: v for k, v in t.items() if k != "_plot"} for name, t in tests.items()}}
    (args.out / "overlap.json").write_text(json.dumps(figures, indent=1))
    print(json.dumps(figures))


def _plot(tests: dict, path: Path, band) -> None:
    fig, axes = plt.subplots(len(tests), 1, figsize=(8, 2.2 * len(tests)), sharex=False, squeeze=False)
    for axis, (name, figures) in zip(axes[:, 0], tests.items()):
        time, measured, low, high = figures["_plot"]
        axis.fill_between(time / 3600, 1e3 * low, 1e3 * high, color="tab:blue", alpha=0.3,
                          label=f"synthetic {band[0]:g}-{band[1]:g} % ({figures['replays']} replays)")
        axis.plot(time / 3600, 1e3 * measured, color="black", linewidth=0.7, label="measured")
        axis.set_title(f"{name}: overlap {100 * figures['overlap']:.0f} %", fontsize=9)
        axis.set_ylabel("residual [mV]")
        axis.legend(fontsize=7, loc="lower left")
    axes[-1, 0].set_xlabel("time [h]")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
