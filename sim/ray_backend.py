"""Ray backend for corpus generation: one task per sample, all submitted up front, results
gathered with ``ray.wait`` and written as they arrive (the driver keeps no data).

Workers are long-lived processes, so each keeps its PyBaMM models in ``sim.sample.WORKER_CACHE``
and builds a model structure once. Tasks are retried when a worker dies; a sample whose
worker dies on every retry is recorded as failed. Workers return numpy arrays only.
"""

from __future__ import annotations

import logging
import os
from typing import Callable, Sequence

from sim.sample import SampleResult, run_sample

log = logging.getLogger(__name__)
TASK_RETRIES = 3
# Fault injection for tests: when set to a path that does not exist yet, the first task to
# see it creates the file and kills its own worker process.
KILL_ONCE_ENV = "HYBAT_TEST_KILL_WORKER_ONCE"


def _sample_task(spec, index: int) -> SampleResult:
    marker = os.environ.get(KILL_ONCE_ENV)
    if marker:
        try:
            with open(marker, "x"):
                pass
            os._exit(1)
        except FileExistsError:
            pass
    return run_sample(spec, index)


def run_with_ray(spec, pending: Sequence[int], write: Callable[[SampleResult], None], *,
                 workers: int | None = None, address: str | None = None) -> None:
    """Run samples ``pending`` of ``spec`` on Ray and pass each result to ``write``."""
    import ray

    started_here = not ray.is_initialized()
    if started_here:
        if address:
            ray.init(address=address, logging_level=logging.WARNING)
        else:
            ray.init(num_cpus=workers or os.cpu_count(), include_dashboard=False, logging_level=logging.WARNING)
    try:
        task = ray.remote(num_cpus=1, max_retries=TASK_RETRIES)(_sample_task)
        spec_ref = ray.put(spec)
        index_of = {task.remote(spec_ref, index): index for index in pending}
        remaining = list(index_of)
        while remaining:
            done, remaining = ray.wait(remaining, num_returns=1)
            for ref in done:
                write(_result(ray, ref, index_of.pop(ref)))
    finally:
        if started_here:
            ray.shutdown()


def _result(ray, ref, index: int) -> SampleResult:
    try:
        return ray.get(ref)
    except ray.exceptions.RayError as error:  # the worker died on every retry
        message = f"{type(error).__name__}: {str(error).strip().splitlines()[0]}"
        log.warning("sample %d lost: %s", index, message)
        return SampleResult({"sample_id": index, "status": "failed", "message": message})
