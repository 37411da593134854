"""Fixtures for the replayer's tests: a simulator on an ephemeral port with fast, fault-free timing."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from simulator import ProfileSet, RunningSimulator, running_simulator
from tests.support.sim_profiles import FAST


@pytest.fixture(scope="module")
def simulator_server() -> Iterator[RunningSimulator]:
    """A running simulator (seed 7, fast profile); `.simulator.record(request_id)` shows what it served."""
    with running_simulator(seed=7, profiles=ProfileSet(default=FAST)) as running:
        yield running


@pytest.fixture(scope="module")
def simulator(simulator_server: RunningSimulator) -> str:
    """Base URL of a running simulator (Anthropic SDKs take it as is; OpenAI clients add `/v1`)."""
    return simulator_server.base_url
