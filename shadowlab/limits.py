"""Rate limits per provider+model held by all workers together, and the retry policy (DESIGN §5).

The choice: a sliding-window log in the database. Each admitted call is a `rate_limit_events` row. An
admission runs in one transaction holding the `rate_limit_keys` row of its key (`SELECT … FOR UPDATE` on
Postgres, `BEGIN IMMEDIATE` on SQLite), counts the window with indexed aggregates, and inserts its row only
if requests, input tokens, output tokens and calls in flight all stay within the limits. A log is exact for
"any window of `window_s`" (a token bucket allows bursts of 2× at window edges) and needs no worker
registry; the row lock serialises admissions of one key, a few ms each, far above any provider's RPM.

A provider counts a call when it *arrives*, which can be well after admission (a first connection, a busy
event loop). So a call counts in every window from its admission until its response head: while in flight
it counts whatever its `sent_at`, and when it ends `sent_at` becomes the time of its head (the latest moment
it can have arrived). That makes the bound hold on arrivals, not only on admissions. `retry-after` sets
`blocked_until` on the key, honoured by every worker.
Keys without limits never touch the database.

Clock: the workers' wall clocks (UTC); hosts running workers are expected to be NTP-synchronised.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from shadowlab.db import session_scope
from shadowlab.experiment import LimitSpec
from shadowlab.models import RateLimitEvent, RateLimitKey, utcnow
from shadowlab.providers import ProviderResult

__all__ = ["Permit", "RateLimiter", "RetryPolicy", "backoff_delay", "call_with_retries", "should_retry"]

_RETRY_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504, 529})
_POLL_S = 0.02  # shortest wait before asking again (calls in flight, token windows)
_GC_EVERY = 200


def should_retry(result: ProviderResult) -> bool:
    """Retry 408/409/429/5xx/529, connection errors, stalls and mid-stream errors; never a 4xx refusal."""
    if result.ok:
        return False
    return result.retryable or (result.status_code in _RETRY_STATUS)


def backoff_delay(
    attempt: int, base_s: float, max_s: float, retry_after_s: float | None, rng: random.Random
) -> float:
    """Full-jitter exponential backoff after `attempt` failures, never shorter than `retry-after`."""
    jittered = rng.uniform(0, min(max_s, base_s * 2 ** max(attempt - 1, 0)))
    return max(jittered, retry_after_s or 0.0)


@dataclass(frozen=True)
class Permit:
    """Admission of one call; `event_id` is None for a key without limits."""

    key: str
    event_id: int | None
    waited_s: float
    admitted_at: datetime | None = None


class RateLimiter:
    """Admits calls under the shared limits; `acquire` waits (asyncio) until a call may be sent."""

    def __init__(
        self,
        factory: sessionmaker[Session],
        limits: tuple[LimitSpec, ...],
        *,
        max_call_s: float = 600.0,
        clock: Callable[[], datetime] = utcnow,
        rng: random.Random | None = None,
    ) -> None:
        self._factory = factory
        self._limits = {limit.key: limit for limit in limits}
        self._max_call_s = max_call_s
        self._clock = clock
        self._rng = rng or random.Random()
        self._admitted = 0
        dialect = factory.kw["bind"].dialect.name
        self._insert = postgresql.insert if dialect == "postgresql" else sqlite.insert

    def limit(self, key: str) -> LimitSpec | None:
        return self._limits.get(key)

    async def acquire(self, key: str, input_tokens: int, output_tokens: int) -> Permit:
        """Wait until `key` admits a call of this many tokens (estimates; `release` corrects them)."""
        limit = self._limits.get(key)
        if limit is None:
            return Permit(key, None, 0.0)
        started = time.monotonic()
        loop = asyncio.get_running_loop()
        while True:
            event_id, wait_s, admitted = await loop.run_in_executor(
                None, self.try_acquire, limit, input_tokens, output_tokens
            )
            if event_id is not None:
                return Permit(key, event_id, time.monotonic() - started, admitted)
            await asyncio.sleep(wait_s + self._rng.uniform(0, _POLL_S))

    def try_acquire(
        self, limit: LimitSpec, input_tokens: int, output_tokens: int
    ) -> tuple[int | None, float, datetime]:
        """One admission attempt: (event id, 0, now) when admitted, else (None, seconds to wait, now)."""
        with session_scope(self._factory) as session:
            session.execute(self._insert(RateLimitKey).values(key=limit.key).on_conflict_do_nothing())
            blocked = session.execute(
                sa.select(RateLimitKey.blocked_until).where(RateLimitKey.key == limit.key).with_for_update()
            ).scalar_one()
            now = self._clock()
            if blocked is not None and _aware(blocked) > now:
                return None, (_aware(blocked) - now).total_seconds(), now
            wait = self._wait_for_window(session, limit, now, input_tokens, output_tokens)
            if wait > 0:
                return None, wait, now
            event = RateLimitEvent(
                key=limit.key,
                sent_at=now,
                input_tokens=input_tokens,
                output_tokens=output_tokens,
                inflight_until=now + timedelta(seconds=self._max_call_s),
            )
            session.add(event)
            self._admitted += 1
            if self._admitted % _GC_EVERY == 0:
                self._forget_old(session, limit.key, now)
            session.flush()
            return event.id, 0.0, now

    def _wait_for_window(
        self, session: Session, limit: LimitSpec, now: datetime, input_tokens: int, output_tokens: int
    ) -> float:
        ev = RateLimitEvent
        start = now - timedelta(seconds=limit.window_s)
        in_window = sa.and_(ev.key == limit.key, ev.sent_at > start)
        # Calls still waiting for their head may arrive any moment: they count whatever their admission time.
        older_inflight = sa.and_(
            ev.key == limit.key,
            ev.sent_at <= start,
            ev.sent_at > now - timedelta(seconds=self._max_call_s),
            ev.inflight_until > now,
        )
        totals = [
            session.execute(
                sa.select(
                    sa.func.count(),
                    sa.func.coalesce(sa.func.sum(ev.input_tokens), 0),
                    sa.func.coalesce(sa.func.sum(ev.output_tokens), 0),
                    sa.func.count().filter(ev.inflight_until > now),
                ).where(where)
            ).one()
            for where in (in_window, older_inflight)
        ]
        count, sum_in, sum_out, inflight = (a + b for a, b in zip(*totals, strict=True))
        if limit.concurrency is not None and inflight >= limit.concurrency:
            return _POLL_S
        over = (
            (limit.rpm is not None and count + 1 > limit.rpm)
            or (limit.input_tpm is not None and count and sum_in + input_tokens > limit.input_tpm)
            or (limit.output_tpm is not None and count and sum_out + output_tokens > limit.output_tpm)
        )
        if not over:
            return 0.0
        # Wait until enough of the window's oldest calls have left it for one more (exact for RPM).
        skip = max(count - limit.rpm, 0) if limit.rpm is not None and count + 1 > limit.rpm else 0
        oldest = session.execute(
            sa.select(ev.sent_at).where(in_window).order_by(ev.sent_at).offset(skip).limit(1)
        ).scalar_one_or_none()
        if oldest is None:
            return _POLL_S
        return max((_aware(oldest) + timedelta(seconds=limit.window_s) - now).total_seconds(), _POLL_S)

    def _forget_old(self, session: Session, key: str, now: datetime) -> None:
        longest = max(self._max_call_s, *(lim.window_s for lim in self._limits.values()))
        session.execute(
            sa.delete(RateLimitEvent).where(
                RateLimitEvent.key == key, RateLimitEvent.sent_at < now - timedelta(seconds=2 * longest)
            )
        )

    async def release(
        self, permit: Permit, arrived_by: datetime, input_tokens: int | None, output_tokens: int | None
    ) -> None:
        """The call ended: no longer in flight; it counts in the window as sent at `arrived_by` (its response
        head, the latest moment it can have reached the provider), with the real token counts when known."""
        if permit.event_id is None:
            return
        if permit.admitted_at is not None:
            arrived_by = max(arrived_by, permit.admitted_at)
        await asyncio.get_running_loop().run_in_executor(
            None, self._release, permit.event_id, arrived_by, input_tokens, output_tokens
        )

    def _release(
        self, event_id: int, arrived_by: datetime, input_tokens: int | None, output_tokens: int | None
    ) -> None:
        values: dict[str, object] = {"inflight_until": None, "sent_at": arrived_by}
        if input_tokens is not None:
            values["input_tokens"] = input_tokens
        if output_tokens is not None:
            values["output_tokens"] = output_tokens
        with session_scope(self._factory) as session:
            session.execute(sa.update(RateLimitEvent).where(RateLimitEvent.id == event_id).values(**values))

    async def block(self, key: str, seconds: float) -> None:
        """Honour `retry-after`: nobody sends to `key` for `seconds` from now."""
        if key not in self._limits or seconds <= 0:
            return
        await asyncio.get_running_loop().run_in_executor(None, self._block, key, seconds)

    def _block(self, key: str, seconds: float) -> None:
        with session_scope(self._factory) as session:
            session.execute(self._insert(RateLimitKey).values(key=key).on_conflict_do_nothing())
            current = session.execute(
                sa.select(RateLimitKey.blocked_until).where(RateLimitKey.key == key).with_for_update()
            ).scalar_one()
            until = self._clock() + timedelta(seconds=seconds)
            if current is None or _aware(current) < until:
                session.execute(
                    sa.update(RateLimitKey).where(RateLimitKey.key == key).values(blocked_until=until)
                )


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a call is retried (the experiment's `replay` settings)."""

    max_attempts: int = 6
    backoff_base_s: float = 0.5
    backoff_max_s: float = 30.0


async def call_with_retries(
    limiter: RateLimiter,
    key: str,
    send: Callable[[], Awaitable[ProviderResult]],
    *,
    input_tokens: int,
    output_tokens: int,
    policy: RetryPolicy,
    rng: random.Random,
    on_admit: Callable[[Permit], None] | None = None,
    on_retry: Callable[[ProviderResult], None] | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> tuple[ProviderResult, int]:
    """Send through the limiter of `key`, retrying what `should_retry` allows; (last result, attempts).

    Every attempt is admitted and released on its own, so retries count against the limits; a
    `retry-after` pauses the key for every worker before the backoff."""
    attempt = 0
    while True:
        attempt += 1
        permit = await limiter.acquire(key, input_tokens, output_tokens)
        if on_admit is not None:
            on_admit(permit)
        sent = utcnow()
        result: ProviderResult | None = None
        try:
            result = await send()
        finally:
            usage = result.usage if result is not None else None
            # The latest moment the call can have reached the provider: its response head, else its end.
            ttfb = result.ttfb_ms if result is not None else None
            arrived_by = sent + timedelta(milliseconds=ttfb) if ttfb is not None else utcnow()
            await limiter.release(
                permit, arrived_by,
                usage.total_input_tokens if usage else None, usage.output_tokens if usage else None,
            )  # fmt: skip
        if not should_retry(result) or attempt >= policy.max_attempts:
            return result, attempt
        if on_retry is not None:
            on_retry(result)
        if result.retry_after_s:
            await limiter.block(key, result.retry_after_s)
        await sleep(
            backoff_delay(attempt, policy.backoff_base_s, policy.backoff_max_s, result.retry_after_s, rng)
        )


def _aware(value: datetime) -> datetime:
    """SQLite returns naive datetimes; everything stored here is UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=utcnow().tzinfo)
