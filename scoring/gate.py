"""How a judge call goes out: through a limiter (retries, concurrency) and a budget, like replays.

The replayer's shared limiter and budget (`shadowlab.limits` / `shadowlab.budget`) did not exist when this
was written; `JudgeCaller` takes any object with the small `Limiter` / `Budget` protocols below, so the
shared ones plug in with a thin adapter. The defaults here: `RetryLimiter` (bounded concurrency, retries on
retryable errors honouring `retry-after`, exponential backoff with jitter) and `Unlimited` / `SpendCap`.
"""

from __future__ import annotations

import asyncio
import random
import threading
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from shadowlab.normalize import NormalizedRequest
from shadowlab.providers import Provider, ProviderResult
from shadowlab.usage import Usage

__all__ = ["Budget", "CallOutcome", "JudgeCaller", "Limiter", "RetryLimiter", "SpendCap", "Unlimited"]

CostOf = Callable[[str, Usage], float]


class Limiter(Protocol):
    async def call(self, key: str, attempt: Callable[[], Awaitable[ProviderResult]]) -> ProviderResult:
        """Run `attempt` within the limits of `key` (provider/model), retrying what is retryable."""
        ...


class Budget(Protocol):
    def reserve(self, usd: float) -> bool:
        """Hold `usd` of the budget; False when it cannot be covered (nothing is held then)."""
        ...

    def settle(self, reserved: float, spent: float) -> None:
        """Replace a reservation by what the call really cost."""
        ...


class Unlimited:
    def reserve(self, usd: float) -> bool:
        return True

    def settle(self, reserved: float, spent: float) -> None:
        return None


class SpendCap:
    """An in-process budget: reservations and spend never exceed `limit_usd` (one process)."""

    def __init__(self, limit_usd: float, spent_usd: float = 0.0) -> None:
        self.limit_usd = limit_usd
        self.spent_usd = spent_usd
        self._held = 0.0
        self._lock = threading.Lock()

    def reserve(self, usd: float) -> bool:
        with self._lock:
            if self.spent_usd + self._held + usd > self.limit_usd:
                return False
            self._held += usd
            return True

    def settle(self, reserved: float, spent: float) -> None:
        with self._lock:
            self._held -= reserved
            self.spent_usd += spent


class RetryLimiter:
    """Bounded concurrency; retryable results are retried up to `max_attempts` with backoff and jitter."""

    def __init__(
        self,
        concurrency: int = 8,
        max_attempts: int = 4,
        base_delay_s: float = 0.5,
        max_delay_s: float = 30.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._slots = asyncio.Semaphore(concurrency)
        self.max_attempts = max_attempts
        self.base_delay_s = base_delay_s
        self.max_delay_s = max_delay_s
        self._sleep = sleep
        self.attempts = 0

    async def call(self, key: str, attempt: Callable[[], Awaitable[ProviderResult]]) -> ProviderResult:
        for number in range(1, self.max_attempts + 1):
            async with self._slots:
                self.attempts += 1
                result = await attempt()
            if result.ok or not result.retryable or number == self.max_attempts:
                return result
            backoff = min(self.max_delay_s, self.base_delay_s * 2 ** (number - 1))
            wait = result.retry_after_s if result.retry_after_s is not None else backoff
            await self._sleep(min(self.max_delay_s, wait) * random.uniform(1.0, 1.25))
        raise AssertionError("unreachable")  # pragma: no cover


@dataclass(frozen=True)
class CallOutcome:
    """A judge call's result, or why none was made (`budget`)."""

    result: ProviderResult | None
    cost_usd: float = 0.0
    budget_refused: bool = False


class JudgeCaller:
    """One judge model behind a provider, a limiter and a budget; cost from `cost_of(model, usage)`."""

    def __init__(
        self,
        provider: Provider,
        model: str,
        *,
        limiter: Limiter,
        budget: Budget,
        cost_of: CostOf,
        extra_headers: Mapping[str, str] | None = None,
    ) -> None:
        self.provider = provider
        self.model = model
        self.limiter = limiter
        self.budget = budget
        self.cost_of = cost_of
        self.extra_headers = dict(extra_headers or {})

    def worst_case_usd(self, request: NormalizedRequest) -> float:
        """Input estimated at 4 characters per token; output at the request's max tokens."""
        chars = len(request.system or "") + sum(len(m.model_dump_json()) for m in request.messages)
        usage = Usage(input_tokens=chars // 4 + 1, output_tokens=request.max_output_tokens or 1024)
        return self.cost_of(self.model, usage)

    async def __call__(self, request: NormalizedRequest) -> CallOutcome:
        reserved = self.worst_case_usd(request)
        if not self.budget.reserve(reserved):
            return CallOutcome(None, budget_refused=True)
        spent = 0.0
        try:
            result = await self.limiter.call(
                f"{self.provider.name}/{self.model}",
                lambda: self.provider.complete(request, model=self.model, extra_headers=self.extra_headers),
            )
            spent = self.cost_of(self.model, result.usage) if result.usage is not None else 0.0
            return CallOutcome(result, cost_usd=spent)
        finally:
            self.budget.settle(reserved, spent)
