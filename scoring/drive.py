"""The leased loop one scorer version runs in one process: claim a batch of tasks, judge them with at most
`concurrency` in flight, write results by group commit, heartbeat what it holds, show progress.

Tasks are claimed in waves of `concurrency`: a wave is claimed once fewer than a wave of started items wait
for their place among the calls in flight (`judge_calls.CallSlot`), and all its items start at once, so their
budget holds go to the database together (one transaction per wave, not per call) while the calls before them
run. Memory stays flat in the number of pending items: fewer than two waves wait while `concurrency` items
are in flight.
Results are written by one writer that takes whatever has arrived since its last transaction, after waiting
up to `_LINGER_S` for a quarter of the places' results to gather (a group commit costs ~0.4 ms of client CPU
whatever its size: one per result was a tenth of a judge call's CPU on an idle machine); an item's place is
freed only once its result is committed (on Postgres without waiting for the disk, `scoring.tasks`: a scorer
killed at any point loses none of it). The writer never touches the budget ledger (settlements go with the
next wave's reservations), so its transactions do not queue behind other processes' on the ledger row.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar, cast

from sqlalchemy.orm import Session, sessionmaker

from scoring.judge_calls import CallSlot, NotSent, call_slot
from scoring.metrics import ScoreMetrics
from scoring.store import PairItem, PointItem, Written
from scoring.tally import RunSummary, Tally
from scoring.tasks import ScorerKey, TaskQueue

__all__ = ["Progress", "TaskOptions", "drive", "new_worker_id"]

_CLAIM_MAX = 256  # tasks per claim at most, whatever the concurrency
_LINGER_S = 0.005  # the writer's wait for results to gather (a judge call: ~3 ms of CPU, or a network wait)
_Item = TypeVar("_Item", PointItem, PairItem)


def new_worker_id() -> str:
    """host:pid:random — unique per process and per run, readable in `score_tasks.worker_id`."""
    return f"{os.uname().nodename}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Progress(Protocol):
    """What the runner reports to (`shadowlab.progress.ProgressLine` is one)."""

    def update(self, done: int, total: int | None = None, note: str = "") -> None: ...
    def close(self) -> None: ...


@dataclass(frozen=True)
class TaskOptions:
    """How this process takes part: its id, the lease it holds tasks for (heartbeats every third of it),
    whether to wait for tasks other processes hold (a one-off run does, so a dead process's tasks are taken
    over; `--follow` does not, its next pass takes them) and the event that stops it (SIGTERM)."""

    worker_id: str = field(default_factory=new_worker_id)
    lease_s: float = 300.0
    wait_for_others: bool = True
    poll_s: float = 0.5
    stop: asyncio.Event | None = None

    def stopped(self) -> bool:
        return self.stop is not None and self.stop.is_set()


class _Writer:
    """Group commit of results, failed tasks and tasks handed back, through `TaskQueue.finish`."""

    def __init__(self, queue: TaskQueue, gather: int = 1) -> None:
        self.queue = queue
        self.gather = gather  # results worth a transaction without lingering
        self._written: list[Written] = []
        self._failed: list[int] = []
        self._unstarted: list[int] = []
        self._waiters: list[asyncio.Future[None]] = []
        self._wake = asyncio.Event()

    async def put(self, task_id: int, written: Written | None) -> None:
        """Queue one item's outcome (None: no result, the task is deleted) and wait until it is durable."""
        if written is None:
            self._failed.append(task_id)
        else:
            self._written.append(written)
        await self._durable()

    async def hand_back(self, task_ids: Sequence[int]) -> None:
        self._unstarted.extend(task_ids)
        await self._durable()

    async def _durable(self) -> None:
        done = asyncio.get_running_loop().create_future()
        self._waiters.append(done)
        self._wake.set()
        await done

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            if len(self._written) < self.gather and not (self._failed or self._unstarted):
                await asyncio.sleep(_LINGER_S)
            written, failed, unstarted, waiters = self._written, self._failed, self._unstarted, self._waiters
            self._written, self._failed, self._unstarted, self._waiters = [], [], [], []
            self._wake.clear()  # what arrived while lingering is in this transaction
            try:
                await self.queue.finish_async(written, failed, unstarted)
            except Exception as exc:  # each waiter's item fails with it (its task stays leased, then expires)
                for waiter in waiters:
                    waiter.set_exception(exc)
                continue
            for waiter in waiters:
                waiter.set_result(None)


@contextlib.asynccontextmanager
async def _background(*jobs: Awaitable[None]) -> AsyncIterator[None]:
    tasks = [asyncio.ensure_future(job) for job in jobs]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def _heartbeat(queue: TaskQueue, held: set[int]) -> None:
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(queue.lease_s / 3)
        await loop.run_in_executor(None, queue.extend, tuple(held))


async def _report(queue: TaskQueue, tally: Tally, line: Progress) -> None:
    """Once a second: items finished by every process since this run began, of those open then."""
    loop = asyncio.get_running_loop()
    while True:
        left = await loop.run_in_executor(None, queue.open_count)
        line.update(max(tally.total - left, 0), tally.total, f"${tally.spent:.4f} spent")
        await asyncio.sleep(1.0)


async def _wait(options: TaskOptions, running: set[asyncio.Task[None]], timeout: float | None) -> None:
    """Until one item in flight ends, the stop event, or `timeout`."""
    waiting: set[asyncio.Future[Any]] = set(running)
    stop = asyncio.ensure_future(options.stop.wait()) if options.stop is not None else None
    if stop is not None:
        waiting.add(stop)
    if waiting:
        await asyncio.wait(waiting, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    elif timeout is not None:
        await asyncio.sleep(timeout)
    if stop is not None:
        stop.cancel()


class _Places:
    """The calls in flight (at most `concurrency`) and how many started items wait for a place."""

    def __init__(self, concurrency: int, stop: asyncio.Event | None) -> None:
        self._free = asyncio.Semaphore(concurrency)
        self._stop = stop
        self._wave = concurrency
        self.waiting = 0
        self._room = asyncio.Event()
        self._room.set()

    def slot(self) -> CallSlot:
        """A place for one item about to start (taken by its judge call, if it makes one)."""
        self.waiting += 1
        if self.waiting >= self._wave:
            self._room.clear()
        return CallSlot(self._free, self._stop, on_taken=self._placed)

    def ended(self, slot: CallSlot) -> None:
        """The item ended: its place is free; if it never took one, it no longer waits."""
        if not slot.was_taken:
            self._placed()
        slot.give_back()

    def _placed(self) -> None:
        self.waiting -= 1
        if self.waiting < self._wave:
            self._room.set()

    async def room_for_a_wave(self) -> None:
        """Until fewer than a wave wait: the next wave reserves while the last one's items still wait for
        their places, so no place waits for a claim and a reservation."""
        await self._room.wait()


# Long: one loop whose branches (claim, nothing claimable, start the wave, stop) read best together.
async def _claim_and_judge(
    queue: TaskQueue,
    judge: Callable[[_Item, Tally], Awaitable[Written | None]],
    tally: Tally,
    writer: _Writer,
    held: set[int],
    concurrency: int,
    options: TaskOptions,
) -> None:
    loop = asyncio.get_running_loop()
    places = _Places(concurrency, options.stop)
    running: set[asyncio.Task[None]] = set()

    async def one(item: _Item, slot: CallSlot) -> None:
        call_slot.set(slot)
        try:
            written = await judge(item, tally)
        except NotSent:  # stopping before its call was sent
            await writer.hand_back([item.task_id])
        else:
            await writer.put(item.task_id, written)
        finally:
            held.discard(item.task_id)
            places.ended(slot)

    while not (options.stopped() or tally.exhausted):
        await places.room_for_a_wave()
        if options.stopped() or tally.exhausted:
            break
        claimed = await queue.claim_async(min(concurrency, _CLAIM_MAX))
        items = cast(Sequence[_Item], claimed)  # the queue's kind is the judge's
        if not items:
            if running:
                await _wait(options, running, None)
            elif not options.wait_for_others or await loop.run_in_executor(None, queue.open_count) == 0:
                break
            else:  # others hold the rest: wait for them to finish it, or for their leases to expire
                await _wait(options, running, options.poll_s)
            continue
        held.update(item.task_id for item in items)
        for item in items:
            task = asyncio.create_task(one(item, places.slot()))
            running.add(task)
            task.add_done_callback(running.discard)
    await asyncio.gather(*running)


async def drive(
    factory: sessionmaker[Session],
    key: ScorerKey,
    judge: Callable[[_Item, Tally], Awaitable[Written | None]],
    *,
    concurrency: int,
    progress: Progress | None,
    metrics: ScoreMetrics | None,
    options: TaskOptions,
) -> RunSummary:
    """Seed this scorer version's tasks, judge what this process can claim, and summarise."""
    loop = asyncio.get_running_loop()
    queue = TaskQueue(factory, key, worker_id=options.worker_id, lease_s=options.lease_s)
    await loop.run_in_executor(None, queue.seed)
    tally = Tally(await loop.run_in_executor(None, queue.open_count), key.name, metrics)
    writer, held = _Writer(queue, gather=max(1, concurrency // 4)), set[int]()
    jobs = [writer.run(), _heartbeat(queue, held)] + ([_report(queue, tally, progress)] if progress else [])
    try:
        async with _background(*jobs):
            await _claim_and_judge(queue, judge, tally, writer, held, concurrency, options)
        # Failed items were deleted: seeding again makes them (and replays that arrived meanwhile) pending.
        await loop.run_in_executor(None, queue.seed)
        pending = await loop.run_in_executor(None, queue.open_count)
        if progress is not None:
            progress.update(tally.total - min(pending, tally.total), tally.total, f"${tally.spent:.4f} spent")
    finally:
        await queue.aclose()
        if progress is not None:
            progress.close()
    return tally.summary(key.version, key.kind, pending)
