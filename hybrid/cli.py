"""The `hybat` command: one subcommand per pipeline stage.

User-input errors (configs, data files, arguments) print one line on stderr and exit with
code 2; heavy modules are imported inside the subcommands so `hybat --help` stays fast.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from sim.errors import ConfigError, DataError

USER_ERRORS = (ConfigError, DataError)


def cmd_simulate(args: argparse.Namespace) -> int:
    from sim.config import load_config
    from sim.simulate import simulate
    from sim.specs import SimulateConfig

    config = load_config(args.config, SimulateConfig)
    trajectory = simulate(config.cell, config.protocol, config.fidelity)
    if trajectory.ok:
        trajectory.to_parquet(args.out)
    summary = trajectory.summary() | {"wall_s": round(trajectory.metadata.get("wall_s", 0.0), 2)}
    if trajectory.ok:
        summary["out"] = str(args.out)
    print(json.dumps(summary, indent=None if args.json else 2))
    return 0 if trajectory.ok else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hybat", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    simulate = commands.add_parser("simulate", help="simulate one cell + protocol + fidelity to Parquet")
    simulate.add_argument("config", type=Path, help="YAML config (see configs/simulate/)")
    simulate.add_argument("--out", type=Path, required=True, help="output .parquet file")
    simulate.add_argument("--json", action="store_true", help="print the summary as one JSON line")
    simulate.set_defaults(run=cmd_simulate)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.run(args)
    except USER_ERRORS as error:
        print(f"hybat {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
