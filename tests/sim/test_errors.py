"""The error hierarchy: one base class; user-input errors are ValueErrors, failures RuntimeErrors."""

from __future__ import annotations

import inspect

import pytest

from sim import errors
from sim.errors import (ConfigError, DataError, HybatError, InfeasibleDesign, InfrastructureLost, SampleTimeout,
                        SimulationError, TrainingDiverged)

ALL = [ConfigError, DataError, SimulationError, InfeasibleDesign, SampleTimeout, TrainingDiverged]


def test_the_module_defines_exactly_these_errors():
    defined = {cls for _, cls in inspect.getmembers(errors, inspect.isclass) if cls.__module__ == errors.__name__}
    assert defined == {HybatError, *ALL, InfrastructureLost}


def test_infrastructure_lost_is_a_run_failure_with_its_own_exit_code():
    error = InfrastructureLost("2 of 4 tasks lost", lost=2, causes=("NodeDiedError",))
    assert isinstance(error, HybatError) and isinstance(error, RuntimeError) and not isinstance(error, ValueError)
    assert (error.lost, error.causes, error.exit_code, HybatError.exit_code) == (2, ("NodeDiedError",), 3, 2)


@pytest.mark.parametrize("error_type", ALL)
def test_every_error_derives_from_hybat_error(error_type):
    assert issubclass(error_type, HybatError) and issubclass(HybatError, Exception)
    with pytest.raises(HybatError, match="boom"):
        raise error_type("boom")


@pytest.mark.parametrize("error_type", [ConfigError, DataError])
def test_user_input_errors_are_value_errors(error_type):
    assert issubclass(error_type, ValueError) and not issubclass(error_type, RuntimeError)


@pytest.mark.parametrize("error_type", [SimulationError, InfeasibleDesign, SampleTimeout, TrainingDiverged])
def test_run_failures_are_runtime_errors_not_value_errors(error_type):
    assert issubclass(error_type, RuntimeError) and not issubclass(error_type, ValueError)


def test_an_infeasible_design_and_a_timeout_are_simulation_errors():
    assert issubclass(InfeasibleDesign, SimulationError) and issubclass(SampleTimeout, SimulationError)
    assert not issubclass(TrainingDiverged, SimulationError)
