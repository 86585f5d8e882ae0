"""The error hierarchy shared by sim/ and hybrid/.

User-input errors (``ConfigError``, ``DataError``) carry a one-line message naming the
source (file or argument), the field, the value received and what is allowed; the CLI
prints that line and exits with code 2 (``exit_code``; 3 for ``InfrastructureLost``).
"""


class HybatError(Exception):
    """Base class for every error hybat raises on purpose."""

    exit_code = 2  # what the CLI exits with after printing the message


class ConfigError(HybatError, ValueError):
    """A configuration (YAML file, argument or spec object) is invalid."""


class DataError(HybatError, ValueError):
    """A data file (cycler CSV, corpus shard, checkpoint) is malformed or missing."""


class SimulationError(HybatError, RuntimeError):
    """A PyBaMM build or solve failed (raised only when the caller asks for exceptions)."""


class InfeasibleDesign(SimulationError):
    """A design that cannot exist (e.g. solid and pore volume fractions above 1)."""


class SampleTimeout(SimulationError):
    """A sample ran past the corpus's per-sample time limit."""


class TrainingDiverged(HybatError, RuntimeError):
    """A loss or gradient became NaN/inf, or the loss blew up; the last good checkpoint is kept."""


class InfrastructureLost(HybatError, RuntimeError):
    """Ray lost a node, a raylet or the driver's connection, and with it ``lost`` items of a
    run (``causes``: the Ray error names). Those items are not data (they may well succeed on a
    rerun), so nothing was recorded for them and a resumed run does them. CLI exit code 3."""

    exit_code = 3

    def __init__(self, message: str, *, lost: int, causes: tuple[str, ...]):
        super().__init__(message)
        self.lost, self.causes = lost, causes
