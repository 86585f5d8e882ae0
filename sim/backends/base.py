"""One interface over where tasks run: :class:`Backend` maps a function over items and hands
each result to a callback as it finishes, so a corpus is written as samples arrive and a
surrogate gathers its solves in order. :class:`SerialBackend` runs here, one after another;
:class:`sim.backends.ray_backend.RayBackend` runs on Ray workers.
"""

from __future__ import annotations

import abc
from typing import Any, Callable, Literal, Sequence, TypeVar

from sim.errors import ConfigError

Item = TypeVar("Item")
Result = TypeVar("Result")
BACKENDS = ("serial", "ray")


class Backend(abc.ABC):
    """Runs ``function(*shared, item)`` for every item and reports each result."""

    @abc.abstractmethod
    def map(self, function: Callable[..., Result], items: Sequence[Item],
            on_result: Callable[[int, Result], None], *, shared: tuple[Any, ...] = (),
            lost: Callable[[Item, str], Result]) -> None:
        """Call ``on_result(position, result)`` for each of ``items`` as its result arrives
        (position: the item's index in ``items``; arrival order is the backend's).

        ``shared``: arguments every call receives before the item (sent to workers once).
        ``lost(item, message)``: the result to report when the worker running ``item`` died on
        every retry while its node stayed up (the item's own failure, e.g. a solver segfault).
        An exception raised by ``function`` propagates to the caller. Items lost to the
        infrastructure (a node, a raylet) are not reported: the others are, then
        :class:`sim.errors.InfrastructureLost` is raised.
        """


class SerialBackend(Backend):
    """Every call in this process, in the order of ``items``."""

    def map(self, function: Callable[..., Result], items: Sequence[Item],
            on_result: Callable[[int, Result], None], *, shared: tuple[Any, ...] = (),
            lost: Callable[[Item, str], Result]) -> None:
        for position, item in enumerate(items):
            on_result(position, function(*shared, item))


def make_backend(name: Literal["serial", "ray"], *, workers: int | None = None,
                 address: str | None = None) -> Backend:
    """The backend called ``name``: "serial", or "ray" on a local runtime with ``workers``
    CPUs (default: all) or on the cluster at ``address``."""
    if name == "serial":
        return SerialBackend()
    if name == "ray":
        from sim.backends.ray_backend import RayBackend  # ray_backend imports this module
        return RayBackend(workers=workers, address=address)
    raise ConfigError(f"backend = {name!r}: allowed: {', '.join(BACKENDS)}")
