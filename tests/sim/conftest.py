"""Fixtures shared by the sim tests."""

from tests.sim.measured_fixture import synthetic_corpus, synthetic_data_dir  # noqa: F401 (fixtures)
