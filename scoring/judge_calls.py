"""How a judge call goes out: through a limiter (limits, retries) and a budget, like replays.

`shadowlab score` uses the shared ones: `SharedLimiter` (the experiment's `limits` for the judge's
provider+model, held by every replayer and scorer process together, via `shadowlab.limits`) and
`SharedBudget` (each call's worst case reserved in the experiment budget before it is sent, settled to its
real cost after, one `judge_calls` row each, via `shadowlab.budget`). Tests use in-process stand-ins with
the same retry rules (`tests/support/judge_calls.py`).

What a call is for (replay, or request + candidate + order) travels in the context variable `judging`,
set by the runner for each item, so a judge's own code needs no database ids; the place the call takes among
the calls in flight travels in `call_slot`, set by `scoring.drive` for each item: a call holds its budget
before it waits for a place, so the items the drive starts together reserve together, in one transaction.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol

from sqlalchemy.orm import Session, sessionmaker

from shadowlab.apis.internal import NormalizedRequest
from shadowlab.budget import ReserveOutcome
from shadowlab.budget_judges import (
    JudgeHold,
    JudgeRef,
    reserve_judges_alone_statement,
    reserved_alone,
    settle_and_reserve_judges,
)
from shadowlab.db import session_scope
from shadowlab.limits import Permit, RateLimiter, RetryPolicy, call_with_retries
from shadowlab.models import utcnow
from shadowlab.pg_async import AsyncStatements
from shadowlab.providers import Provider, ProviderResult
from shadowlab.usage import Usage, estimate_input_tokens

# fmt: off
__all__ = [
    "Budget", "CallOutcome", "CallSlot", "Hold", "JudgeCaller", "Limiter", "NotSent", "SharedBudget",
    "SharedLimiter", "call_slot", "judging",
]
# fmt: on

CostOf = Callable[[str, Usage], float]
Attempt = Callable[[], Awaitable[ProviderResult]]
judging: ContextVar[JudgeRef | None] = ContextVar("judging", default=None)
_Reserved = tuple[ReserveOutcome, int | None]


class NotSent(Exception):
    """The call was not sent: the run is stopping (its hold is settled at zero; the item is handed back)."""


class CallSlot:
    """One item's place among the calls in flight (at most `concurrency`): taken just before its judge call
    is sent, given back by the drive once the item's result is durable, so calls in flight and results not
    yet written stay within `concurrency` (what a killed scorer can have judged for nothing)."""

    def __init__(
        self,
        places: asyncio.Semaphore,
        stop: asyncio.Event | None = None,
        on_taken: Callable[[], None] | None = None,
    ) -> None:
        self._places = places
        self._stop = stop
        self._on_taken = on_taken
        self.taken = False
        self.was_taken = False

    async def take(self) -> None:
        """Wait for a place; `NotSent` when the run stops meanwhile."""
        if self.taken:
            return
        await self._places.acquire()
        if not self.was_taken and self._on_taken is not None:
            self._on_taken()
        self.was_taken = True
        if self._stop is not None and self._stop.is_set():
            self._places.release()
            raise NotSent
        self.taken = True

    def give_back(self) -> None:
        if self.taken:
            self.taken = False
            self._places.release()


call_slot: ContextVar[CallSlot | None] = ContextVar("call_slot", default=None)


class Limiter(Protocol):
    async def call(
        self, key: str, attempt: Attempt, *, input_tokens: int = 0, output_tokens: int = 0
    ) -> ProviderResult:
        """Run `attempt` within the limits of `key` (provider/model), retrying what is retryable."""
        ...


@dataclass(frozen=True)
class Hold:
    """Money held for one call; `call_id` is its `judge_calls` row in the shared budget."""

    usd: float
    call_id: int | None = None


class Budget(Protocol):
    async def reserve(self, usd: float, *, model: str) -> Hold | None:
        """Hold `usd` of the budget for one call (for `judging.get()`); None when it cannot be covered."""
        ...

    async def settle(self, hold: Hold, spent: float) -> None:
        """Replace a hold by what the call really cost."""
        ...


class SharedBudget:
    """The experiment budget in the database, shared with the replayer (`shadowlab.budget`).

    Calls are reserved in batches by group commit: whatever reservations arrive while one transaction runs go
    together in the next (on Postgres one statement with the settlements, in autocommit, when all of the batch
    fits: `budget_judges.reserve_judges_alone`), so the ledger row sees one transaction per batch (the drive's
    wave) instead of one per call. A reservation waits
    for its transaction; a settlement does not start one: it rides with the next batch of reservations (the
    next wave's), or `close()`, so the ledger row sees no other transaction of this process; a process killed
    before that leaves the call at its worst case, as a dead scorer's unsettled call always counts.

    When the call does not fit while other work is in flight, it waits (`poll_s`) for settlements, at most
    `max_wait_s` (a dead replayer's reservation settles only when its lease is recovered), then refuses."""

    def __init__(
        self,
        factory: sessionmaker[Session],
        experiment_id: int,
        *,
        call_deadline_s: float,
        poll_s: float = 0.2,
        max_wait_s: float = 60.0,
    ) -> None:
        self.factory = factory
        self.experiment_id = experiment_id
        self.call_deadline_s = call_deadline_s
        self.poll_s = poll_s
        self.max_wait_s = max_wait_s
        self.transactions = 0  # how many batches went to the database (for tests and benchmarks)
        self._holds: list[tuple[JudgeHold, asyncio.Future[_Reserved]]] = []
        self._settles: dict[int, float] = {}
        self._flushing: asyncio.Task[None] | None = None
        # Postgres: its usual batch is one statement on the event loop (`shadowlab.pg_async`).
        bind = factory.kw["bind"]
        self._aio = AsyncStatements(bind) if bind.dialect.name == "postgresql" else None

    async def reserve(self, usd: float, *, model: str) -> Hold | None:
        ref = judging.get() or JudgeRef(self.experiment_id, "", "")
        give_up = time.monotonic() + self.max_wait_s
        while True:
            deadline = utcnow() + timedelta(seconds=self.call_deadline_s)
            reserved = asyncio.get_running_loop().create_future()
            self._holds.append((JudgeHold(ref, model, usd, deadline), reserved))
            self._flush_soon()
            outcome, call_id = await reserved
            if call_id is not None:
                return Hold(usd, call_id)
            if outcome == "exhausted" or time.monotonic() >= give_up:
                return None
            await asyncio.sleep(self.poll_s * random.uniform(0.5, 1.5))

    async def settle(self, hold: Hold, spent: float) -> None:
        if hold.call_id is not None:
            self._settles[hold.call_id] = spent

    async def close(self) -> None:
        """Make every settlement so far durable (the end of a run); close the event loop's connection."""
        try:
            if self._flushing is not None:
                await asyncio.shield(self._flushing)
            if self._settles:
                self._flushing = asyncio.get_running_loop().create_task(self._flush_all(settling=True))
                await asyncio.shield(self._flushing)
        finally:
            if self._aio is not None:
                await self._aio.aclose()

    def _flush_soon(self) -> None:
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.get_running_loop().create_task(self._flush_all())

    async def _flush_all(self, *, settling: bool = False) -> None:
        """Transactions until no reservation waits (`settling`: nor settlement); a failed one fails its
        reservations and keeps its settlements for the next."""
        while self._holds or (settling and self._settles):
            holds, settles = self._holds, self._settles
            self._holds, self._settles = [], {}
            try:
                outcomes = await self._flush_one([h for h, _ in holds], settles)
            except Exception as exc:  # the database is unreachable: callers see it, settlements wait
                self._settles = settles | self._settles
                for _, reserved in holds:
                    reserved.set_exception(exc)
                return
            for (_, reserved), outcome in zip(holds, outcomes, strict=True):
                reserved.set_result(outcome)

    async def _flush_one(self, holds: list[JudgeHold], settles: dict[int, float]) -> list[_Reserved]:
        """One batch: on Postgres the usual one (all of it fits) is one statement on the event loop; the rest
        (SQLite, a batch that does not fit, settlements alone) is a transaction on an executor thread."""
        self.transactions += 1
        if self._aio is not None and holds:
            statement = reserve_judges_alone_statement(self.experiment_id, settles, holds)
            ids = reserved_alone(await self._aio.rows("budget", *statement))
            if ids:
                return [("reserved", call_id) for call_id in ids]
        return await asyncio.get_running_loop().run_in_executor(None, self._flush, holds, settles)

    def _flush(self, holds: list[JudgeHold], settles: dict[int, float]) -> list[_Reserved]:
        with session_scope(self.factory) as session:
            # Settlements first: what they give back may let this batch's reservations fit. No row lock: the
            # ledger's conditional update alone keeps replays and judging within the budget.
            ids, rest = settle_and_reserve_judges(session, self.experiment_id, settles, holds)
        reserved: list[_Reserved] = [("reserved", call_id) for call_id in ids]
        return reserved + [(rest, None)] * (len(holds) - len(ids))


class SharedLimiter:
    """The replayer's limiter and retry policy (`shadowlab.limits`): limits hold across all processes."""

    def __init__(
        self,
        limiter: RateLimiter,
        policy: RetryPolicy,
        *,
        rng: random.Random | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.limiter = limiter
        self.policy = policy
        self.rng = rng or random.Random()
        self._sleep = sleep
        self.attempts = 0
        self.on_wait: Callable[[float], None] | None = None  # seconds each attempt waited for admission

    def _admitted(self, permit: Permit) -> None:
        if self.on_wait is not None:
            self.on_wait(permit.waited_s)

    async def call(
        self, key: str, attempt: Attempt, *, input_tokens: int = 0, output_tokens: int = 0
    ) -> ProviderResult:
        result, attempts = await call_with_retries(
            self.limiter, key, attempt, input_tokens=input_tokens, output_tokens=output_tokens,
            policy=self.policy, rng=self.rng, sleep=self._sleep, on_admit=self._admitted,
        )  # fmt: skip
        self.attempts += attempts
        return result


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
        limit_key: str | None = None,
    ) -> None:
        self.provider = provider
        self.model = model
        self.limiter = limiter
        self.budget = budget
        self.cost_of = cost_of
        self.extra_headers = dict(extra_headers or {})
        self.limit_key = limit_key or f"{provider.name}/{model}"

    @staticmethod
    def input_estimate(request: NormalizedRequest) -> int:
        """The upper estimate of the input tokens (the one budgets and limits use), from the prompt parts."""
        return estimate_input_tokens(request.system, *request.messages, *request.tools)

    def worst_case_usd(self, request: NormalizedRequest, input_tokens: int | None = None) -> float:
        """Input at the upper estimate (`input_tokens`, when computed already); output at the request's max
        tokens."""
        tokens = self.input_estimate(request) if input_tokens is None else input_tokens
        return self.cost_of(
            self.model, Usage(input_tokens=tokens, output_tokens=request.max_output_tokens or 1024)
        )

    async def __call__(self, request: NormalizedRequest) -> CallOutcome:
        input_tokens = self.input_estimate(request)
        reserved = self.worst_case_usd(request, input_tokens)
        hold = await self.budget.reserve(reserved, model=self.model)
        if hold is None:
            return CallOutcome(None, budget_refused=True)
        slot = call_slot.get()
        if slot is not None:
            try:
                await slot.take()
            except (NotSent, asyncio.CancelledError):  # never sent: nothing spent
                await self.budget.settle(hold, 0.0)
                raise
        spent = reserved  # an exception leaves the outcome unknown: it counts at its worst case
        try:
            result = await self.limiter.call(
                self.limit_key,
                lambda: self.provider.complete(request, model=self.model, extra_headers=self.extra_headers),
                input_tokens=input_tokens,
                output_tokens=request.max_output_tokens or 1024,
            )
            spent = self.cost_of(self.model, result.usage) if result.usage is not None else 0.0
            return CallOutcome(result, cost_usd=spent)
        finally:
            await self.budget.settle(hold, spent)
