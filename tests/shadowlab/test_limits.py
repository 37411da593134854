"""The shared rate limiter on the embedded database: window bounds, retry-after, retry policy."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from shadowlab import migrate
from shadowlab.db import create_engine, session_factory
from shadowlab.experiment import LimitSpec
from shadowlab.limits import RateLimiter, backoff_delay, should_retry
from shadowlab.providers import ProviderResult


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def factory(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    engine = create_engine(f"sqlite:///{tmp_path / 'limits.db'}")
    migrate.upgrade(engine)
    yield session_factory(engine)
    engine.dispose()


def test_requests_per_window_hold_and_the_wait_is_until_the_oldest_leaves(
    factory: sessionmaker[Session],
) -> None:
    clock = Clock()
    limit = LimitSpec(provider="p", model="m", rpm=3, window_s=10)
    limiter = RateLimiter(factory, (limit,), clock=clock)
    admitted = [limiter.try_acquire(limit, 10, 10) for _ in range(3)]
    assert all(event is not None for event, _, _ in admitted)
    event, wait, _ = limiter.try_acquire(limit, 10, 10)
    assert event is None and wait == pytest.approx(10)
    clock.now += timedelta(seconds=10.001)
    # Still in flight: they may reach the provider any moment, so they still count.
    assert limiter.try_acquire(limit, 10, 10)[0] is None
    for event, _, at in admitted:
        assert event is not None
        limiter._release(event, at, 10, 10)  # their heads came at once
    assert limiter.try_acquire(limit, 10, 10)[0] is not None


def test_output_tokens_and_concurrency_are_limited(factory: sessionmaker[Session]) -> None:
    clock = Clock()
    tokens = LimitSpec(provider="p", model="t", output_tpm=100, window_s=60)
    both = LimitSpec(provider="p", model="c", concurrency=1)
    limiter = RateLimiter(factory, (tokens, both), clock=clock)
    assert limiter.try_acquire(tokens, 0, 80)[0] is not None
    assert limiter.try_acquire(tokens, 0, 30)[0] is None
    assert limiter.try_acquire(tokens, 0, 20)[0] is not None
    first, _, _ = limiter.try_acquire(both, 1, 1)
    assert first is not None and limiter.try_acquire(both, 1, 1)[0] is None
    limiter._release(first, clock.now, 1, 1)
    assert limiter.try_acquire(both, 1, 1)[0] is not None


def test_retry_after_blocks_the_key_for_everyone(factory: sessionmaker[Session]) -> None:
    clock = Clock()
    limit = LimitSpec(provider="p", model="m", rpm=100)
    limiter = RateLimiter(factory, (limit,), clock=clock)
    limiter._block(limit.key, 2.5)
    event, wait, _ = RateLimiter(factory, (limit,), clock=clock).try_acquire(limit, 1, 1)
    assert event is None and wait == pytest.approx(2.5)
    clock.now += timedelta(seconds=2.6)
    assert limiter.try_acquire(limit, 1, 1)[0] is not None


def test_a_key_without_limits_never_waits(factory: sessionmaker[Session]) -> None:
    permit = asyncio.run(RateLimiter(factory, ()).acquire("p/free", 10**9, 10**9))
    assert permit.event_id is None


def test_retry_policy() -> None:
    def result(code: str | None, status: int | None) -> ProviderResult:
        return ProviderResult("p", "m", error_code=code, status_code=status)  # type: ignore[arg-type]

    assert should_retry(result("rate_limited", 429)) and should_retry(result("overloaded", 529))
    assert should_retry(result("stream_error", None)) and should_retry(result("bad_request", 409))
    assert not should_retry(result("bad_request", 400)) and not should_retry(result(None, 200))
    rng = random.Random(1)
    delays = [backoff_delay(a, 0.5, 4, None, rng) for a in range(1, 10)]
    assert all(0 <= d <= 4 for d in delays)
    assert backoff_delay(1, 0.5, 4, 7.0, rng) == 7.0
