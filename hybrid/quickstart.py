"""``hybat quickstart``: the whole pipeline on the embedded default, end to end.

1. corpus   configs/quickstart/corpus.yaml, physics (SPM) paired with a synthetic plant, on Ray;
2. train    configs/quickstart/train.yaml, a GRU residual hybrid and a GRU black box;
3. evaluate every split, physics-only vs black box vs hybrid, with plots;
4. design   configs/quickstart/design.yaml, optimised through the surrogate, the winners
            re-run on the reference plant;
5. report   OUT/report.md with the tables and the PNG plots.

Each stage is the same function the matching subcommand calls, so the quickstart is the
pipeline, not a demo of it. Everything lands under OUT: corpus/, run/, design/, report.md.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any, Callable

from hybrid.design import design_cli
from hybrid.evaluate import TIMESCALES, evaluate_run
from hybrid.train import train_run
from sim.config import load_config
from sim.corpus import CorpusSpec, generate_corpus
from sim.errors import ConfigError

log = logging.getLogger(__name__)
CONFIGS = Path(__file__).resolve().parent / "configs" / "quickstart"  # hybrid/configs: the repository's configs/, shipped in the wheel
REPORT = "report.md"
SUMMARY = "quickstart.json"
STAGES = ("corpus", "train", "evaluate", "design")


def quickstart(out_dir: str | Path, *, backend: str = "ray", workers: int | None = None,
               configs: Path = CONFIGS, say: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the four stages into ``out_dir`` (which must be new or empty); write report.md
    and quickstart.json; return the summary (headline table, wall times, file paths)."""
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"--out {out}: not empty; allowed: a new or empty directory")
    corpus_dir, run_dir, design_dir = out / "corpus", out / "run", out / "design"
    spec = load_config(configs / "corpus.yaml", CorpusSpec)
    started = time.perf_counter()
    wall: dict[str, float] = {}

    def stage(number: int, name: str, what: str, action: Callable[[], Any]) -> Any:
        say(f"[{number}/{len(STAGES)}] {name}: {what}")
        begun = time.perf_counter()
        result = action()
        wall[name] = time.perf_counter() - begun
        say(f"[{number}/{len(STAGES)}] {name}: done in {wall[name]:.0f} s")
        return result

    manifest = stage(1, "corpus", f"{spec.cells} cells, physics vs plant, {backend} backend",
                     lambda: generate_corpus(spec, corpus_dir, backend=backend, workers=workers))
    stage(2, "train", "GRU residual hybrid and GRU black box",
          lambda: train_run(configs / "train.yaml", corpus_dir, run_dir))
    metrics = stage(3, "evaluate", "physics-only vs black box vs hybrid on every split",
                    lambda: evaluate_run(run_dir, corpus_dir))
    design = stage(4, "design", "optimise through the surrogate, verify on the reference",
                   lambda: design_cli(configs / "design.yaml", run_dir, design_dir))
    wall["total"] = time.perf_counter() - started
    summary = {"out": str(out), "wall_s": wall, "corpus": manifest["counts"],
               "headline": headline(metrics), "design": {key: design[key] for key in (
                   "chosen", "best", "surrogate_evaluations", "reference_evaluations")}}
    (out / REPORT).write_text(report_markdown(summary, metrics, design_dir, run_dir))
    (out / SUMMARY).write_text(json.dumps(summary, indent=1, default=str))
    return summary


def headline(metrics: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Voltage RMSE [mV] per split and model: {split: {model: rmse}}."""
    return {split: {model: figures["rmse_mV"] for model, figures in models.items()}
            for split, models in metrics["splits"].items()}


def headline_table(summary: dict[str, Any]) -> str:
    """Markdown: one row per split, one column per model (voltage RMSE in mV)."""
    table = summary["headline"]
    models = list(next(iter(table.values())))
    lines = ["| split | " + " | ".join(f"{model} RMSE [mV]" for model in models) + " |",
             "|---|" + "---|" * len(models)]
    for split, row in table.items():
        lines.append(f"| {split} | " + " | ".join(f"{row[model]:.1f}" for model in models) + " |")
    return "\n".join(lines)


def report_markdown(summary: dict[str, Any], metrics: dict[str, Any], design_dir: Path, run_dir: Path) -> str:
    """report.md: the corpus, the headline table, errors by timescale, throughput, the design
    loop's table and links to every plot (paths relative to the report)."""
    counts, wall = summary["corpus"], summary["wall_s"]
    lines = ["# hybat quickstart", "",
             f"Wall time {wall['total']:.0f} s: " + ", ".join(f"{name} {wall[name]:.0f} s" for name in STAGES) + ".",
             "",
             f"Corpus: {counts['samples']} cells ({counts['ok']} ok, {counts['truncated']} truncated, "
             f"{counts['failed']} failed), SPM physics paired with an SPMe plant (hysteresis, contact "
             "resistance, SEI, parameter spread), configs/quickstart/corpus.yaml.", "",
             "## Voltage error, physics-only vs black box vs hybrid", "", headline_table(summary), ""]
    split = "test" if "test" in metrics["timescales"] else next(iter(metrics["timescales"]))
    lines += [f"Error by timescale on the {split} split, RMSE [mV]:", "",
              "| model | " + " | ".join(TIMESCALES) + " |", "|---|" + "---|" * len(TIMESCALES)]
    for model, scales in metrics["timescales"][split].items():
        lines.append(f"| {model} | " + " | ".join(
            f"{scales[key]['rmse_mV']:.1f}" if key in scales else "-" for key in TIMESCALES) + " |")
    temperature = metrics.get("temperature", {}).get(split)
    if temperature:
        lines += ["", f"Cell temperature RMSE on the {split} split [K]: " + ", ".join(
            f"{model} {figures['rmse_K']:.2f}" for model, figures in temperature.items()) + "."]
    lines += ["", "Throughput on this CPU [sequence-steps/s]: " + ", ".join(
        f"{model} train {figures['train_steps_per_s']:.0f}, inference {figures['inference_steps_per_s']:.0f}"
        for model, figures in metrics["throughput"].items()), ""]
    lines += [f"![{name}]({(run_dir / 'plots' / name).relative_to(run_dir.parent)})" for name in metrics.get("plots", [])]
    design_report = (design_dir / "report.md").read_text().splitlines()
    lines += ["", "## Design loop", *design_report[1:], "",
              f"![design]({(design_dir / 'design.png').relative_to(design_dir.parent)})", ""]
    return "\n".join(lines)

