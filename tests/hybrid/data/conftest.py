"""Shared by the data tests: one synthetic corpus per module."""

import pytest

from hybrid.data.corpus import Corpus, load_corpus
from tests.hybrid.data.test_corpus import write_corpus


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Corpus:
    return load_corpus(write_corpus(tmp_path_factory.mktemp("corpus")))
