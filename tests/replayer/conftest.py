"""Fixtures for the replayer's tests: a simulator on an ephemeral port with fast, fault-free timing; a `Lab`
(database, simulator, CLI environment) per test for the end-to-end ones."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from simulator import ModelProfile, ProfileSet, RunningSimulator, Simulator, running_simulator
from tests.support.replay_lab import LAB_FAST, Lab
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


@pytest.fixture
def lab_factory(pg_database: str, tmp_path: Path, cli: Callable[..., Any]) -> Iterator[Callable[..., Any]]:
    """`lab_factory(profile)`: (a `Lab` on this test's database, its own simulator with `profile`, seed 3)."""
    labs: list[Any] = []

    def make(profile: ModelProfile = LAB_FAST) -> tuple[Lab, Simulator]:
        context = running_simulator(seed=3, profiles=ProfileSet(default=profile))
        running = context.__enter__()
        labs.append(context)
        lab = Lab(pg_database, running.base_url, tmp_path, cli)
        engines.append(lab.engine)
        return lab, running.simulator

    engines: list[sa.Engine] = []
    yield make
    for engine in engines:
        engine.dispose()
    for context in labs:
        context.__exit__(None, None, None)
