"""The budget ledger against its reservations (`shadowlab.budget`): the running sums must be the sums."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from shadowlab import migrate
from shadowlab.db import create_engine, session_factory, session_scope
from shadowlab.models import BudgetLedger, BudgetReservation, CapturedRequest, Experiment


def budget_db(
    tmp_path: Path, request: pytest.FixtureRequest, *, postgres: bool, captures: int
) -> Iterator[sessionmaker[Session]]:
    """For a fixture to yield from: experiment "e" (running, a budget of $1) and `captures` captures
    (r0, r1, …), on a migrated Postgres (the `pg_migrated` fixture) or a new SQLite file."""
    if postgres:
        engine = create_engine(request.getfixturevalue("pg_migrated"))
    else:
        engine = create_engine(f"sqlite:///{tmp_path / 'budget.db'}")
        migrate.upgrade(engine)
    factory = session_factory(engine)
    with session_scope(factory) as session:
        session.add(Experiment(name="e", status="running", budget_usd=1.0))
        for i in range(captures):
            session.add(CapturedRequest(request_id=f"r{i}", captured_at=datetime(2026, 1, 1, tzinfo=UTC),
                                        service="s", api="anthropic.messages", request={}))  # fmt: skip
    yield factory
    engine.dispose()


def ledger_gaps(conn: sa.Connection) -> list[str]:
    """Each experiment's ledger figure that is not what its reservations add up to (empty: none): `replay_usd`
    the sum of each reservation's settled cost or, open, its hold; `unsettled` the open ones; `holdback_usd`
    their judge holdbacks."""
    res = BudgetReservation
    sums = (
        sa.select(
            res.experiment_id,
            sa.func.sum(sa.func.coalesce(res.settled_usd, res.reserved_usd)).label("replay_usd"),
            sa.func.count().filter(res.settled_usd.is_(None)).label("unsettled"),
            sa.func.sum(res.judge_usd).label("holdback_usd"),
        )
        .group_by(res.experiment_id)
        .subquery()
    )
    led = BudgetLedger
    rows = conn.execute(
        sa.select(led.experiment_id, led.replay_usd, led.unsettled, led.holdback_usd,
                  sums.c.replay_usd, sums.c.unsettled, sums.c.holdback_usd)
        .outerjoin(sums, sums.c.experiment_id == led.experiment_id)
    ).all()  # fmt: skip
    gaps = []
    for eid, replay, unsettled, holdback, replay_sum, unsettled_sum, holdback_sum in rows:
        figures = {"replay_usd": (replay, replay_sum or 0.0), "unsettled": (unsettled, unsettled_sum or 0),
                   "holdback_usd": (holdback, holdback_sum or 0.0)}  # fmt: skip
        gaps += [
            f"experiment {eid}: ledger {name} {kept}, its reservations {summed}"
            for name, (kept, summed) in figures.items()
            if not math.isclose(kept, summed, rel_tol=1e-9, abs_tol=1e-12)
        ]
    return gaps
