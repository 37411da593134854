"""A worker's share of a limit, enforced in process (embedded database, fake clocks): window bounds, calls
counted until their response head, concurrency, retry-after, the retry policy."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from shadowlab import migrate
from shadowlab.config import Settings, load_settings
from shadowlab.db import create_engine, session_factory
from shadowlab.errors import ConfigError
from shadowlab.experiment import LimitSpec
from shadowlab.limits import (
    Permit,
    RateLimiter,
    RetryPolicy,
    backoff_delay,
    call_with_retries,
    should_retry,
)
from shadowlab.limits_grants import aware
from shadowlab.models import WorkerHeartbeat
from shadowlab.providers import ProviderResult
from tests.support.clock import FakeClock


def _clock() -> FakeClock:
    return FakeClock(datetime(2026, 1, 1, tzinfo=UTC), 500.0)


@pytest.fixture
def factory(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    engine = create_engine(f"sqlite:///{tmp_path / 'limits.db'}")
    migrate.upgrade(engine)
    yield session_factory(engine)
    engine.dispose()


def _limiter(factory: sessionmaker[Session], clock: FakeClock, *limits: LimitSpec) -> RateLimiter:
    return RateLimiter(factory, limits, worker_id="w", clock=clock.wall, monotonic=clock.monotonic)


async def _waiting(limiter: RateLimiter, key: str, tokens: tuple[int, int] = (1, 1)) -> asyncio.Task[Permit]:
    """An acquire that has run as far as it can (it waits, or it was admitted)."""
    task = asyncio.create_task(limiter.acquire(key, *tokens))
    for _ in range(5):
        await asyncio.sleep(0)
    return task


def test_requests_per_window_hold_and_calls_count_until_their_head(factory: sessionmaker[Session]) -> None:
    clock = _clock()
    limit = LimitSpec(provider="p", model="m", rpm=3, window_s=10)
    limiter = _limiter(factory, clock, limit)

    async def scenario() -> None:
        admitted = [await limiter.acquire(limit.key, 10, 10) for _ in range(3)]
        fourth = await _waiting(limiter, limit.key)
        assert not fourth.done()
        clock.advance(10.001)
        await limiter.heartbeat()
        assert not fourth.done()  # still in flight: they may reach the provider any moment, so they count
        for permit in admitted[:2]:
            await limiter.release(permit, 0.0, 10, 10)  # their heads came at once: out of the window now
        permit = await fourth
        assert permit.admission is not None
        # The third's head came 9 s after it was sent: it counts until 19 s, so a sixth waits for it.
        await limiter.release(admitted[2], 9.0, 10, 10)
        assert (await limiter.acquire(limit.key, 1, 1)).admission is not None
        sixth = await _waiting(limiter, limit.key)
        assert not sixth.done()
        clock.advance(9.0)
        await limiter.heartbeat()
        assert (await sixth).admission is not None
        assert limiter.admitted(limit.key) == 6

    asyncio.run(scenario())


def test_a_call_counts_from_its_response_head_even_when_it_was_sent_long_after_admission(
    factory: sessionmaker[Session],
) -> None:
    # A provider times TTFB from the moment the request was written to a connection (building it, waiting for
    # a pooled connection and connecting are excluded: `wire_timing`), so admission + TTFB lies before the
    # head whenever the send started late - on a loaded machine by tens to hundreds of ms. Counted there, the
    # call left the window before it had even reached the provider, and one more call got in (the fresh-clone
    # CI run that saw 9 arrivals in a 2 s window at rpm 8).
    clock = _clock()
    limit = LimitSpec(provider="p", model="m", rpm=1, window_s=1)
    limiter = _limiter(factory, clock, limit)
    arrivals: list[float] = []

    async def send() -> ProviderResult:
        clock.advance(0.5)  # admitted, then 0.5 s of client work before the request is written
        arrivals.append(clock.monotonic())  # the provider reads it, answers its head 10 ms later
        clock.advance(0.1)  # the stream ends 100 ms after the write
        return ProviderResult("p", "m", status_code=200, ttfb_ms=10.0, ttlt_ms=100.0)

    async def scenario() -> None:
        policy = RetryPolicy(max_attempts=1)
        await call_with_retries(limiter, limit.key, send, input_tokens=1, output_tokens=1, policy=policy,
                                rng=random.Random(1))  # fmt: skip
        clock.advance(0.5)  # 1.1 s after the first admission, 0.6 s after the first call reached the provider
        await limiter.heartbeat()
        second = await _waiting(limiter, limit.key)
        assert not second.done()  # its head came 0.51 s after admission: it counts until 1.51 s
        clock.advance(0.42)
        await limiter.heartbeat()
        assert (await second).admission is not None
        assert clock.monotonic() - arrivals[0] >= limit.window_s  # at most `rpm` arrivals in any window

    asyncio.run(scenario())


def test_output_tokens_and_concurrency_are_limited(factory: sessionmaker[Session]) -> None:
    clock = _clock()
    tokens = LimitSpec(provider="p", model="t", output_tpm=100, window_s=60)
    both = LimitSpec(provider="p", model="c", concurrency=1)
    limiter = _limiter(factory, clock, tokens, both)

    async def scenario() -> None:
        first = await limiter.acquire(tokens.key, 0, 80)
        too_many = await _waiting(limiter, tokens.key, (0, 30))
        assert not too_many.done()
        await limiter.release(first, 0.0, 0, 50)  # it used 50 of the 80 it may have: 30 more fit now
        assert (await too_many).admission is not None
        held = await limiter.acquire(both.key, 1, 1)
        second = await _waiting(limiter, both.key)
        assert not second.done()
        await limiter.release(held, 0.0, 1, 1)
        assert (await second).admission is not None

    asyncio.run(scenario())


def test_retry_after_pauses_the_key(factory: sessionmaker[Session]) -> None:
    clock = _clock()
    limit = LimitSpec(provider="p", model="m", rpm=100)
    limiter = _limiter(factory, clock, limit)

    async def scenario() -> None:
        await limiter.start()
        await limiter.block(limit.key, 2.5)
        waiting = await _waiting(limiter, limit.key)
        assert not waiting.done()
        clock.advance(2.6)
        await limiter.heartbeat()
        assert (await waiting).admission is not None
        await limiter.close()

    asyncio.run(scenario())


def test_a_key_without_limits_never_waits(factory: sessionmaker[Session]) -> None:
    permit = asyncio.run(RateLimiter(factory, ()).acquire("p/free", 10**9, 10**9))
    assert permit.admission is None


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
    policy = RetryPolicy(max_attempts=3, backoff_base_s=0.5, backoff_max_s=4)
    assert not policy.gives_up(2) and policy.gives_up(3)
    assert RetryPolicy(max_attempts=0).gives_up(10**6) is False  # 0: retry until it works (an outage)
    assert policy.delay(1, rng, retry_after_s=9.0) == 9.0


def test_the_grant_heartbeat_and_timeout_are_settings_checked_against_each_other(
    factory: sessionmaker[Session],
) -> None:
    settings = load_settings(limits_heartbeat_s=2.0, limits_timeout_s=6.0)
    clock = _clock()
    limit = LimitSpec(provider="p", model="m", rpm=10)
    limiter = RateLimiter(
        factory, (limit,), worker_id="w", clock=clock.wall, monotonic=clock.monotonic,
        heartbeat_s=settings.limits_heartbeat_s, timeout_s=settings.limits_timeout_s,
    )  # fmt: skip
    asyncio.run(limiter.heartbeat())
    with factory() as session:
        expires = session.scalars(sa.select(WorkerHeartbeat.expires_at)).one()
    assert aware(expires) == clock.wall() + timedelta(seconds=6.0)  # dead 6 s after its last heartbeat

    fields = Settings.model_fields
    assert (fields["limits_heartbeat_s"].default, fields["limits_timeout_s"].default) == (1.0, 10.0)
    with pytest.raises(ConfigError, match=r"SHADOWLAB_LIMITS_TIMEOUT_S: expected at least 3 x .* found 5"):
        load_settings(limits_heartbeat_s=2.0, limits_timeout_s=5.0)
    with pytest.raises(ConfigError, match="SHADOWLAB_LIMITS_HEARTBEAT_S"):
        load_settings(limits_heartbeat_s=0)
