"""Fixtures for the replayer's tests: a simulator on an ephemeral port with fast, fault-free timing."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from simulator import Distribution, ModelProfile, ProfileSet, RunningSimulator, running_simulator

FAST = ModelProfile(
    ttfb_ms=Distribution(median=2),
    ttft_ms=Distribution(median=5),
    tokens_per_s=20_000,
    output_tokens=Distribution(median=40, sigma=0.3, low=10, high=80),
    cache_min_tokens=100,
    stall_ms=3_000,
)


@pytest.fixture(scope="module")
def simulator_server() -> Iterator[RunningSimulator]:
    """A running simulator (seed 7, fast profile); `.simulator.record(request_id)` shows what it served."""
    with running_simulator(seed=7, profiles=ProfileSet(default=FAST)) as running:
        yield running


@pytest.fixture(scope="module")
def simulator(simulator_server: RunningSimulator) -> str:
    """Base URL of a running simulator (Anthropic SDKs take it as is; OpenAI clients add `/v1`)."""
    return simulator_server.base_url
