"""Ray backend for corpus generation: one task per sample, submitted up front (up to a window
of in-flight tasks, see IN_FLIGHT_PER_CPU), results gathered with ``ray.wait`` and written as
they arrive (the driver keeps no data).

Workers are long-lived processes, so each keeps its PyBaMM models in ``sim.corpus.sample.WORKER_CACHE``
and builds a model structure once. Tasks are retried when a worker dies; a sample whose
worker dies on every retry is recorded as failed. Workers return numpy arrays only.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
from typing import Callable, Sequence

from sim.corpus import SampleResult, base_record, plan_sample, run_sample

log = logging.getLogger(__name__)
TASK_RETRIES = 3
# Each pending task costs the driver ~6 KiB and every ray.wait scans the pending list, so a
# million-sample corpus cannot be submitted at once: keep this many tasks per cluster CPU (at
# least MIN_IN_FLIGHT) in flight and submit one more as each finishes. Corpora up to that size
# are submitted whole.
IN_FLIGHT_PER_CPU = 64
MIN_IN_FLIGHT = 1024
# Fault injection for tests: when set to a path that does not exist yet, the first task to
# see it creates the file and kills its own worker process.
KILL_ONCE_ENV = "HYBAT_TEST_KILL_WORKER_ONCE"


def _sample_task(spec, index: int) -> SampleResult:
    marker = os.environ.get(KILL_ONCE_ENV)
    if marker and not os.path.exists(marker):
        with contextlib.suppress(FileExistsError):  # another worker may create it first
            open(marker, "x").close()
            os._exit(1)
    return run_sample(spec, index)


def run_with_ray(spec, pending: Sequence[int], write: Callable[[SampleResult], None], *,
                 workers: int | None = None, address: str | None = None) -> None:
    """Run samples ``pending`` of ``spec`` on Ray and pass each result to ``write``."""
    import ray

    started_here = not ray.is_initialized()
    if started_here:
        if address:
            if workers is not None:
                log.warning("workers=%s ignored: the cluster at %s decides how many CPUs run tasks", workers, address)
            ray.init(address=address, logging_level=logging.WARNING)
        else:
            ray.init(num_cpus=workers or os.cpu_count(), include_dashboard=False, logging_level=logging.WARNING)
    try:
        task = ray.remote(num_cpus=1, max_retries=TASK_RETRIES)(_sample_task)
        spec_ref = ray.put(spec)
        window = max(MIN_IN_FLIGHT, IN_FLIGHT_PER_CPU * int(ray.cluster_resources().get("CPU", 1)))
        queue = iter(pending)
        index_of = {task.remote(spec_ref, index): index for index, _ in zip(queue, range(window))}
        while index_of:
            done, _ = ray.wait(list(index_of), num_returns=1)
            for ref in done:
                index = index_of.pop(ref)
                write(_result(ray, ref, spec, index))
                for following in itertools.islice(queue, 1):
                    index_of[task.remote(spec_ref, following)] = following
    finally:
        if started_here:
            ray.shutdown()


def _result(ray, ref, spec, index: int) -> SampleResult:
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as error:
        raise error.cause from None  # a bug or bad input: fail as the serial backend would
    except ray.exceptions.RayError as error:  # the worker or node died on every retry
        message = f"{type(error).__name__}: worker lost on every retry"
        log.warning("sample %d lost: %s", index, error)
        return SampleResult({**base_record(spec, plan_sample(spec, index)), "message": message})
