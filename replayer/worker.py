"""One replayer worker: an asyncio loop leasing requests and replaying every arm of each concurrently.

A stop (SIGTERM/SIGINT, a provider down past `replay.outage.max_s`) does not wait for work that may never
come (`replayer.stopping`), and the requests leased ahead are not started. What is not finished is given back
(`writes.give_back`): a request with no arm replayed loses its lease and reservation (any worker claims it
afresh), one with some arms replayed keeps their rows and its reservation and its lease expires (the next
claim takes it over and replays only the missing arms). A paused or exhausted experiment still drains.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import signal
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy.orm import Session, sessionmaker

from replayer import leases, writes
from replayer.arms import ArmRuntime, PreparedCall, prepare_call
from replayer.claim_loop import claim_on_loop
from replayer.metrics import WorkerMetrics
from replayer.rows import replay_row
from replayer.stopping import ArmTracker, Stopped
from shadowlab import store
from shadowlab.budget import worst_case_usd
from shadowlab.config import Settings
from shadowlab.experiment import ExperimentSpec
from shadowlab.headers import CAPTURE_ID_HEADER
from shadowlab.limits import RateLimiter, RetryPolicy, call_with_retries
from shadowlab.limits_outage import OutageGuard, ProviderOutageError, outage_key
from shadowlab.models import utcnow
from shadowlab.pg_async import AsyncStatements, is_postgres
from shadowlab.pricing import PriceTable
from shadowlab.providers import Provider, ProviderResult, config_from_settings, create_provider

__all__ = ["Mode", "WorkerConfig", "run_worker"]

log = logging.getLogger("replayer")
Mode = Literal["backfill", "live"]
_CLAIM_BATCH = 64  # most leases one claim takes (a claim and a write cost CPU per batch, mostly)
_RESCAN_S = 30.0  # live mode: how often a claim reads the whole selection again (captures stored late)
_RECOVER_PER_LEASE = 4  # looks for expired leases per lease_s, besides every claim that finds nothing new
_GATHER_S = 0.5  # how long a write of finished requests waits for a batch's worth (it goes once it has one)
Prepared = tuple[PreparedCall | ValueError, ...]  # each arm's call, or why the capture does not fit its API


@dataclass(frozen=True)
class WorkerConfig:
    experiment: str
    worker_id: str
    mode: Mode
    concurrency: int = 64  # requests in flight in this process (each with all its arms)
    poll_s: float = 0.2


class Worker:
    def __init__(
        self,
        factory: sessionmaker[Session],
        settings: Settings,
        config: WorkerConfig,
        metrics: WorkerMetrics,
    ) -> None:
        self.factory, self.config, self.metrics = factory, config, metrics
        with factory() as session:
            experiment = store.experiments.by_name(config.experiment, session=session)
            self.experiment_id = experiment.id
            self.spec: ExperimentSpec = store.experiments.spec_of(experiment)
            self.prices = PriceTable.from_json(experiment.price_snapshot, "experiment price snapshot")
            self.arms = tuple(ArmRuntime.of(arm) for arm in experiment.arms)
        rs = self.spec.replay
        self._settings = settings
        self.providers: dict[str, Provider] = {}  # made at the start of `run` (`_create_providers`)
        # A provider that answers nothing pauses (for every worker) instead of failing the arm.
        self.outages = OutageGuard(
            rs.outage,
            publish=lambda provider, seconds: self.limiter.pause_everywhere(outage_key(provider), seconds),
            on_change=lambda provider, down: metrics.provider_paused.labels(provider=provider).set(int(down)),
        )
        # One grant holder per experiment: a process serving several (`replay --all`) holds a share for each.
        self.limiter = RateLimiter(
            factory, self.spec.limits, worker_id=f"{config.worker_id}#{self.experiment_id}",
            outages=self.outages, heartbeat_s=settings.limits_heartbeat_s,
            timeout_s=settings.limits_timeout_s,
        )  # fmt: skip
        self.policy = RetryPolicy(rs.max_attempts, rs.backoff_base_s, rs.backoff_max_s)
        self.rng, self.held, self.stopping = random.Random(), set[int](), asyncio.Event()
        self._slots = asyncio.Semaphore(config.concurrency)  # requests replaying at once
        self._batch = min(config.concurrency, _CLAIM_BATCH)  # requests per claim and per write
        self.cursor: leases.Cursor | None = None
        self._rescanned = -_RESCAN_S
        self._recovered = -math.inf  # when a claim last looked for expired leases (monotonic)
        self._prepared: dict[int, Prepared] = {}  # by captured request: each body is normalised once
        self._finished: list[writes.Finished] = []
        self._flushed, self._full = asyncio.Event(), asyncio.Event()  # a request finished; a batch's worth
        self._closing = False
        bind = factory.kw["bind"]  # Postgres: a write goes on the loop (`writes.complete_on_loop`)
        self._aio = AsyncStatements(bind) if is_postgres(bind) else None
        self.failure: ProviderOutageError | None = None  # a provider down too long: the run stops
        self._arms = ArmTracker(self.stopping)
        self._unstarted: list[leases.Lease] = []  # not finished on a stop, no arm replayed: given back
        self._part_done: list[writes.Finished] = []  # not finished on a stop, some arms replayed

    def prepare(self, captured_request_id: int, api: str, body: dict[str, Any]) -> Prepared:
        """Every arm's call for one capture, built once (for the budget at claim, then for the replay)."""
        prepared = self._prepared.get(captured_request_id)
        if prepared is None:
            calls: list[PreparedCall | ValueError] = []
            for arm in self.arms:
                try:
                    calls.append(prepare_call(arm, api, body))
                except ValueError as exc:  # a stored body that no longer fits its API: recorded, not dropped
                    calls.append(exc)
            prepared = self._prepared[captured_request_id] = tuple(calls)
        return prepared

    def worst_case(self, captured_request_id: int, api: str, body: dict[str, Any]) -> float:
        prepared = self.prepare(captured_request_id, api, body)
        calls = [call.arm_call(arm.model) for arm, call in zip(self.arms, prepared, strict=True)
                 if not isinstance(call, ValueError)]  # fmt: skip
        return worst_case_usd(calls, self.prices, self.spec.budget.judge_usd_per_request)

    def _create_providers(self) -> None:
        """One client per provider of the arms (the first of a process imports its SDK: ~1 s of CPU)."""
        rs = self.spec.replay
        overrides = {"stall_timeout_s": rs.stall_timeout_s, "timeout_s": rs.timeout_s}
        for name in sorted({arm.provider for arm in self.arms}):
            config = config_from_settings(name, self._settings, **overrides)
            self.providers[name] = create_provider(name, config)

    async def run(self) -> None:
        tasks: set[asyncio.Task[None]] = set()
        heartbeat = asyncio.create_task(self._heartbeat())
        flusher = asyncio.create_task(self._flush_forever())
        abandon = asyncio.create_task(self._arms.cancel_on_stop())
        # The SDKs are imported in a thread while the loop takes this worker's first shares: a worker that
        # joins others finds their whole limit taken and waits for their next beats to give part back
        # (0.2-0.4 s on a loaded machine), which now happens during the imports instead of after them.
        creating = asyncio.get_running_loop().run_in_executor(None, self._create_providers)
        try:
            await asyncio.gather(self.limiter.start(), creating)
            await self._claim_until_done(tasks)
            if tasks:
                await asyncio.gather(*tasks)
        finally:
            # The flusher ends after the write in hand (a cancelled one might never have run, its requests
            # lost until their leases expire), then what finished last is written here.
            self._closing = True
            self._flushed.set()
            self._full.set()
            await flusher
            for task in (heartbeat, abandon):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await self._flush()
            await self._give_back()
            await asyncio.wait([creating])  # those it made are closed below, whatever failed
            await self.limiter.close()
            if self._aio is not None:
                await self._aio.aclose()
            for provider in self.providers.values():
                await provider.aclose()
        if self.failure is not None:
            raise self.failure

    async def _claim_until_done(self, tasks: set[asyncio.Task[None]]) -> None:
        loop = asyncio.get_running_loop()
        # Up to a batch and a half is leased ahead, waiting for a slot (`_started`): a claim is a transaction
        # in a thread whose latency grows with load (150 ms at load 10 here); slots do not sit idle while it
        # runs.
        capacity = self.config.concurrency + self._batch + self._batch // 2
        while not self.stopping.is_set():
            free = capacity - len(tasks)
            # Claim whole batches: a claim's CPU is mostly per transaction, not per request.
            if free <= 0 or (tasks and free < self._batch):
                await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                continue
            got = await self._claim(min(free, _CLAIM_BATCH))
            for lease in got.leases:
                self.held.add(lease.lease_id)
                task = asyncio.create_task(self._started(lease))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            if got.leases:
                self.cursor = got.cursor
                continue
            if got.state in ("exhausted", "stopped"):
                return
            if got.state == "empty" and self._rescan_due(loop.time()):
                continue  # read the whole selection once more: captures stored behind the cursor
            if got.state == "empty" and self.config.mode == "backfill" and tasks:
                # Nothing left to lease, even from the start: no claim at each completion (~10 empty ones per
                # worker at the end of a bench run); what a dead worker left is taken over once ours is done.
                await self._pause(tasks, drain=True)
                continue
            if got.state == "empty" and self.config.mode == "backfill" and not tasks:
                await self._flush()
                pending = await loop.run_in_executor(None, writes.pending_leases, self.factory,
                                                     self.experiment_id)  # fmt: skip
                if pending == 0:
                    return
            await self._pause(tasks)

    async def _started(self, lease: leases.Lease) -> None:
        """Replay a request leased ahead once a slot is free; after a stop it is given back unstarted."""
        async with self._slots:
            if self.stopping.is_set():
                self._unstarted.append(lease)
                return
            await self._replay_request(lease)

    async def _give_back(self) -> None:
        """Write what a stop left unfinished (`writes.give_back`), and say how much."""
        unstarted, part_done = self._unstarted, self._part_done
        self._unstarted, self._part_done = [], []
        if self.stopping.is_set():
            log.info(
                "%s: stopping, %d requests given back (%d with no arm replayed: lease and reservation "
                "released; %d with some arms replayed: kept, the rest replayed by the next claim)",
                self.config.experiment, len(unstarted) + len(part_done), len(unstarted), len(part_done),
                extra={"experiment": self.config.experiment, "given_back": len(unstarted) + len(part_done)},
            )  # fmt: skip
        if not (unstarted or part_done):
            return
        await asyncio.get_running_loop().run_in_executor(
            None, lambda: writes.give_back(self.factory, experiment_id=self.experiment_id,
                                           worker_id=self.config.worker_id, unstarted=unstarted,
                                           part_done=part_done),
        )  # fmt: skip
        for lease in (*unstarted, *(done.lease for done in part_done)):
            self.held.discard(lease.lease_id)
        self.metrics.spend.inc(sum(row["cost_usd"] or 0.0 for done in part_done for row in done.rows))

    def _rescan_due(self, now: float) -> bool:
        """After an empty claim past the cursor, start again from the first capture (backfill: before
        concluding there is nothing left; live: at most every `_RESCAN_S`)."""
        if self.cursor is None or (self.config.mode == "live" and now - self._rescanned < _RESCAN_S):
            return False
        self.cursor, self._rescanned = None, now
        return True

    async def _pause(self, tasks: set[asyncio.Task[None]], *, drain: bool = False) -> None:
        """Wait for a slot to free or the poll interval, whichever comes first (`drain`: for every request
        held to finish), or a stop."""
        stop = asyncio.create_task(self.stopping.wait())
        timeout = None if drain else self.config.poll_s * (0.5 + self.rng.random())
        await asyncio.wait([*tasks, stop], timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        while drain and tasks and not self.stopping.is_set():
            await asyncio.wait([*tasks, stop], return_when=asyncio.FIRST_COMPLETED)
        stop.cancel()

    async def _claim(self, limit: int) -> leases.Claim:
        # Expired leases (a dead worker's) are looked for every lease_s / _RECOVER_PER_LEASE, and by every
        # claim that finds nothing new: one statement less in most claims. Postgres: the usual claim runs on
        # the loop (`claim_loop`), any other on a thread.
        now = time.monotonic()
        recover = now - self._recovered >= self.spec.replay.lease_s / _RECOVER_PER_LEASE
        kw: dict[str, Any] = {
            "experiment_id": self.experiment_id, "worker_id": self.config.worker_id, "limit": limit,
            "traffic": self.spec.traffic, "lease_s": self.spec.replay.lease_s, "cost_of": self.worst_case,
            "after": self.cursor, "judge_usd": self.spec.budget.judge_usd_per_request,
        }  # fmt: skip
        got = await claim_on_loop(self._aio, **kw) if self._aio is not None and not recover else None
        if got is not None:
            return got
        loop = asyncio.get_running_loop()
        got = await loop.run_in_executor(None, lambda: leases.claim(self.factory, recover=recover, **kw))
        if recover:
            self._recovered = now
        return got

    async def _heartbeat(self) -> None:
        loop = asyncio.get_running_loop()
        lease_s = self.spec.replay.lease_s
        while True:
            await asyncio.sleep(lease_s / 3)
            await loop.run_in_executor(
                None, writes.extend, self.factory, self.config.worker_id, tuple(self.held), lease_s
            )

    async def _flush_forever(self) -> None:
        """Write finished requests in batches: a write waits up to `_GATHER_S` for a batch's worth and goes
        once it has one (a write is a transaction of five statements, ~4 ms of client CPU whatever its size,
        in a thread competing with the event loop for the GIL); those finishing meanwhile go in the next."""
        while not self._closing:
            await self._flushed.wait()
            self._flushed.clear()
            if len(self._finished) < self._batch and not self._closing:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._full.wait(), _GATHER_S)
            await self._flush()

    async def _flush(self) -> None:
        batch, self._finished = self._finished, []
        self._full.clear()
        if not batch:
            return
        kw: dict[str, Any] = {"experiment_id": self.experiment_id, "finished": batch,
                              "judge_usd": self.spec.budget.judge_usd_per_request}  # fmt: skip
        if self._aio is not None:
            await writes.complete_on_loop(self._aio, **kw)
        else:
            await asyncio.to_thread(writes.complete, self.factory, **kw)
        for done in batch:
            self.held.discard(done.lease.lease_id)
            self.metrics.requests.inc()
            self.metrics.spend.inc(sum(row["cost_usd"] or 0.0 for row in done.rows))

    async def _replay_request(self, lease: leases.Lease) -> None:
        prepared = self.prepare(lease.captured_request_id, lease.api, lease.body)
        # A request given back part done (`writes.give_back`) has its finished arms' rows already.
        order = [(arm, call) for arm, call in zip(self.arms, prepared, strict=True)
                 if arm.id not in lease.done_arms]  # fmt: skip
        self.rng.shuffle(order)  # random start order: drift and provider load hit all arms alike
        arms = [asyncio.create_task(self._replay_arm(arm, call, lease)) for arm, call in order]
        with self._arms.replaying(arms):
            outcomes = await asyncio.gather(*arms, return_exceptions=True)
        self._prepared.pop(lease.captured_request_id, None)
        rows: list[dict[str, Any]] = []
        abandoned = False
        for outcome in outcomes:
            if isinstance(outcome, ProviderOutageError):  # not done: the arm goes again in a later run
                self.failure = self.failure or outcome
                self.stopping.set()
                abandoned = True
            elif isinstance(outcome, asyncio.CancelledError | Stopped):  # stopped (`replayer.stopping`)
                abandoned = True
            elif isinstance(outcome, BaseException):
                raise outcome
            else:
                rows.append(outcome)
        if abandoned:
            cut = sum(self._arms.cut.get(task, 0.0) for task in arms)  # cut off mid-call: may be billed
            if rows or lease.done_arms or cut:
                self._part_done.append(writes.Finished(lease, rows, cut))
            else:
                self._unstarted.append(lease)
            return
        self._finished.append(writes.Finished(lease, rows))
        self._flushed.set()
        if len(self._finished) >= self._batch:
            self._full.set()

    async def _replay_arm(
        self, arm: ArmRuntime, call: PreparedCall | ValueError, lease: leases.Lease
    ) -> dict[str, Any]:
        started = utcnow()
        if isinstance(call, ValueError):
            return self._row(arm, lease, None, 0, started, error=("bad_request", f"capture: {call}"))
        result, attempts = await call_with_retries(
            self.limiter, arm.limit_key, lambda: self._send(arm, call, lease.request_id),
            input_tokens=call.input_tokens_estimate, output_tokens=call.max_output_tokens,
            policy=self.policy, rng=self.rng, gate=self.outages.gate(arm.provider),
            on_admit=lambda permit: self.metrics.limiter_wait.observe(permit.waited_s),
            on_retry=lambda failed: self.metrics.retries.labels(code=failed.error_code or "unknown").inc(),
        )  # fmt: skip
        return self._row(arm, lease, result, attempts, started, notes=call.notes)

    async def _send(self, arm: ArmRuntime, call: PreparedCall, capture_id: str) -> ProviderResult:
        provider = self.providers[arm.provider]
        headers: Mapping[str, str] = {**arm.extra_headers, CAPTURE_ID_HEADER: capture_id}
        with self._arms.sending(lambda: worst_case_usd([call.arm_call(arm.model)], self.prices)):
            if call.raw_body is not None:
                return await provider.complete_raw(
                    call.raw_body, untranslated=call.notes, extra_headers=headers
                )
            assert call.request is not None
            return await provider.complete(call.request, model=arm.model, extra_headers=headers)

    def _row(self, arm: ArmRuntime, lease: leases.Lease, result: ProviderResult | None, attempts: int,
             started: datetime, *, notes: tuple[str, ...] = (),
             error: tuple[str, str] | None = None) -> dict[str, Any]:  # fmt: skip
        row = replay_row(self.experiment_id, arm, lease.captured_request_id, result, attempts, started,
                         self.prices, notes=notes, error=error)  # fmt: skip
        self.metrics.replays.labels(status=row["status"], code=row["error_code"] or "").inc()
        return row


async def run_worker(factory: sessionmaker[Session], settings: Settings, config: WorkerConfig,
                     metrics: WorkerMetrics) -> None:  # fmt: skip
    """Run one worker until its work is done (backfill), the experiment stops, or SIGTERM/SIGINT."""
    loop = asyncio.get_running_loop()
    loop.set_default_executor(ThreadPoolExecutor(max_workers=16, thread_name_prefix="shadowlab-db"))
    worker = Worker(factory, settings, config, metrics)
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, worker.stopping.set)
    await worker.run()
