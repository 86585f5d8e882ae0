"""The Ray backend: one task per item, up to a window of in-flight tasks (see
IN_FLIGHT_PER_CPU), results gathered with ``ray.wait`` and reported as they arrive (the driver
keeps no data).

Workers are long-lived processes, so each keeps its PyBaMM models in a module-level cache
(``sim.corpus.sample.WORKER_CACHE``) and builds a model structure once. Ray is imported here and
nowhere else in the library, and only when a Ray backend runs.

A task Ray loses is retried (TASK_RETRIES), on another node if its own went. When it is lost on
every attempt, the cause decides what it means:

- its worker died while its node stayed up (WorkerCrashedError: a poison item, e.g. a solver
  segfault): the item's own failure, reported through ``lost``;
- anything else (its node or raylet died, the driver's own raylet died, its objects were lost,
  its worker was killed for memory that other tasks used too): infrastructure. The item is not
  reported, the others are gathered, and :meth:`RayBackend.map` then raises
  :class:`sim.errors.InfrastructureLost`, so a rerun does the item.

Once the driver's own raylet is gone no task can run, so map stops and counts every item not
reported as lost. Ray itself usually ends such a driver at its next touch of the object store
(by design: a core worker exits when its plasma connection fails), with exit code 1 and no
Python cleanup; a corpus then holds exactly the samples finished before, and a resumed run
does the rest.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import logging
import os
from typing import Any, Callable, Iterator, Sequence

from sim.backends.base import Backend, Item, Result
from sim.errors import InfrastructureLost

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
# The loss of a driver's own raylet (Ray's error, or a broken socket to it in ray.wait or
# ray.get): no task can be submitted any more.
DRIVER_LOST = "LocalRayletDiedError"


def _ray():
    import ray  # here only: importing sim or hybrid must not load Ray

    return ray


def ray_train():
    """Ray Train (``ray.train`` with its torch module loaded), for data-parallel training
    (:mod:`hybrid.train.distributed`); imported here, with the rest of Ray, only when used."""
    import ray.train.torch  # noqa: F401  (loads ray.train.torch into ray.train)

    return _ray().train


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
            losses = _run(ray, function, items, on_result, shared, lost)
        if losses:
            causes = tuple(name for name, _ in losses.most_common())
            raise InfrastructureLost(f"{sum(losses.values())} of {len(items)} tasks lost to infrastructure "
                                     f"({', '.join(causes)})", lost=sum(losses.values()), causes=causes)


def _run(ray, function: Callable[..., Result], items: Sequence[Item], on_result: Callable[[int, Result], None],
         shared: tuple[Any, ...], lost: Callable[[Item, str], Result]) -> collections.Counter[str]:
    """Run :meth:`RayBackend.map` on the running runtime; returns how many items each kind of
    infrastructure loss (a Ray error name) took."""
    task = ray.remote(num_cpus=1, max_retries=TASK_RETRIES)(_task)
    shared_refs = [ray.put(value) for value in shared]
    window = max(MIN_IN_FLIGHT, IN_FLIGHT_PER_CPU * int(ray.cluster_resources().get("CPU", 1)))
    queue = iter(enumerate(items))

    def submit(count: int) -> dict:
        return {task.remote(function, *shared_refs, item): position for position, item in itertools.islice(queue, count)}

    losses: collections.Counter[str] = collections.Counter()
    position_of = submit(window)
    while position_of:
        try:
            [ref], _ = ray.wait(list(position_of), num_returns=1)
        except OSError as error:  # the socket to the driver's own raylet broke
            log.info("ray.wait failed: %s", error)
            loss = DRIVER_LOST
        else:
            result, loss = _gathered(ray, ref, items[position_of[ref]], lost)
        if loss == DRIVER_LOST:  # nothing can run any more, and touching a result may end this process
            losses[loss] += len(position_of) + sum(1 for _ in queue)
            break
        position = position_of.pop(ref)
        if loss is None:
            on_result(position, result)
        else:
            losses[loss] += 1
        position_of.update(submit(1))
    return losses


def is_infrastructure(error: Exception) -> bool:
    """Whether the Ray ``error`` that lost a task on every attempt is the infrastructure's doing
    rather than the item's: only a worker that died while its node stayed up is the item's
    (Ray reports NodeDiedError, not WorkerCrashedError, when the node went, even before the
    cluster marks the node dead). A worker killed for memory counts as infrastructure: whether
    it happens depends on what else ran on the node, so recording it would make the corpus
    depend on the backend."""
    return not isinstance(error, _ray().exceptions.WorkerCrashedError)


def _gathered(ray, ref, item: Item, lost: Callable[[Item, str], Result]) -> tuple[Result | None, str | None]:
    """(the task's result or ``lost``'s for a poison item, None), or (None, the Ray error's
    name) when the infrastructure took the item. A bug in the task is raised as itself."""
    try:
        return ray.get(ref), None
    except ray.exceptions.RayTaskError as error:
        raise error.cause from None  # a bug or bad input: fail as the serial backend would
    except OSError as error:  # the socket to the driver's own raylet broke (a task's own OSError is a RayTaskError)
        log.info("task of %r lost with the driver's raylet: %s", item, error)
        return None, DRIVER_LOST
    except ray.exceptions.RayError as error:
        if is_infrastructure(error):
            log.info("task of %r lost to infrastructure: %s", item, error)
            return None, type(error).__name__
        log.warning("task of %r failed: %s", item, error)
        return lost(item, f"{type(error).__name__}: its worker died on each of {TASK_RETRIES + 1} attempts"), None
