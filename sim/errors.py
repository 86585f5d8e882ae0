"""The error hierarchy shared by sim/ and hybrid/.

User-input errors (``ConfigError``, ``DataError``) carry a one-line message naming the
source (file or argument), the field, the value received and what is allowed; the CLI
prints that line and exits with code 2.
"""


class HybatError(Exception):
    """Base class for every error hybat raises on purpose."""


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
