"""Per-worker grants on the real Postgres: shares never sum above a limit, and a dead worker's share returns.

Several `RateLimiter`s in one process stand for several workers (each its own worker id, as each replayer
or scorer process has); time is a fake clock, so expiry is reached by moving it, not by sleeping."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from shadowlab.db import create_engine, session_factory
from shadowlab.experiment import LimitSpec
from shadowlab.limits import RateLimiter, Share
from shadowlab.limits_grants import CHANNEL
from shadowlab.models import RateLimitKey, WorkerHeartbeat
from tests.support.clock import FakeClock
from tests.support.waiting import wait_for

pytestmark = pytest.mark.postgres

CONCURRENCY = 10
LIMIT = LimitSpec(
    provider="p", model="m", rpm=100, input_tpm=10_000, output_tpm=1_001, concurrency=CONCURRENCY, window_s=5
)
DIMS = ("rpm", "input_tpm", "output_tpm", "concurrency")


def _clock() -> FakeClock:
    return FakeClock(datetime(2026, 12, 6, tzinfo=UTC), 1000.0)


@pytest.fixture
def factory(pg_migrated: str) -> Iterator[sessionmaker[Session]]:
    engine = create_engine(pg_migrated)
    yield session_factory(engine)
    engine.dispose()


def _workers(factory: sessionmaker[Session], clock: FakeClock, n: int) -> list[RateLimiter]:
    return [
        RateLimiter(
            factory, (LIMIT,), worker_id=f"w{i}", timeout_s=3.0, clock=clock.wall, monotonic=clock.monotonic
        )
        for i in range(n)
    ]


async def _round(workers: list[RateLimiter]) -> None:
    """Every worker heartbeats once (what each does every second), in turn."""
    for worker in workers:
        await worker.heartbeat()


def _totals(workers: list[RateLimiter]) -> dict[str, int]:
    shares = [worker.share(LIMIT.key) for worker in workers]
    assert all(share is not None for share in shares)
    return {dim: sum(getattr(share, dim) for share in shares) for dim in DIMS}


@pytest.mark.parametrize("n", [2, 4])
def test_shares_never_sum_above_the_limit_and_converge_to_fair(
    factory: sessionmaker[Session], n: int
) -> None:
    clock = _clock()
    workers = _workers(factory, clock, n)

    async def scenario() -> None:
        # Workers join one by one: at every step, whatever the order of heartbeats, the shares fit the limit.
        for joined in range(1, n + 1):
            for _ in range(2):
                await _round(workers[:joined])
                assert all(_totals(workers[:joined])[dim] <= getattr(LIMIT, dim) for dim in DIMS)
        await _round(workers)
        totals = _totals(workers)
        assert totals == {dim: getattr(LIMIT, dim) for dim in DIMS}  # nothing left unused once settled
        for worker in workers:
            share = worker.share(LIMIT.key)
            assert share is not None and share.rpm in (100 // n, 100 // n + 1)

    asyncio.run(scenario())


@pytest.mark.parametrize("n", [2, 4])
def test_workers_started_together_get_fair_shares_by_notify_alone(
    factory: sessionmaker[Session], n: int
) -> None:
    # `replay --workers N` forks its workers at once: each first beat finds the limit taken by those that beat
    # before it and asks them (NOTIFY) to give part back. With heartbeats an hour apart only those asks move
    # shares: a worker that listened only after its first beat missed them and waited a whole heartbeat.
    clock = _clock()
    workers = [
        RateLimiter(factory, (LIMIT,), worker_id=f"t{i}", heartbeat_s=3600, timeout_s=3.0, clock=clock.wall,
                    monotonic=clock.monotonic)
        for i in range(n)
    ]  # fmt: skip

    def settled() -> bool:
        """Every share fair and, together, the whole limit (one below fair waits for the others' beats)."""
        shares = [worker.share(LIMIT.key) for worker in workers]
        if any(share is None for share in shares):
            return False
        fair = all(share is not None and share.concurrency in (10 // n, 10 // n + 1) for share in shares)
        return fair and _totals(workers) == {dim: getattr(LIMIT, dim) for dim in DIMS}

    def listening() -> int:
        with factory() as session:
            query = sa.select(sa.func.count()).where(
                sa.text(f"datname = current_database() AND query = 'LISTEN {CHANNEL}'")
            )
            return int(session.execute(query.select_from(sa.text("pg_stat_activity"))).scalar_one())

    async def scenario() -> None:
        try:
            before = listening()
            await workers[0].start()
            assert listening() == before + 1  # started: it hears the others' asks from now on
            await asyncio.gather(*(worker.start() for worker in workers[1:]))
            give_up = asyncio.get_running_loop().time() + 20  # a bound, not an expectation
            while not settled() and asyncio.get_running_loop().time() < give_up:
                await asyncio.sleep(0.02)
            assert settled(), [worker.share(LIMIT.key) for worker in workers]
        finally:
            for worker in workers:
                await worker.close()

    asyncio.run(scenario())


@pytest.mark.parametrize("n", [2, 4])
def test_a_dead_workers_share_returns_within_its_heartbeat_timeout(
    factory: sessionmaker[Session], n: int
) -> None:
    clock = _clock()
    workers = _workers(factory, clock, n)
    survivors = workers[1:]

    async def before() -> None:
        for _ in range(3):
            await _round(workers)

    async def dies_holding_calls() -> None:
        # Worker 0 admits two calls, then its process ends without a goodbye (kill -9): its event loop and
        # heartbeats stop with it, its grant row stays until it expires.
        held = [await workers[0].acquire(LIMIT.key, 10, 10) for _ in range(2)]
        assert all(permit.admission is not None for permit in held)

    async def after() -> None:
        clock.advance(1.0)
        await _round(survivors)
        assert _totals(workers)["concurrency"] <= CONCURRENCY  # its share stays away while fresh
        # Within its heartbeat timeout (3 s) the concurrency share is back with the survivors...
        clock.advance(2.5)
        await _round(survivors)
        assert _totals(survivors)["concurrency"] == LIMIT.concurrency
        # ...and the rate shares once its last sends left the window (timeout + window_s).
        clock.advance(LIMIT.window_s)
        await _round(survivors)
        await _round(survivors)
        assert _totals(survivors) == {dim: getattr(LIMIT, dim) for dim in DIMS}

    asyncio.run(before())
    asyncio.run(dies_holding_calls())
    asyncio.run(after())


def test_a_clean_exit_gives_concurrency_back_at_once(factory: sessionmaker[Session]) -> None:
    clock = _clock()
    first, second = _workers(factory, clock, 2)

    async def scenario() -> None:
        for _ in range(2):
            await _round([first, second])
        await second.close()
        await first.heartbeat()
        share = first.share(LIMIT.key)
        assert share is not None and share.concurrency == LIMIT.concurrency

    asyncio.run(scenario())


def _lock_waiter(engine: sa.Engine) -> int:
    """The backend of this test's database that waits for a lock (one must): its pid."""
    waiting = sa.text(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    pids: list[int] = []

    def found() -> bool:
        # A transaction per look: pg_stat_activity is a snapshot taken once per transaction.
        with engine.connect() as conn:
            pids[:] = conn.execute(waiting).scalars().all()
        return len(pids) == 1

    wait_for(found, "the first heartbeat to wait for the key's row lock", timeout_s=10.0, every_s=0.01)
    return pids[0]


def _beat_at(engine: sa.Engine, worker_id: str) -> datetime:
    with engine.connect() as conn:
        beat = sa.select(WorkerHeartbeat.heartbeat_at).where(WorkerHeartbeat.worker_id == worker_id)
        return conn.execute(beat).scalar_one()


@pytest.mark.parametrize("interrupted", ["cancelled", "failed"])
def test_a_first_call_interrupted_in_the_first_heartbeat_leaves_the_limiter_able_to_start(
    factory: sessionmaker[Session], interrupted: str
) -> None:
    # A worker's first call starts its limiter: the first beat registers it, then a task heartbeats. Here
    # that beat waits for the key's row lock (another worker mid-beat) and, meanwhile, the call is cancelled
    # (the worker stops, a caller's timeout) or the beat's statement fails. Before the fix the limiter stayed
    # "started" with no share and no heartbeat task: every later call waited forever.
    engine = factory.kw["bind"]
    limiter = RateLimiter(factory, (LIMIT,), worker_id="w0", heartbeat_s=0.05, timeout_s=3.0)

    async def scenario() -> None:
        with engine.connect() as holder:
            holder.execute(sa.insert(RateLimitKey).values(key=LIMIT.key))
            holder.commit()
            holder.execute(sa.select(RateLimitKey).where(RateLimitKey.key == LIMIT.key).with_for_update())
            first = asyncio.create_task(limiter.acquire(LIMIT.key, 1, 1))
            beating = await asyncio.to_thread(_lock_waiter, engine)
            if interrupted == "cancelled":
                first.cancel()
            else:
                holder.execute(sa.select(sa.func.pg_cancel_backend(beating)))
            failure = asyncio.CancelledError if interrupted == "cancelled" else sa.exc.OperationalError
            with pytest.raises(failure):
                await first
            holder.rollback()
        await limiter.start()  # the start-up goes on (cancelled), or starts again (failed)
        share = limiter.share(LIMIT.key)
        assert share is not None and share.rpm == LIMIT.rpm
        assert (await limiter.acquire(LIMIT.key, 1, 1)).admission is not None
        started = _beat_at(engine, "w0")  # and the grant is kept: the heartbeats go on
        await asyncio.to_thread(wait_for, lambda: _beat_at(engine, "w0") > started, "a heartbeat", 10.0, 0.01)
        await limiter.close()

    asyncio.run(scenario())


def test_retry_after_from_one_worker_pauses_the_key_for_the_others(factory: sessionmaker[Session]) -> None:
    clock = _clock()
    first, second = _workers(factory, clock, 2)

    async def scenario() -> None:
        for _ in range(2):
            await _round([first, second])
        await first.block(LIMIT.key, 2.0)
        await second.heartbeat()  # SQLite's way; on Postgres the NOTIFY usually arrives first
        waiting = asyncio.create_task(second.acquire(LIMIT.key, 1, 1))
        await asyncio.sleep(0)
        assert not waiting.done()
        clock.advance(2.01)
        await second.heartbeat()  # wakes waiting calls, as the pause's timer would once the clock moved
        permit = await waiting
        assert permit.admission is not None

    asyncio.run(scenario())


async def _admit_all(
    worker: RateLimiter, key: str, admitted: list[tuple[float, str]], *, within_beat: bool = False
) -> None:
    """Every call `worker`'s share admits now, each answered at once (so it counts at its admission).

    A heartbeat in progress admits only within its cap (what the worker used lately): a call refused while one
    runs waits for its end, so only the share refuses, not a beat a NOTIFY happened to wake at that real
    moment. `within_beat`: what the cap of the beat in progress admits, without waiting for its end."""
    while True:
        task = asyncio.create_task(worker.acquire(key, 1, 1))
        beats = True
        while beats and not task.done():
            beats = False
            for _ in range(5):
                await asyncio.sleep(0)
                beats = beats or (worker.beating and not within_beat)
            if beats:
                await worker.idle()
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            return
        permit = task.result()
        assert permit.admission is not None
        admitted.append((permit.admission.sent_at, worker.worker_id))
        await worker.release(permit, 0.0, 1, 1)


def test_admissions_fit_the_limit_in_every_window_while_workers_join_and_leave(
    factory: sessionmaker[Session],
) -> None:
    # The hand-over: the first worker holds the whole limit and uses it; two more join (each first beat
    # finds it all taken: share 0 until the first worker's next beat gives part back, and what it already
    # sent stays counted as its `extra` until it left the window); then the first leaves, and once what it
    # sent left the window (4.5 s) the two others share the whole limit. Calls are admitted greedily every
    # 0.1 s; the sum over all workers, in any window, never passes the limit.
    clock = _clock()
    limit = LimitSpec(provider="p", model="handover", rpm=8, window_s=2)
    # The test beats every 0.5 s of its fake clock; a NOTIFY (a share changed) wakes a beat at any real moment
    # (`_admit_all` waits for its end).
    workers = [
        RateLimiter(factory, (limit,), worker_id=f"h{i}", heartbeat_s=3600, timeout_s=3.0, clock=clock.wall,
                    monotonic=clock.monotonic)
        for i in range(3)
    ]  # fmt: skip
    joins, leaves = {0: workers[0], 4: workers[1], 9: workers[2]}, {25: workers[0]}
    admitted: list[tuple[float, str]] = []

    async def scenario() -> None:
        active: list[RateLimiter] = []
        try:
            for step in range(55):
                if step in joins:
                    await joins[step].start()  # registers: its first beat
                    active.append(joins[step])
                if step in leaves:
                    await leaves[step].close()
                    active.remove(leaves[step])
                if step % 5 == 0:
                    await _round(active)
                for worker in active:
                    await _admit_all(worker, limit.key, admitted)
                clock.advance(0.1)
            # What the leaver sent has left the window: the two others share the whole limit.
            assert [worker.share(limit.key) for worker in active] == [Share(rpm=4), Share(rpm=4)]
        finally:
            for worker in active:
                await worker.close()

    asyncio.run(scenario())
    times = [t for t, _ in admitted]
    worst = max(sum(1 for t in times if start <= t < start + limit.window_s) for start in times)
    assert worst == limit.rpm  # reached (the first worker alone), never passed
    assert {worker for _, worker in admitted} == {"h0", "h1", "h2"}  # the limit changed hands


def test_admissions_go_on_during_a_heartbeat_within_half_the_unused_share_and_count_for_the_others(
    factory: sessionmaker[Session],
) -> None:
    # A beat used to stop every admission of its worker until it ended (40-500 ms on a loaded machine).
    # Now a beat reports the use it began with plus what was admitted since the beat before (at most half
    # of what the share leaves), and admits up to that meanwhile; the others count it until the next beat.
    # Here the beat waits for the key's row lock (another worker mid-beat, held by the test) while calls
    # come.
    clock = _clock()
    limit = LimitSpec(provider="p", model="beat", rpm=8, window_s=2)
    first, second = (
        RateLimiter(factory, (limit,), worker_id=f"b{i}", heartbeat_s=3600, timeout_s=3.0, clock=clock.wall,
                    monotonic=clock.monotonic)
        for i in range(2)
    )  # fmt: skip
    engine = factory.kw["bind"]
    admitted: list[tuple[float, str]] = []

    async def scenario() -> None:
        await first.start()  # alone: the whole limit
        for _ in range(4):
            assert (await first.acquire(limit.key, 1, 1)).admission is not None
        with engine.connect() as holder:
            holder.execute(sa.select(RateLimitKey).where(RateLimitKey.key == limit.key).with_for_update())
            beat = asyncio.create_task(first.heartbeat())
            await asyncio.to_thread(_lock_waiter, engine)
            await _admit_all(first, limit.key, admitted, within_beat=True)
            assert len(admitted) == 2  # 4 used (all since the last beat), 4 left: half of it while it runs
            holder.rollback()
        await beat
        await second.start()  # joins: all of it is the first worker's share
        for _ in range(2):
            await _round([first, second])
            for worker in (first, second):
                await _admit_all(worker, limit.key, admitted)
        await first.close()
        await second.close()

    asyncio.run(scenario())
    assert 4 + len(admitted) == limit.rpm  # every call within the same 2 s of the fake clock: never more
    assert any(worker == "b1" for _, worker in admitted)  # the joiner got what the first one's use left
