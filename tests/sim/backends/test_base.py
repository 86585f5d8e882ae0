"""The serial backend: results in item order, shared arguments first, exceptions propagate.

Tasks are functions of the operator module, which every Ray worker can import too.
"""

import operator

import pytest

from sim.backends.base import SerialBackend, make_backend
from sim.errors import ConfigError


def gathered(backend, function, items: list[int]) -> tuple[list, list[int]]:
    """(results of ``function(3, item)`` in item order, positions in arrival order)."""
    results: list = [None] * len(items)
    arrivals: list[int] = []

    def on_result(position: int, result) -> None:
        results[position] = result
        arrivals.append(position)

    backend.map(function, items, on_result, shared=(3,), lost=lambda item, message: None)
    return results, arrivals


def test_serial_backend_calls_in_order_with_the_shared_arguments_first():
    results, arrivals = gathered(SerialBackend(), operator.sub, [4, 0, 7])
    assert results == [-1, 3, -4] and arrivals == [0, 1, 2]


def test_serial_backend_raises_what_the_task_raises_and_unknown_backends_are_refused():
    with pytest.raises(ZeroDivisionError):
        gathered(SerialBackend(), operator.truediv, [1, 0])
    with pytest.raises(ConfigError, match="backend = 'dask': allowed: serial, ray"):
        make_backend("dask")
