"""A dead or stopped worker's reservation (`shadowlab.budget_recovery`): what its attempt may have cost stays
counted, the next attempt reserves afresh within the budget."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from shadowlab.budget import committed_usd, lock_experiment, reserve, settle
from shadowlab.budget_recovery import Takeover, TakeoverOutcome, hand_back, take_over
from shadowlab.db import session_scope
from shadowlab.models import BudgetLedger, BudgetReservation, WorkLease
from tests.support.ledger import budget_db


@pytest.fixture(params=["sqlite", "postgres"])
def factory(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[sessionmaker[Session]]:
    """An experiment with a budget of $1 and three captures, on SQLite and on a migrated Postgres."""
    yield from budget_db(tmp_path, request, postgres=request.param == "postgres", captures=3)


def _row(session: Session, crid: int) -> tuple[float, float, float | None]:
    res = BudgetReservation
    row = session.execute(
        sa.select(res.reserved_usd, res.charged_usd, res.settled_usd).where(res.captured_request_id == crid)
    ).one()
    return row.reserved_usd, row.charged_usd, row.settled_usd


def test_a_dead_attempt_is_charged_and_the_next_waits_for_room_then_reserves_afresh(
    factory: sessionmaker[Session],
) -> None:
    with session_scope(factory) as session:
        experiment = lock_experiment(session, 1)
        assert [reserve(session, experiment, i, 0.4) for i in (1, 2)] == ["reserved", "reserved"]
        session.add(WorkLease(experiment_id=1, captured_request_id=2, worker_id="live", attempts=1,
                              deadline=datetime.now(UTC) + timedelta(hours=1)))  # fmt: skip
        # Request 1's worker died: its 0.4 is charged for good; 0.4 more does not fit while 2 is in flight
        # (its worker is alive: its lease has not expired).
        assert take_over(session, experiment, [Takeover(1, 0.0, 0.4)]) == TakeoverOutcome()
        assert _row(session, 1) == pytest.approx((0.4, 0.4, None))
        assert committed_usd(session, 1) == pytest.approx(0.8)
        settle(session, 1, 2, 0.1)  # room
        # A second look charges nothing more, and the new attempt's worst case now fits.
        assert take_over(session, experiment, [Takeover(1, 0.0, 0.4)]) == TakeoverOutcome((1,))
        assert _row(session, 1) == pytest.approx((0.8, 0.4, None))
        assert committed_usd(session, 1) == pytest.approx(0.9)
        settle(session, 1, 1, 0.3)  # the new attempt's cost, plus the dead one's charge
        assert _row(session, 1) == pytest.approx((0.8, 0.4, 0.7))
        assert committed_usd(session, 1) == pytest.approx(0.8)


def test_a_dead_attempt_that_cannot_be_paid_for_again_is_dropped_at_its_charge(
    factory: sessionmaker[Session],
) -> None:
    with session_scope(factory) as session:
        experiment = lock_experiment(session, 1)
        assert reserve(session, experiment, 1, 0.7, judge_usd=0.1) == "reserved"
        # Nothing else in flight: no room will come, so the request is settled at its charge + holdback.
        assert take_over(session, experiment, [Takeover(1, 0.0, 0.6)]) == TakeoverOutcome((), (1,))
        assert _row(session, 1) == pytest.approx((0.7, 0.6, 0.7))
        ledger = session.get_one(BudgetLedger, 1, populate_existing=True)
        assert (ledger.replay_usd, ledger.unsettled) == pytest.approx((0.7, 0))


def test_a_stop_keeps_the_worst_case_of_calls_cut_off_and_releases_the_rest(
    factory: sessionmaker[Session],
) -> None:
    with session_scope(factory) as session:
        experiment = lock_experiment(session, 1)
        assert reserve(session, experiment, 1, 0.6, judge_usd=0.1) == "reserved"
        hand_back(session, 1, {1: 0.2})  # one arm's call (worst case 0.2) cut off mid-call, no row written
        assert _row(session, 1) == pytest.approx((0.3, 0.2, None))
        assert committed_usd(session, 1) == pytest.approx(0.3)
        # The lease taken over: nothing more to charge (the stop said what was out), the attempt reserves.
        assert take_over(session, experiment, [Takeover(1, 0.0, 0.5)]) == TakeoverOutcome((1,))
        assert _row(session, 1) == pytest.approx((0.8, 0.2, None))
        assert committed_usd(session, 1) == pytest.approx(0.8)
