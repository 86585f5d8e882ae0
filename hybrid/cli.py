"""The `hybat` command: one subcommand per pipeline stage.

Every error hybat raises on purpose (a ``sim.errors.HybatError``: a bad config or data file, a
failed simulation, an infeasible design, a diverging training) prints one line on stderr naming
what to change and exits with code 2 (3 for lost infrastructure, below); heavy modules are
imported inside the subcommands so `hybat --help` stays fast.

Exit codes: 0 done; 1 `simulate` whose simulation failed; 2 a HybatError; 3 Ray lost work to
the infrastructure (a node, a raylet: ``sim.errors.InfrastructureLost``): `hybat corpus` keeps
the samples it finished, records none of the lost ones and does them when run again with
--resume. With the Ray backend it runs the driver in a child process, so that a driver Ray
ends itself (its raylet died) is still reported with that line and code 3.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from sim.errors import HybatError

# set in the environment of a Ray corpus driver that `hybat corpus` supervises (see supervise_driver)
DRIVER_ENV = "HYBAT_CORPUS_DRIVER"


def cmd_simulate(args: argparse.Namespace) -> int:
    from sim.config import load_config
    from sim.physics import simulate
    from sim.physics import SimulateConfig

    config = load_config(args.config, SimulateConfig)
    trajectory = simulate(config.cell, config.protocol, config.fidelity)
    if trajectory.ok:
        trajectory.to_parquet(args.out)
    summary = trajectory.summary() | {"wall_s": round(trajectory.metadata.get("wall_s", 0.0), 2)}
    if trajectory.ok:
        summary["out"] = str(args.out)
    print(json.dumps(summary, indent=None if args.json else 2))
    return 0 if trajectory.ok else 1


def cmd_corpus(args: argparse.Namespace) -> int:
    from sim.config import load_config
    from sim.corpus import CorpusSpec, generate_corpus

    spec = load_config(args.config, CorpusSpec)
    if args.backend == "ray" and not os.environ.get(DRIVER_ENV):
        return supervise_driver(_corpus_command(args), args.out, spec.name, spec.cells)
    manifest = generate_corpus(spec, args.out, backend=args.backend, workers=args.workers,
                               address=args.address, resume=args.resume)
    print_manifest_summary(f"corpus {spec.name}", manifest, args.out)
    return 0


def _corpus_command(args: argparse.Namespace) -> list[str]:
    """This `hybat corpus` call as a command line for the driver process."""
    command = [sys.executable, "-m", "hybrid.cli"] + (["-v"] if args.verbose else [])
    command += ["corpus", str(args.config), "--out", str(args.out), "--backend", args.backend]
    command += ["--workers", str(args.workers)] if args.workers is not None else []
    command += ["--address", args.address] if args.address else []
    return command + (["--resume"] if args.resume else [])


def supervise_driver(command: list[str], out: Path, name: str, cells: int) -> int:
    """Run ``command`` (a Ray corpus driver) in a child process and return its exit code.

    Ray ends a driver whose own raylet died at once (exit 1, no Python cleanup), so only a
    process outside Ray can say what was lost: if the driver dies that way, count the samples
    missing from the journal of ``out`` and print the one line of an infrastructure loss (exit
    3). SIGINT and SIGTERM are passed on to the driver, which stops cleanly.
    """
    import signal
    import subprocess

    child = subprocess.Popen(command, env={**os.environ, DRIVER_ENV: "1"})
    forward = {sig: signal.signal(sig, lambda number, _: child.send_signal(number))
               for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        code = child.wait()
    finally:
        for sig, handler in forward.items():
            signal.signal(sig, handler)
    if code in (0, 2, 3):  # finished, or it said what went wrong itself
        return code
    from sim.corpus.writer import journal_parts

    missing = cells - len(journal_parts(out))
    if missing <= 0:
        return code
    print(f"hybat corpus: error: corpus {name}: {missing} of {cells} samples lost to infrastructure (the Ray "
          f"driver exited with code {code}); run again with --resume to redo them", file=sys.stderr)
    return 3


def cmd_pair_measured(args: argparse.Namespace) -> int:
    from sim.measured import pair_measured_cli

    manifest = pair_measured_cli(args.config, args.out, resume=args.resume)
    print_manifest_summary(f"measured {manifest.get('name', args.config.stem)}", manifest, args.out)
    return 0


def print_manifest_summary(label: str, manifest: dict, out: Path) -> None:
    counts = manifest["counts"]
    print(f"{label}: {counts['samples']} samples ({counts['ok']} ok, {counts['truncated']} truncated, "
          f"{counts['failed']} failed) in {manifest['wall_s']:.1f} s -> {out}")
    for reason, count in manifest["failure_reasons"]:
        print(f"  {count} x {reason}")


def export_corpus_bdf(args: argparse.Namespace) -> str:
    from sim.measured import export_bdf

    index = export_bdf(args.source, args.out, table_format=args.table_format)
    return (f"exported {len(index['exported'])} samples as BDF .{args.table_format} tables "
            f"({len(index['skipped'])} skipped: no series) -> {args.out}")


def export_run_casadi(args: argparse.Namespace) -> str:
    from hybrid.export import export_casadi

    function = export_casadi(args.source, args.out, model=args.model)
    outputs = [name for name in function.name_out() if name != "next_state"]
    return (f"exported {function.name()}: {function.n_in() - 1} features + state[{function.size1_in('state')}] -> "
            f"{', '.join(outputs)}, next_state as a casadi.Function -> {args.out}")


# --format -> the exporter of that format; each takes the parsed arguments, writes args.out
# and returns a one-line summary
EXPORTERS = {"bdf": export_corpus_bdf, "casadi": export_run_casadi}


def cmd_export(args: argparse.Namespace) -> int:
    print(EXPORTERS[args.format](args))
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from hybrid.train import train_run

    # only the options given: without them, train_run's defaults (in memory, one process)
    given = {"streaming": args.stream, "workers": args.workers, "address": args.address, "init": args.init}
    summary = train_run(args.config, args.corpus, args.out, **{name: value for name, value in given.items()
                                                                 if value is not None and value is not False})
    print(json.dumps(summary, indent=2, default=str))
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from hybrid.evaluate import evaluate_run

    metrics = evaluate_run(args.run_dir, args.corpus)
    if args.json:
        print(json.dumps(metrics, default=str))
    else:
        print(metrics_table(metrics))
    return 0


def cmd_design(args: argparse.Namespace) -> int:
    from hybrid.design import design_cli

    report = design_cli(args.config, args.model, args.out)
    print(json.dumps(report, default=str) if args.json else json.dumps(report, indent=2, default=str))
    return 0


def cmd_quickstart(args: argparse.Namespace) -> int:
    from hybrid.quickstart import REPORT, headline_table, quickstart

    summary = quickstart(args.out, backend=args.backend, workers=args.workers)
    print(f"\nquickstart done in {summary['wall_s']['total']:.0f} s; report: {args.out / REPORT}")
    best = summary["design"]["best"]
    if best is not None:
        chosen = summary["design"]["chosen"][best]
        print("best design (reference-verified): " + ", ".join(f"{k} = {v:.4g}" for k, v in chosen["params"].items()))
    print("\nvoltage RMSE [mV], physics-only vs black box vs hybrid:")
    print(headline_table(summary))
    return 0


def metrics_table(metrics: dict) -> str:
    """Markdown tables of RMSE / MAE / max error [mV] per split and model: open loop (with the
    ratios to physics and to the floor), then rolling forecasts if the run has a forecaster,
    then every model per test on a measured corpus (held-out tests first)."""
    lines = ["| split | model | RMSE [mV] | MAE [mV] | max [mV] | / physics | / floor |",
             "|---|---|---|---|---|---|---|"]
    for split, models in metrics["splits"].items():
        for model, figures in models.items():
            ratios = [f"{figures[key]:.2f}" if figures.get(key) is not None else "" for key in ("vs_physics", "vs_floor")]
            lines.append(f"| {split} | {model} | {figures['rmse_mV']:.1f} | {figures['mae_mV']:.1f} | "
                         f"{figures['max_mV']:.1f} | {ratios[0]} | {ratios[1]} |")
    if metrics.get("rolling"):
        lines += ["", "rolling forecasts (the same forecast windows for every model):", "",
                  "| split | model | horizon [s] | windows | RMSE [mV] | MAE [mV] | max [mV] |", "|---|---|---|---|---|---|---|"]
        for split, models in metrics["rolling"].items():
            for model, figures in models.items():
                lines.append(f"| {split} | {model} | {figures['horizon_s']:g} | {figures['windows']} | "
                             f"{figures['rmse_mV']:.1f} | {figures['mae_mV']:.1f} | {figures['max_mV']:.1f} |")
    if metrics.get("per_test"):
        from hybrid.evaluate.tables import per_test_table

        lines += ["", "per test: voltage RMSE over the record / inside 5-95 % reference SOC [mV] / SOC MAE [%]:", "",
                  per_test_table(metrics["per_test"])]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hybat", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    simulate = commands.add_parser("simulate", help="simulate one cell + protocol + fidelity to Parquet")
    simulate.add_argument("config", type=Path, help="YAML config (see configs/simulate/)")
    simulate.add_argument("--out", type=Path, required=True, help="output .parquet file")
    simulate.add_argument("--json", action="store_true", help="print the summary as one JSON line")
    simulate.set_defaults(handler=cmd_simulate)

    corpus = commands.add_parser("corpus", help="generate a paired (reference, physics) corpus to Parquet")
    corpus.add_argument("config", type=Path, help="YAML corpus spec (see configs/corpus/)")
    corpus.add_argument("--out", type=Path, required=True, help="output directory")
    corpus.add_argument("--backend", choices=["serial", "ray"], default="serial")
    corpus.add_argument("--workers", type=int, default=None, help="local Ray CPUs (default: all)")
    corpus.add_argument("--address", default=None, help="Ray cluster address, e.g. 10.0.0.1:6379")
    corpus.add_argument("--resume", action="store_true", help="finish a partly written corpus")
    corpus.set_defaults(handler=cmd_corpus)

    paired = commands.add_parser("pair-measured", help="pair measured cycler tests with a calibrated physics model")
    paired.add_argument("config", type=Path, help="YAML pairing spec (see configs/measured/)")
    paired.add_argument("--out", type=Path, required=True, help="output directory (corpus format)")
    paired.add_argument("--resume", action="store_true", help="finish a partly written pairing")
    paired.set_defaults(handler=cmd_pair_measured)

    export = commands.add_parser("export", help="export a corpus in a standard format (bdf: Battery Data Format) "
                                 "or a trained model as a casadi.Function (casadi)")
    export.add_argument("source", metavar="SOURCE", type=Path, help="corpus directory (for --format bdf); run "
                        "directory written by hybat train (for --format casadi)")
    export.add_argument("--format", choices=sorted(EXPORTERS), required=True, help="what to write")
    export.add_argument("--out", type=Path, required=True, help="bdf: new or empty output directory; casadi: the "
                        "file to write")
    export.add_argument("--model", default=None, help="casadi: the run's model to export (default: its first "
                        "hybrid; black_box for the baseline)")
    export.add_argument("--table-format", default="csv",  # checked by the exporter: one list of formats
                        help="bdf: csv (default, BDF's own), csv.gz or parquet")
    export.set_defaults(handler=cmd_export)

    train = commands.add_parser("train", help="train the residual hybrids and the black-box baseline")
    train.add_argument("config", type=Path, help="YAML training config (see configs/train/)")
    train.add_argument("--corpus", type=Path, required=True, help="corpus directory")
    train.add_argument("--out", type=Path, required=True, help="run directory")
    train.add_argument("--stream", action="store_true", help="read records from the corpus shards as needed "
                       "(bounded memory, same result) instead of loading the corpus")
    train.add_argument("--workers", type=int, default=None, help="data-parallel Ray Train workers (streams; "
                       "default: one process)")
    train.add_argument("--address", default=None, help="Ray cluster address for --workers, e.g. 10.0.0.1:6379 "
                       "(corpus and --out on a shared filesystem)")
    train.add_argument("--init", type=Path, default=None, metavar="RUN", help="start every model from the model "
                       "of the same name in this run (pretraining), fine-tuned as the config's finetune section says")
    train.set_defaults(handler=cmd_train)

    evaluate = commands.add_parser("evaluate", help="evaluate a trained run against physics-only and black-box")
    evaluate.add_argument("run_dir", metavar="RUN", type=Path, help="run directory written by hybat train")
    evaluate.add_argument("--corpus", type=Path, required=True, help="corpus directory")
    evaluate.add_argument("--json", action="store_true", help="print the metrics as one JSON line")
    evaluate.set_defaults(handler=cmd_evaluate)

    design = commands.add_parser("design", help="search designs through the hybrid surrogate, verify with the reference")
    design.add_argument("config", type=Path, help="YAML design problem (see configs/design/)")
    design.add_argument("--model", type=Path, required=True, help="run directory written by hybat train")
    design.add_argument("--out", type=Path, required=True, help="output directory (report, study)")
    design.add_argument("--json", action="store_true", help="print the report as one JSON line")
    design.set_defaults(handler=cmd_design)

    quick = commands.add_parser("quickstart", help="the whole pipeline on the embedded default: corpus, train, "
                                "evaluate, design, report")
    quick.add_argument("--out", type=Path, default=Path("quickstart"), help="new or empty output directory "
                       "(default: ./quickstart)")
    quick.add_argument("--backend", choices=["serial", "ray"], default="ray", help="corpus backend (default: ray)")
    quick.add_argument("--workers", type=int, default=None, help="local Ray CPUs (default: all)")
    quick.set_defaults(handler=cmd_quickstart)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.handler(args)
    except HybatError as error:
        message = " ".join(line.strip() for line in str(error).splitlines() if line.strip())
        print(f"hybat {args.command}: error: {message}", file=sys.stderr)
        return error.exit_code


if __name__ == "__main__":
    sys.exit(main())
