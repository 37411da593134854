"""Claims against a cap (`traffic.max_requests`) on Postgres: claims that arrive together take turns, on a
thread (`leases.claim`) and on a worker's event loop (`claim_loop.claim_on_loop`)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from replayer.claim_loop import claim_on_loop
from replayer.leases import Claim, claim
from shadowlab import store
from shadowlab.db import create_engine, session_factory, session_scope
from shadowlab.experiment import parse_spec
from shadowlab.models import CapturedRequest, Experiment, WorkLease
from shadowlab.pg_async import AsyncStatements
from shadowlab.pricing import load_price_table

CAP = 5
SPEC = {
    "name": "capped",
    "control": {"name": "control", "provider": "anthropic", "model": "claude-haiku-4-5"},
    "candidates": [{"name": "cand", "provider": "openai", "model": "gpt-4o-mini"}],
    "allowed_providers": ["anthropic", "openai"],
    "traffic": {"max_requests": CAP},
    "budget": {"usd": 100},
    "plan": {"primary_metric": "judge_score", "min_sample": 10, "max_sample": 100},
}


@pytest.fixture
def factory(pg_migrated: str) -> Iterator[sessionmaker[Session]]:
    engine = create_engine(pg_migrated)
    factory = session_factory(engine)
    with session_scope(factory) as session:
        store.experiments.create(parse_spec(SPEC, "capped.yaml"), session=session)
        store.experiments.start("capped", load_price_table(), session=session)
        at = datetime(2026, 1, 5, tzinfo=UTC)
        session.add_all(
            CapturedRequest(request_id=f"r{i}", captured_at=at + timedelta(seconds=i), service="s",
                            api="anthropic.messages", request={"model": "m", "messages": []})
            for i in range(8)
        )  # fmt: skip
    yield factory
    engine.dispose()


def _traffic(factory: sessionmaker[Session]) -> tuple[int, Any]:
    with factory() as session:
        experiment_id = session.execute(sa.select(Experiment.id)).scalar_one()
        return experiment_id, store.experiments.spec_of(session.get_one(Experiment, experiment_id)).traffic


def _claims_waiting_together(
    factory: sessionmaker[Session], claim_four: Callable[[str], Claim | None]
) -> list[int]:
    """Two claims started while the experiment row is held: the leases each got once it is released."""
    engine = factory.kw["bind"]
    waiting = sa.text(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    # The holder is released before the pool waits for the claims (the contexts exit in reverse order).
    with ThreadPoolExecutor(2) as pool, engine.connect() as holder:
        # Hold the experiment row: both claims start, and both must wait for it before counting the leases.
        holder.execute(sa.select(Experiment.id).with_for_update())
        claims = [pool.submit(claim_four, worker) for worker in ("w1", "w2")]
        deadline = time.monotonic() + 10
        while _scalar(engine, waiting) < 2:  # a new transaction each time: pg_stat_activity is a snapshot
            assert time.monotonic() < deadline, "the two claims never waited for the experiment row"
            time.sleep(0.01)
        holder.rollback()
        got = [done.result() for done in claims]
    return sorted(len(claim.leases) if claim is not None else 0 for claim in got)


def test_claims_waiting_on_the_cap_together_lease_no_more_than_it(factory: sessionmaker[Session]) -> None:
    experiment_id, traffic = _traffic(factory)

    def claim_four(worker: str) -> Claim:
        return claim(factory, experiment_id=experiment_id, worker_id=worker, traffic=traffic, lease_s=60,
                     limit=4, cost_of=lambda *_: 0.001)  # fmt: skip

    assert _claims_waiting_together(factory, claim_four) == [1, 4]
    with factory() as session:
        assert session.execute(sa.select(sa.func.count()).select_from(WorkLease)).scalar_one() == CAP
    assert claim_four("w3").state == "empty"


def test_claims_on_the_loop_waiting_on_the_cap_together_lease_no_more_than_it(
    factory: sessionmaker[Session],
) -> None:
    experiment_id, traffic = _traffic(factory)
    # A first claim on a thread makes the budget ledger (a claim on the loop moves it, or leaves the claim to
    # the thread) and leases one request: four are left under the cap.
    first = claim(factory, experiment_id=experiment_id, worker_id="w0", traffic=traffic, lease_s=60, limit=1,
                  cost_of=lambda *_: 0.001)  # fmt: skip
    assert len(first.leases) == 1

    def claim_three(worker: str) -> Claim | None:
        async def on_loop() -> Claim | None:
            statements = AsyncStatements(factory.kw["bind"])
            try:
                return await claim_on_loop(
                    statements, experiment_id=experiment_id, worker_id=worker, traffic=traffic, lease_s=60,
                    limit=3, cost_of=lambda *_: 0.001, judge_usd=0.0, after=None,
                )  # fmt: skip
            finally:
                await statements.aclose()

        return asyncio.run(on_loop())

    assert _claims_waiting_together(factory, claim_three) == [1, 3]
    with factory() as session:
        leases = session.execute(sa.select(sa.func.count()).select_from(WorkLease)).scalar_one()
        reserved = session.execute(sa.text("SELECT count(*) FROM budget_reservations")).scalar_one()
    assert (leases, reserved) == (CAP, CAP)
    assert claim_three("w3") is None  # the cap is reached: left to the thread's claim, which says so


def _scalar(engine: sa.Engine, query: sa.TextClause) -> int:
    with engine.connect() as conn:
        return int(conn.execute(query).scalar_one())
