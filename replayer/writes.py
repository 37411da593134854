"""What a worker writes back for its leases (`replayer.leases`): finished requests, heartbeats, give-backs.

Completion writes the replay rows of a batch of finished requests, settles their reservations and marks their
leases done in one transaction (on Postgres one statement), so a request is complete for every arm or not at
all. A stopping worker gives back what it will not finish (`give_back`): a request with some arms replayed
keeps their rows and its reservation (down to what is spent or may be), and whoever takes its lease over
replays only the other arms (`Lease.done_arms`) and settles the reservation to the cost of all of them.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects import sqlite
from sqlalchemy.orm import Session, sessionmaker

from replayer.leases import Lease
from shadowlab.budget import pg_settle, release_batch, settle_batch
from shadowlab.budget_recovery import hand_back
from shadowlab.db import json_rows, pg_json_rows, session_scope
from shadowlab.models import Replay, WorkLease, utcnow
from shadowlab.pg_async import AsyncStatements

__all__ = ["Finished", "complete", "complete_on_loop", "extend", "give_back", "pending_leases"]

# Core tables for the hot statements: the ORM's bulk machinery costs more than the SQL there.
_LEASES = cast(sa.Table, WorkLease.__table__)
_REPLAYS = cast(sa.Table, Replay.__table__)
_DONE = sa.update(_LEASES).where(_LEASES.c.id.in_(sa.bindparam("ids", expanding=True))).values(done=True)


@dataclass(frozen=True)
class Finished:
    """A request replayed on every arm: its rows, to be written with others in one transaction."""

    lease: Lease
    rows: Sequence[dict[str, Any]]
    cut_usd: float = 0.0  # given back: the worst case of its arms cut off mid-call (`replayer.stopping`)


def extend(factory: sessionmaker[Session], worker_id: str, lease_ids: Sequence[int], lease_s: float) -> None:
    """Heartbeat: push the deadline of this worker's unfinished leases."""
    if not lease_ids:
        return
    with session_scope(factory) as session:
        session.execute(
            sa.update(WorkLease)
            .where(WorkLease.id.in_(lease_ids), WorkLease.worker_id == worker_id, WorkLease.done.is_(False))
            .values(deadline=utcnow() + timedelta(seconds=lease_s))
        )


def complete(
    factory: sessionmaker[Session], *, experiment_id: int, finished: Sequence[Finished], judge_usd: float
) -> None:
    """Write the arms' replays of every finished request (a row that exists already stays), settle each
    reservation to the cost of its request's rows (plus the judge holdback), mark the leases done."""
    if not finished:
        return
    bind = factory.kw["bind"]
    if bind.dialect.name == "postgresql":  # one statement, a transaction by itself (`_PG_COMPLETE`)
        with _alone(bind).connect() as conn:
            conn.execute(_PG_COMPLETE, _pg_complete_params(experiment_id, finished, judge_usd))
        return
    rows = [row for done in finished for row in done.rows]
    requests = [done.lease.captured_request_id for done in finished]
    lease_ids = [done.lease.lease_id for done in finished]
    with session_scope(factory) as session:
        session.execute(_DONE, {"ids": lease_ids})  # leases first: the order of `_PG_COMPLETE`
        replays = _REPLAYS.c
        written = _insert_replays(session, rows)  # the count of rows written says whether all were new
        if written == len(rows):  # the usual case: every row is new, its cost is the one we hold
            costs = {done.lease.captured_request_id: done.lease.prior_usd for done in finished}
            for row in rows:
                costs[row["captured_request_id"]] += row["cost_usd"] or 0.0
        else:  # some were written already (a recovered lease finished twice): those rows count
            totals = session.execute(
                sa.select(replays.captured_request_id, sa.func.coalesce(sa.func.sum(replays.cost_usd), 0.0))
                .where(replays.experiment_id == experiment_id, replays.captured_request_id.in_(requests))
                .group_by(replays.captured_request_id)
            )  # fmt: skip
            costs = {crid: cost for crid, cost in totals}  # noqa: C416 (Result.tuples(): deprecated in 2.1)
        settle_batch(
            session, experiment_id, {crid: float(costs.get(crid) or 0.0) + judge_usd for crid in requests}
        )


async def complete_on_loop(
    statements: AsyncStatements, *, experiment_id: int, finished: Sequence[Finished], judge_usd: float
) -> None:
    """`complete` on Postgres as its one statement on the caller's event loop (`shadowlab.pg_async`: no
    executor thread waiting for the GIL of a loop that replays without pause)."""
    if finished:
        await statements.rows("write", _PG_COMPLETE, _pg_complete_params(experiment_id, finished, judge_usd))


def _pg_complete_params(experiment_id: int, finished: Sequence[Finished], judge_usd: float) -> dict[str, Any]:
    return {
        "rows": json_rows([row for done in finished for row in done.rows], _REPLAY_TYPES),
        "ids": [done.lease.lease_id for done in finished],
        "crids": [done.lease.captured_request_id for done in finished],
        "judge": judge_usd, "e": experiment_id, "now": utcnow(),
    }  # fmt: skip


@functools.lru_cache(maxsize=8)
def _alone(engine: sa.Engine) -> sa.Engine:
    """`engine` in autocommit: a one-statement transaction is one round trip, not three (BEGIN, it, COMMIT),
    each a wait for the GIL on return to a thread of a busy process."""
    return engine.execution_options(isolation_level="AUTOCOMMIT")


# Postgres: a write's rows as one JSON parameter (`db.pg_json_rows`): one statement, prepared once (an
# executemany is one INSERT per row: ~0.13 ms of Postgres CPU per request of two arms), and one `json.dumps`
# in C where an array per column was dumped by psycopg element by element (50-70 us of client CPU per row).
_REPLAY_TYPES = {
    "experiment_id": "bigint", "arm_id": "bigint", "captured_request_id": "bigint", "status": "text",
    "answer_text": "text", "tool_calls": "jsonb", "stop_reason": "text", "ttfb_ms": "float8",
    "ttft_ms": "float8", "latency_ms": "float8", "input_tokens": "bigint",
    "cache_creation_input_tokens": "bigint", "cache_read_input_tokens": "bigint", "output_tokens": "bigint",
    "reasoning_tokens": "bigint", "cost_usd": "float8", "error_code": "text", "error_detail": "text",
    "untranslated": "jsonb", "attempts": "bigint", "started_at": "timestamptz", "finished_at": "timestamptz",
}  # fmt: skip
# None in a JSON column is JSON null, as the JSON column type stores it (the record set reads it as SQL NULL).
_SELECTED = [f"coalesce(r.{c}, CAST('null' AS jsonb))" if kind == "jsonb" else f"r.{c}"
             for c, kind in _REPLAY_TYPES.items()]  # fmt: skip
_PG_INSERT_SQL = (
    f"INSERT INTO replays ({', '.join(_REPLAY_TYPES)}) SELECT {', '.join(_SELECTED)} "
    f"FROM {pg_json_rows(_REPLAY_TYPES, 'r', 'rows')} ORDER BY r.n ON CONFLICT DO NOTHING"
)
_PG_INSERT_REPLAYS = sa.text(_PG_INSERT_SQL)
# A write in one statement: leases done, rows inserted, each request's cost (rows from before it + those
# written + judge holdback) settled with the ledger (`budget.pg_settle`; written twice: the first settles).
# Locks in the order of every other transaction on them, leases, then reservations, then the ledger (a claim
# taking over an expired lease, `leases.claim`): a CTE no part of the statement reads runs after it, so the
# leases are marked first by making the costs wait for them (`costs`' one-time filter on `marked`); marked
# last, a take-over of a late worker's lease deadlocked with its write.
_PG_COMPLETE = sa.text(
    "WITH marked AS (UPDATE work_leases SET done = true WHERE id = ANY(CAST(:ids AS bigint[])) "
    "RETURNING id), "
    f"written AS ({_PG_INSERT_SQL} RETURNING captured_request_id, cost_usd), "
    "costs AS (SELECT q.crid, CAST(:judge AS float8) + coalesce((SELECT sum(x.cost_usd) FROM replays AS x "
    "WHERE x.experiment_id = :e AND x.captured_request_id = q.crid), 0) + coalesce((SELECT sum(w.cost_usd) "
    "FROM written AS w WHERE w.captured_request_id = q.crid), 0) AS usd "
    "FROM unnest(CAST(:crids AS bigint[])) AS q(crid) WHERE (SELECT count(*) FROM marked) >= 0), "
    + pg_settle("costs")
)


def _insert_replays(session: Session, rows: Sequence[dict[str, Any]]) -> int:
    """Insert replay rows (`rows.replay_row`), each ignored when its (arm, request) has one already: how many
    were written."""
    if session.get_bind().dialect.name == "postgresql":
        result = session.execute(_PG_INSERT_REPLAYS, {"rows": json_rows(rows, _REPLAY_TYPES)})
    else:
        insert = sqlite.insert(_REPLAYS).on_conflict_do_nothing()
        result = session.execute(insert.execution_options(preserve_rowcount=True), rows)
    return cast(sa.CursorResult[Any], result).rowcount


def give_back(
    factory: sessionmaker[Session],
    *,
    experiment_id: int,
    worker_id: str,
    unstarted: Sequence[Lease],
    part_done: Sequence[Finished],
) -> None:
    """What a stopping worker will not finish, in one transaction. `unstarted` (no arm replayed) on a first
    lease: the leases are deleted and their reservations released, so any claim takes the requests afresh.
    The others (`part_done`, and unstarted ones taken over from a dead worker, whose reservation keeps what it
    was charged): the finished arms' rows are written, the lease expires now, so the next claim takes it over
    and replays the other arms only, and the reservation keeps what is spent or may be (the rows, the arms
    cut off mid-call: `shadowlab.budget_recovery.hand_back`)."""
    wl = _LEASES.c
    fresh = [lease for lease in unstarted if lease.attempt <= 1]
    kept = [*part_done, *(Finished(lease, ()) for lease in unstarted if lease.attempt > 1)]
    # Every lease first, then reservations and the ledger: the order of a take-over (`leases.claim`), which
    # this worker's leases, expired while it stopped, may be in (the other order deadlocked with it).
    with session_scope(factory) as session:
        released = session.execute(
            sa.delete(_LEASES)
            .where(wl.id.in_([lease.lease_id for lease in fresh]), wl.worker_id == worker_id,
                   wl.done.is_(False))
            .returning(wl.captured_request_id)
        ).scalars().all() if fresh else []  # fmt: skip
        ours = session.execute(
            sa.update(_LEASES)
            .where(wl.id.in_([done.lease.lease_id for done in kept]), wl.worker_id == worker_id,
                   wl.done.is_(False))
            .values(deadline=utcnow())
            .returning(wl.captured_request_id)
        ).scalars().all() if kept else []  # fmt: skip
        release_batch(session, experiment_id, released)
        rows = [row for done in kept for row in done.rows]
        if rows:
            _insert_replays(session, rows)
        cut = {done.lease.captured_request_id: done.cut_usd for done in kept}
        hand_back(session, experiment_id, {crid: cut[crid] for crid in ours})


def pending_leases(factory: sessionmaker[Session], experiment_id: int) -> int:
    """Leases not done yet (held by live workers or waiting for recovery)."""
    with factory() as session:
        return int(
            session.execute(
                sa.select(sa.func.count()).where(
                    WorkLease.experiment_id == experiment_id, WorkLease.done.is_(False)
                )
            ).scalar_one()
        )
