"""Rate limits per provider+model held by all workers together, as per-worker grants (DESIGN §5).

Each worker registers (a heartbeat row) and holds a share of every limited key: RPM, input TPM, output
TPM and concurrency (`limits_grants`: shares recomputed from the live workers, never summing above the
limit). Inside the process a sliding-window log enforces the share with no database round trip per call
(`limits_window`). A `retry-after` pauses the key for every worker: a row, pushed to the others by
LISTEN/NOTIFY on Postgres, read at each heartbeat on SQLite. A dead worker's grant expires with its
heartbeat and its share goes to the living.

Keys without limits never touch the database. The retry policy itself lives in `shadowlab.retry`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from shadowlab.config import LIMITS_HEARTBEAT_S, LIMITS_TIMEOUT_S
from shadowlab.experiment import LimitSpec
from shadowlab.limits_grants import CHANNEL, GrantBook, KeyGrant
from shadowlab.limits_outage import OutageGuard, ProviderGate, is_outage_failure
from shadowlab.limits_window import Admission, KeyWindow, Share
from shadowlab.models import utcnow
from shadowlab.providers import ProviderResult
from shadowlab.retry import RetryPolicy, backoff_delay, should_retry

# fmt: off
__all__ = [
    "Permit", "RateLimiter", "RetryPolicy", "Share", "backoff_delay", "call_with_retries", "should_retry",
]
# fmt: on

log = logging.getLogger("shadowlab.limits")
# Defaults; a process takes SHADOWLAB_LIMITS_HEARTBEAT_S / SHADOWLAB_LIMITS_TIMEOUT_S from its settings.
HEARTBEAT_S = LIMITS_HEARTBEAT_S
GRANT_TIMEOUT_S = LIMITS_TIMEOUT_S  # a worker silent this long is dead: its concurrency goes to the others


@dataclass(frozen=True)
class Permit:
    """Admission of one call; `admission` is None for a key without limits."""

    key: str
    admission: Admission | None
    waited_s: float


class RateLimiter:
    """Admits calls within this worker's grants; starts (registers) on the first call to a limited key."""

    def __init__(
        self,
        factory: sessionmaker[Session],
        limits: tuple[LimitSpec, ...],
        *,
        worker_id: str | None = None,
        kind: str = "replay",
        heartbeat_s: float = HEARTBEAT_S,
        timeout_s: float = GRANT_TIMEOUT_S,
        max_call_s: float | None = None,  # no longer needed: a call counts until its head (kept for callers)
        clock: Callable[[], datetime] = utcnow,
        monotonic: Callable[[], float] = time.monotonic,
        outages: OutageGuard | None = None,  # hears other workers' outage pauses (NOTIFY on Postgres)
    ) -> None:
        self.worker_id = worker_id or f"{os.uname().nodename}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._limits = {limit.key: limit for limit in limits}
        self._book = GrantBook(factory, limits, worker_id=self.worker_id, kind=kind, timeout_s=timeout_s,
                               clock=clock)  # fmt: skip
        self._engine: Engine = factory.kw["bind"]
        self.heartbeat_s, self.timeout_s = heartbeat_s, timeout_s
        self._clock, self._monotonic = clock, monotonic
        self._windows = {key: KeyWindow(limit.window_s, monotonic) for key, limit in self._limits.items()}
        self._admitted = dict.fromkeys(self._limits, 0)
        self._loop: asyncio.AbstractEventLoop | None = None  # the loop it started on (None: not started)
        self._starting: asyncio.Task[None] | None = None  # the start-up in progress
        self._tasks: list[asyncio.Task[None]] = []
        self._wake = asyncio.Event()
        self._closing = False
        self._outages = outages
        self._publishing: set[asyncio.Future[datetime]] = set()
        self._beating: asyncio.Future[None] | None = None  # the heartbeat in progress

    def limit(self, key: str) -> LimitSpec | None:
        return self._limits.get(key)

    def share(self, key: str) -> Share | None:
        """This worker's current share of `key` (None before its first heartbeat or for a free key)."""
        window = self._windows.get(key)
        return window.share if window is not None else None

    def admitted(self, key: str) -> int:
        """Calls this process admitted to `key` so far (retries included)."""
        return self._admitted.get(key, 0)

    async def start(self) -> None:
        """Register, take the first grants, and keep them (heartbeats; NOTIFY listener on Postgres).

        Idempotent. The start-up runs in a task of its own that every caller waits for: a caller cancelled
        meanwhile leaves it to finish, and one that failed (its first beat) leaves the limiter not started,
        so the next call starts it again. Either way no caller finds it started without a heartbeat."""
        loop = asyncio.get_running_loop()
        if self._loop is loop or not (self._limits or self._outages):
            return
        starting = self._starting
        if starting is None or starting.get_loop() is not loop:  # a limiter may serve one loop, then another
            self._starting = starting = loop.create_task(self._start_up(loop))
        await asyncio.shield(starting)

    async def _start_up(self, loop: asyncio.AbstractEventLoop) -> None:
        listener: asyncio.Task[None] | None = None
        try:
            self._wake = asyncio.Event()
            for window in self._windows.values():
                window.changed = asyncio.Event()
            if self._book.postgres:
                # Listening before the first beat: a worker that joins takes no share the others hold, it asks
                # them (NOTIFY) to give part back. Workers started together (`replay --workers N` forks them)
                # that listened only after their first beat missed each other's asks, and one of them then
                # waited a whole heartbeat with no share (0.3-1.6 s at the start of a run).
                listening = loop.create_future()
                listener = asyncio.create_task(self._listen(listening))
                await asyncio.wait([listener, listening], return_when=asyncio.FIRST_COMPLETED)
            if self._limits:
                await self.heartbeat()
            # The heartbeat loop first (close() lets it finish its beat), then the listener.
            self._tasks = [asyncio.create_task(self._keep_alive())] if self._limits else []
            if listener is not None:
                self._tasks.append(listener)
            self._loop = loop
        except BaseException:
            if listener is not None:
                listener.cancel()
            raise
        finally:
            if self._starting is asyncio.current_task():
                self._starting = None

    async def close(self) -> None:
        """Stop heartbeating and give the grants back."""
        starting = self._starting
        if starting is not None and starting.get_loop() is asyncio.get_running_loop():
            await asyncio.wait([starting])  # its first beat ends (else it would come after the goodbye)
        self._closing = True
        self._wake.set()
        for task in self._tasks[1 if self._limits else 0 :]:  # the listener; a heartbeat in hand ends first
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._publishing:
            await asyncio.gather(*self._publishing, return_exceptions=True)
        self._tasks, self._loop, self._closing = [], None, False
        if self._limits:
            uses = {key: window.use() for key, window in self._windows.items()}
            await asyncio.get_running_loop().run_in_executor(None, self._book.leave, uses)

    async def heartbeat(self) -> None:
        """Renew this worker and recompute its shares. Admissions go on meanwhile within the use the beat
        reports (`KeyWindow.begin_beat`): a share is computed from what the window holds, which must not
        grow past that until the new share applies. One beat at a time (the timer's, a NOTIFY's, a
        caller's): the first to end would lift the cap while another's share, computed from the window as
        it was, is still on its way."""
        await self.idle()
        self._beating = beat = asyncio.get_running_loop().create_future()
        started = self._monotonic()
        try:
            uses = {key: window.begin_beat() for key, window in self._windows.items()}
            held = {key: window.share for key, window in self._windows.items()}
            loop = asyncio.get_running_loop()
            grants = await loop.run_in_executor(None, self._book.heartbeat, uses, held)
            for key, grant in grants.items():
                self._apply(key, grant, valid_until=started + self.timeout_s)
        finally:
            for window in self._windows.values():
                window.end_beat()
            self._beating = None
            beat.set_result(None)

    @property
    def beating(self) -> bool:
        """A beat is in progress: admissions stay within its cap until it ends (`KeyWindow.begin_beat`)."""
        return self._beating is not None

    async def idle(self) -> None:
        """Wait until no heartbeat is in progress (the timer's, a NOTIFY's or a caller's)."""
        while self._beating is not None:
            await asyncio.wait([self._beating])  # not cancelled with a waiter that is

    def _apply(self, key: str, grant: KeyGrant, valid_until: float) -> None:
        window = self._windows[key]
        window.set_share(grant.share, valid_until)
        if grant.blocked_until is not None:
            window.pause(self._monotonic() + (grant.blocked_until - self._clock()).total_seconds())

    async def _keep_alive(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.heartbeat_s)
            self._wake.clear()
            if self._closing:
                return
            try:
                await self.heartbeat()
            except Exception as exc:  # the database is away: the grant lapses on its own (self-fencing)
                log.warning("limits heartbeat failed: %s", exc, extra={"worker_id": self.worker_id})

    async def _listen(self, listening: asyncio.Future[None]) -> None:
        """Other workers' grant changes and pauses, as they happen (Postgres LISTEN); `listening` is done once
        the first LISTEN ran or failed."""
        import psycopg

        from shadowlab.pg_async import connect  # psycopg: imported on Postgres only

        while True:
            try:
                async with await connect(self._engine) as conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    if not listening.done():
                        listening.set_result(None)
                    async for note in conn.notifies():
                        self._on_notice(note.payload)
            except psycopg.Error as exc:
                log.warning("limits listener: %s", exc, extra={"worker_id": self.worker_id})
                if not listening.done():
                    listening.set_result(None)
                await asyncio.sleep(self.heartbeat_s)

    def _on_notice(self, payload: str) -> None:
        kind, _, rest = payload.partition(" ")
        key, _, until = rest.partition(" ")
        if kind == "pause" and until and self._outages is not None:
            seconds = (datetime.fromisoformat(until) - self._clock()).total_seconds()
            if self._outages.on_notice(key, seconds):
                return
        window = self._windows.get(key)
        if window is None:
            return
        if kind == "pause" and until:
            ends = datetime.fromisoformat(until)
            window.pause(self._monotonic() + (ends - self._clock()).total_seconds())
        elif kind == "grants" and until != self.worker_id:  # its own change: the beat that made it is enough
            self._wake.set()

    async def acquire(self, key: str, input_tokens: int, output_tokens: int) -> Permit:
        """Wait until this worker's share of `key` admits a call of this many tokens (estimates)."""
        window = self._windows.get(key)
        if window is None:
            return Permit(key, None, 0.0)
        await self.start()
        started = self._monotonic()
        while True:
            got = window.try_admit(input_tokens, output_tokens)
            if isinstance(got, Admission):
                self._admitted[key] += 1
                return Permit(key, got, self._monotonic() - started)
            changed = window.changed
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), None if math.isinf(got) else got)

    def held_s(self, permit: Permit) -> float:
        """Seconds since `permit` was admitted (0 for a key without limits)."""
        return 0.0 if permit.admission is None else self._monotonic() - permit.admission.sent_at

    async def release(
        self, permit: Permit, head_s: float | None, input_tokens: int | None, output_tokens: int | None
    ) -> None:
        """The call ended. It counts in the window as sent at its response head, `head_s` after admission
        (the latest moment it can have reached the provider; None: now), with its real token counts."""
        if permit.admission is None:
            return
        admission = permit.admission
        head_at = self._monotonic() if head_s is None else admission.sent_at + head_s
        self._windows[permit.key].release(
            admission, head_at,
            admission.input_tokens if input_tokens is None else input_tokens,
            admission.output_tokens if output_tokens is None else output_tokens,
        )  # fmt: skip

    def pause_everywhere(self, key: str, seconds: float) -> None:
        """Pause `key` (an outage key: `limits_outage.outage_key`) for every worker, in the background."""

        def done(future: asyncio.Future[datetime]) -> None:
            self._publishing.discard(future)
            if not future.cancelled() and future.exception() is not None:
                log.warning("pause of %s not published: %s", key, future.exception(),
                            extra={"worker_id": self.worker_id})  # fmt: skip

        future = asyncio.get_running_loop().run_in_executor(None, self._book.pause, key, seconds)
        self._publishing.add(future)
        future.add_done_callback(done)

    async def block(self, key: str, seconds: float) -> None:
        """Honour `retry-after`: nobody sends to `key` for `seconds` from now (this worker at once)."""
        window = self._windows.get(key)
        if window is None or seconds <= 0:
            return
        window.pause(self._monotonic() + seconds)
        until = await asyncio.get_running_loop().run_in_executor(None, self._book.pause, key, seconds)
        window.pause(self._monotonic() + (until - self._clock()).total_seconds())


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
    gate: ProviderGate | None = None,
) -> tuple[ProviderResult, int]:
    """Send through the limiter of `key`, retrying what `should_retry` allows; (last result, attempts sent).

    Every attempt is admitted and released on its own, so retries count against the limits; a
    `retry-after` pauses the key for every worker before the backoff. With the provider's `gate`
    (`limits_outage`), attempts wait while the provider is down, and those that failed because it was down
    are sent again without counting against `policy`."""
    sent = counted = 0
    caller = object()  # this call, for the outage rule's count of distinct calls
    while True:
        probe = await gate.admit() if gate is not None else False
        result = await _attempt(limiter, key, send, input_tokens, output_tokens, on_admit, gate, probe)
        sent += 1
        if gate is not None and gate.observe(caller, result, probe=probe):
            if on_retry is not None:
                on_retry(result)
            continue  # the provider is down: not this call's failure; `admit` waits for it
        counted += 1
        if not should_retry(result):
            return result, sent
        undecided = gate is not None and is_outage_failure(result) and gate.undecided()
        if policy.gives_up(counted) and not undecided:
            return result, sent
        if on_retry is not None:
            on_retry(result)
        if result.retry_after_s:
            await limiter.block(key, result.retry_after_s)
        await sleep(policy.delay(counted, rng, result.retry_after_s))


async def _attempt(
    limiter: RateLimiter,
    key: str,
    send: Callable[[], Awaitable[ProviderResult]],
    input_tokens: int,
    output_tokens: int,
    on_admit: Callable[[Permit], None] | None,
    gate: ProviderGate | None,
    probe: bool,
) -> ProviderResult:
    """One attempt, admitted by the limiter and released at its end."""
    permit: Permit | None = None
    result: ProviderResult | None = None
    try:
        permit = await limiter.acquire(key, input_tokens, output_tokens)
        if on_admit is not None:
            on_admit(permit)
        result = await send()
        return result
    finally:
        if result is None and gate is not None:
            gate.abandon(probe)
        if permit is not None:
            usage = result.usage if result is not None else None
            # The latest moment the call can have reached the provider: its response head, else its end (now).
            # The head is placed back from the end, not forward from admission: TTFB counts from the request's
            # write, which comes after admission by the client's own work (building it, a pooled connection,
            # a connect; hundreds of ms on a busy loop), so admission + TTFB can lie before the call arrived.
            head_s = None
            if result is not None and result.ttfb_ms is not None and result.ttlt_ms is not None:
                head_s = limiter.held_s(permit) - (result.ttlt_ms - result.ttfb_ms) / 1000
            await limiter.release(
                permit,
                head_s,
                usage.total_input_tokens if usage else None,
                usage.output_tokens if usage else None,
            )
