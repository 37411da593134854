"""Expired leases taken over (`leases.claim` → `shadowlab.budget_recovery.take_over`) against the budget and
against the writes of their first holder, alive but late (`writes.complete`, `writes.give_back`)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from replayer import writes
from replayer.arms import ArmRuntime
from replayer.leases import Claim, Lease, claim
from replayer.rows import replay_row
from shadowlab import migrate, store
from shadowlab.db import create_engine, session_factory, session_scope
from shadowlab.experiment import parse_spec
from shadowlab.models import BudgetLedger, CapturedRequest, Experiment, WorkLease
from shadowlab.pricing import load_price_table
from tests.support.ledger import ledger_gaps

SPEC = {
    "name": "takeovers",
    "control": {"name": "control", "provider": "anthropic", "model": "claude-haiku-4-5"},
    "candidates": [{"name": "cand", "provider": "openai", "model": "gpt-4o-mini"}],
    "allowed_providers": ["anthropic", "openai"],
    "budget": {"usd": 1.0},
    "plan": {"primary_metric": "judge_score", "min_sample": 10, "max_sample": 100},
}
COST = 0.3  # every request's worst case: three fit in the budget of $1, a fourth does not


def _lab(url: str) -> sessionmaker[Session]:
    engine = create_engine(url)
    factory = session_factory(engine)
    with session_scope(factory) as session:
        store.experiments.create(parse_spec(SPEC, "takeovers.yaml"), session=session)
        store.experiments.start("takeovers", load_price_table(), session=session)
        at = datetime(2026, 1, 5, tzinfo=UTC)
        session.add_all(
            CapturedRequest(request_id=f"r{i}", captured_at=at + timedelta(seconds=i), service="s",
                            api="anthropic.messages", request={"model": "m", "messages": []})
            for i in range(4)
        )  # fmt: skip
    return factory


@pytest.fixture(params=["sqlite", "postgres"])
def factory(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[sessionmaker[Session]]:
    if request.param == "postgres":
        factory = _lab(request.getfixturevalue("pg_migrated"))
    else:
        url = f"sqlite:///{tmp_path / 'lab.db'}"
        migrate.upgrade(create_engine(url))
        factory = _lab(url)
    yield factory
    factory.kw["bind"].dispose()


@pytest.fixture
def pg_factory(pg_migrated: str) -> Iterator[sessionmaker[Session]]:
    factory = _lab(pg_migrated)
    yield factory
    factory.kw["bind"].dispose()


def _claim(factory: sessionmaker[Session], worker: str, limit: int, *, recover: bool = True) -> Claim:
    with factory() as session:
        experiment = session.execute(sa.select(Experiment)).scalar_one()
        experiment_id, traffic = experiment.id, store.experiments.spec_of(experiment).traffic
    return claim(factory, experiment_id=experiment_id, worker_id=worker, traffic=traffic, lease_s=60,
                 limit=limit, cost_of=lambda *_: COST, recover=recover)  # fmt: skip


def _expire(factory: sessionmaker[Session], worker: str) -> None:
    """The worker's leases past their deadline, as after its death (or a heartbeat that came too late)."""
    with session_scope(factory) as session:
        session.execute(
            sa.update(WorkLease).where(WorkLease.worker_id == worker)
            .values(deadline=datetime.now(UTC) - timedelta(seconds=1))
        )  # fmt: skip


def _undone(factory: sessionmaker[Session]) -> int:
    with factory() as session:
        return int(session.execute(sa.select(sa.func.count()).where(WorkLease.done.is_(False))).scalar_one())


def _complete(factory: sessionmaker[Session], leases: tuple[Lease, ...], cost_usd: float = 0.0) -> None:
    """The leases' requests written back, each arm answered; all of a request's cost on its first arm."""
    with factory() as session:
        experiment = session.execute(sa.select(Experiment)).scalar_one()
        arms = [ArmRuntime.of(arm) for arm in experiment.arms]
    started, prices = datetime.now(UTC), load_price_table()

    def rows(lease: Lease) -> list[dict[str, Any]]:
        answers = [replay_row(experiment.id, arm, lease.captured_request_id, None, 1, started, prices)
                   for arm in arms]  # fmt: skip
        return [{**answers[0], "cost_usd": cost_usd}, *answers[1:]]

    finished = [writes.Finished(lease, rows(lease)) for lease in leases]
    writes.complete(factory, experiment_id=experiment.id, finished=finished, judge_usd=0.0)


def test_dead_workers_requests_the_budget_cannot_pay_for_again_are_dropped_beyond_one_claims_limit(
    factory: sessionmaker[Session],
) -> None:
    # A worker died holding three requests: $0.9 of the $1 budget, charged for good. No other work is in
    # flight, so no room will ever come: each must be dropped, even when a claim looks at fewer of them at
    # once than are waiting (a survivor's batch, or two survivors sharing them out).
    assert len(_claim(factory, "dead", 3).leases) == 3
    _expire(factory, "dead")
    for _ in range(3):
        assert _claim(factory, "survivor", 1).leases == ()
    assert _undone(factory) == 0
    with factory() as session:
        ledger = session.execute(sa.select(BudgetLedger.replay_usd, BudgetLedger.unsettled)).one()
    assert tuple(ledger) == pytest.approx((3 * COST, 0))
    with factory.kw["bind"].connect() as conn:
        assert ledger_gaps(conn) == []


def test_a_dead_workers_request_waits_while_live_work_may_still_free_room(
    factory: sessionmaker[Session],
) -> None:
    dead = _claim(factory, "dead", 2).leases
    live = _claim(factory, "live", 1).leases
    assert (len(dead), len(live)) == (2, 1)
    _expire(factory, "dead")
    # $0.9 held; a new attempt's $0.3 does not fit. The live worker's request may settle below its worst
    # case: the dead worker's requests wait for it (not dropped), then one of them is replayed again.
    assert _claim(factory, "survivor", 2).leases == ()
    assert _undone(factory) == 3
    _complete(factory, live)  # it cost nothing: $0.3 of room
    again = _claim(factory, "survivor", 2).leases
    assert [lease.attempt for lease in again] == [2]
    # The other waits for the one replayed again, and is dropped once that one settles at its cost.
    assert _claim(factory, "survivor", 2).leases == ()
    assert _undone(factory) == 2
    _complete(factory, again, cost_usd=COST)
    assert _claim(factory, "survivor", 2).leases == ()
    assert _undone(factory) == 0
    with factory.kw["bind"].connect() as conn:
        assert ledger_gaps(conn) == []


def _ledger_usd(factory: sessionmaker[Session]) -> float:
    with factory() as session:
        return float(session.execute(sa.select(BudgetLedger.replay_usd)).scalar_one())


def test_a_take_over_given_back_keeps_its_charge_once_and_a_second_death_is_charged_again(
    factory: sessionmaker[Session],
) -> None:
    _claim(factory, "dead", 1)
    _expire(factory, "dead")
    (lease,) = _claim(factory, "stopping", 1).leases  # $0.3 charged for the dead attempt, $0.3 reserved
    assert (lease.attempt, _ledger_usd(factory)) == pytest.approx((2, 2 * COST))
    with factory() as session:
        experiment_id = session.execute(sa.select(Experiment.id)).scalar_one()
    # Stopped before it started: its own hold goes back, the dead attempt's charge stays.
    writes.give_back(
        factory, experiment_id=experiment_id, worker_id="stopping", unstarted=[lease], part_done=[]
    )
    assert _ledger_usd(factory) == pytest.approx(COST)
    # Taken over again (the stop left nothing to charge), then that worker dies too: its hold is charged.
    assert [taken.attempt for taken in _claim(factory, "dies", 1).leases] == [3]
    assert _ledger_usd(factory) == pytest.approx(2 * COST)
    _expire(factory, "dies")
    (last,) = _claim(factory, "finishes", 1).leases
    assert (last.attempt, _ledger_usd(factory)) == pytest.approx((4, 3 * COST))
    _complete(factory, (last,), cost_usd=0.1)  # two deaths charged, the last attempt at its cost
    assert _ledger_usd(factory) == pytest.approx(2 * COST + 0.1)
    with factory.kw["bind"].connect() as conn:
        assert ledger_gaps(conn) == []


def _waiting_on_locks(engine: sa.Engine) -> int:
    with engine.connect() as conn:  # a new transaction each time: pg_stat_activity is a snapshot
        return int(conn.execute(sa.text(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND wait_event_type = 'Lock'"
        )).scalar_one())  # fmt: skip


def _until(condition: Callable[[], bool], what: str) -> None:
    give_up = time.monotonic() + 20
    while not condition():
        assert time.monotonic() < give_up, f"timed out waiting for {what}"
        time.sleep(0.01)


def _race_with_a_take_over(
    factory: sessionmaker[Session], write: Callable[[], None]
) -> tuple[Future[None], Future[Claim]]:
    """`write` (of the late holder's leases) and a survivor's take-over of them, started while the budget
    ledger's row is held, so both are under way when it is released: their two results."""
    engine = factory.kw["bind"]
    with ThreadPoolExecutor(2) as pool, engine.connect() as holder:
        holder.execute(sa.select(BudgetLedger.experiment_id).with_for_update())
        written = pool.submit(write)
        _until(lambda: _waiting_on_locks(engine) == 1, "the write to wait for the ledger")
        taken = pool.submit(_claim, factory, "survivor", 4)
        _until(lambda: taken.done() or _waiting_on_locks(engine) == 2, "the take-over to end or wait")
        holder.rollback()
        return written, taken


@pytest.mark.postgres
def test_a_late_holders_write_and_a_take_over_of_its_leases_do_not_deadlock(
    pg_factory: sessionmaker[Session],
) -> None:
    leases = _claim(pg_factory, "late", 1).leases
    _expire(pg_factory, "late")  # its heartbeat came too late: the lease is up for a take-over
    written, taken = _race_with_a_take_over(pg_factory, lambda: _complete(pg_factory, leases))
    assert written.exception() is None and taken.exception() is None
    assert _undone(pg_factory) == len(taken.result().leases)
    with pg_factory.kw["bind"].connect() as conn:
        assert ledger_gaps(conn) == []


@pytest.mark.postgres
def test_a_late_holders_give_back_and_a_take_over_of_its_leases_do_not_deadlock(
    pg_factory: sessionmaker[Session],
) -> None:
    first, second = _claim(pg_factory, "late", 2).leases
    _expire(pg_factory, "late")
    with pg_factory() as session:
        experiment_id = session.execute(sa.select(Experiment.id)).scalar_one()

    def give_back() -> None:  # one request unstarted, one with an arm cut off mid-call
        writes.give_back(pg_factory, experiment_id=experiment_id, worker_id="late", unstarted=[first],
                         part_done=[writes.Finished(second, (), cut_usd=0.1)])  # fmt: skip

    written, taken = _race_with_a_take_over(pg_factory, give_back)
    assert written.exception() is None and taken.exception() is None
    with pg_factory.kw["bind"].connect() as conn:
        assert ledger_gaps(conn) == []
