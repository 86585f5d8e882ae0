"""The Ray backend: one task per item, up to a window of in-flight tasks (see
IN_FLIGHT_PER_CPU), results gathered with ``ray.wait`` and reported as they arrive (the driver
keeps no data).

Workers are long-lived processes, so each keeps its PyBaMM models in a module-level cache
(``sim.corpus.sample.WORKER_CACHE``) and builds a model structure once. Tasks are retried when a
worker dies; an item whose worker dies on every retry is reported through ``lost``. Ray is
imported here and nowhere else in the library, and only when a Ray backend runs.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
from typing import Any, Callable, Iterator, Sequence

from sim.backends.base import Backend, Item, Result

log = logging.getLogger(__name__)
TASK_RETRIES = 3
# Each pending task costs the driver ~6 KiB and every ray.wait scans the pending list, so a
# million-sample corpus cannot be submitted at once: keep this many tasks per cluster CPU (at
# least MIN_IN_FLIGHT) in flight and submit one more as each finishes. Maps up to that size
# are submitted whole.
IN_FLIGHT_PER_CPU = 64
MIN_IN_FLIGHT = 1024
# Fault injection for tests: when set to a path that does not exist yet, the first task to
# see it creates the file and kills its own worker process.
KILL_ONCE_ENV = "HYBAT_TEST_KILL_WORKER_ONCE"


def _ray():
    import ray  # here only: importing sim or hybrid must not load Ray

    return ray


@contextlib.contextmanager
def ray_runtime(workers: int | None = None, address: str | None = None) -> Iterator[None]:
    """Ray for the block: the running one if Ray is initialised (left running), else one
    started here and shut down after: local with ``workers`` CPUs (default all), or connected
    to the cluster at ``address``. Wrap a whole design loop to start Ray once."""
    ray = _ray()
    if ray.is_initialized():
        yield
        return
    if address:
        if workers is not None:
            log.warning("workers=%s ignored: the cluster at %s decides how many CPUs run tasks", workers, address)
        ray.init(address=address, logging_level=logging.WARNING)
    else:
        ray.init(num_cpus=workers or os.cpu_count(), include_dashboard=False, logging_level=logging.WARNING)
    try:
        yield
    finally:
        ray.shutdown()


def _task(function: Callable[..., Result], *arguments: Any) -> Result:
    """What a worker runs: ``function(*arguments)``, after the test fault injection."""
    marker = os.environ.get(KILL_ONCE_ENV)
    if marker and not os.path.exists(marker):
        with contextlib.suppress(FileExistsError):  # another worker may create it first
            open(marker, "x").close()
            os._exit(1)
    return function(*arguments)


class RayBackend(Backend):
    """Tasks on Ray: the running runtime, else a local one with ``workers`` CPUs (default
    all) or the cluster at ``address``, started in :meth:`map` and stopped after it."""

    def __init__(self, workers: int | None = None, address: str | None = None):
        self.workers, self.address = workers, address

    def map(self, function: Callable[..., Result], items: Sequence[Item],
            on_result: Callable[[int, Result], None], *, shared: tuple[Any, ...] = (),
            lost: Callable[[Item, str], Result]) -> None:
        ray = _ray()
        with ray_runtime(self.workers, self.address):
            task = ray.remote(num_cpus=1, max_retries=TASK_RETRIES)(_task)
            shared_refs = [ray.put(value) for value in shared]
            window = max(MIN_IN_FLIGHT, IN_FLIGHT_PER_CPU * int(ray.cluster_resources().get("CPU", 1)))
            queue = iter(enumerate(items))
            position_of = {task.remote(function, *shared_refs, item): position
                           for position, item in itertools.islice(queue, window)}
            while position_of:
                done, _ = ray.wait(list(position_of), num_returns=1)
                for ref in done:
                    position = position_of.pop(ref)
                    on_result(position, _gathered(ray, ref, items[position], lost))
                    for following, item in itertools.islice(queue, 1):
                        position_of[task.remote(function, *shared_refs, item)] = following


def _gathered(ray, ref, item: Item, lost: Callable[[Item, str], Result]) -> Result:
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as error:
        raise error.cause from None  # a bug or bad input: fail as the serial backend would
    except ray.exceptions.RayError as error:  # the worker or node died on every retry
        log.warning("task of %r lost: %s", item, error)
        return lost(item, f"{type(error).__name__}: worker lost on every retry")
