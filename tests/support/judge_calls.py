"""In-process stand-ins for the judge-call limiter and budget of `scoring.judge_calls` (one process only).

They follow production's rules (`shadowlab.limits.should_retry`, `backoff_delay`) without a database, so a
scoring test exercises the same retries `shadowlab score` does."""

from __future__ import annotations

import asyncio
import random
import threading
from collections.abc import Awaitable, Callable

from scoring.judge_calls import Hold
from shadowlab.limits import backoff_delay, should_retry
from shadowlab.providers import ProviderResult

Attempt = Callable[[], Awaitable[ProviderResult]]


class Unlimited:
    """A budget that admits everything."""

    async def reserve(self, usd: float, *, model: str) -> Hold | None:
        return Hold(usd)

    async def settle(self, hold: Hold, spent: float) -> None:
        return None


class SpendCap:
    """A budget whose reservations and spend never exceed `limit_usd`."""

    def __init__(self, limit_usd: float, spent_usd: float = 0.0) -> None:
        self.limit_usd = limit_usd
        self.spent_usd = spent_usd
        self._held = 0.0
        self._lock = threading.Lock()

    async def reserve(self, usd: float, *, model: str) -> Hold | None:
        with self._lock:
            if self.spent_usd + self._held + usd > self.limit_usd:
                return None
            self._held += usd
            return Hold(usd)

    async def settle(self, hold: Hold, spent: float) -> None:
        with self._lock:
            self._held -= hold.usd
            self.spent_usd += spent


class RetryLimiter:
    """Bounded concurrency and production's retry rules; `attempts` counts every call sent."""

    def __init__(
        self,
        concurrency: int = 8,
        max_attempts: int = 4,
        base_delay_s: float = 0.5,
        max_delay_s: float = 30.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self._slots = asyncio.Semaphore(concurrency)
        self.max_attempts = max_attempts
        self.base_delay_s = base_delay_s
        self.max_delay_s = max_delay_s
        self._sleep = sleep
        self._rng = rng or random.Random(0)
        self.attempts = 0

    async def call(
        self, key: str, attempt: Attempt, *, input_tokens: int = 0, output_tokens: int = 0
    ) -> ProviderResult:
        number = 0
        while True:
            number += 1
            async with self._slots:
                self.attempts += 1
                result = await attempt()
            if not should_retry(result) or number >= self.max_attempts:
                return result
            await self._sleep(
                backoff_delay(number, self.base_delay_s, self.max_delay_s, result.retry_after_s, self._rng)
            )
