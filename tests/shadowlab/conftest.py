"""Fixtures of the tee tests: an in-memory sink, and a fast simulator per module for the real SDKs."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import shadowlab_tee as tee
from simulator import ProfileSet, RunningSimulator, running_simulator
from tests.support.sim_profiles import FAST


@pytest.fixture
def sink() -> Iterator[tee.MemorySink]:
    memory = tee.MemorySink()
    yield memory
    memory.close(timeout=5)


@pytest.fixture(scope="module")
def sim() -> Iterator[RunningSimulator]:
    with running_simulator(seed=3, profiles=ProfileSet(default=FAST)) as running:
        yield running
