"""Work leases: one captured request with all its arms, claimed and completed in batches.

A claim first takes over expired leases of dead workers (`FOR UPDATE SKIP LOCKED`; their reservation already
counts in the budget; a worker looks for them now and then and whenever nothing new is left), then reads the
next captures of the selection after the worker's cursor over (captured_at, id), `LIMIT k FOR UPDATE SKIP
LOCKED` (two workers never read the same captures at once; a per-row test probes the unique lease index, so no
claim rescans all leases for each row, whatever the planner's statistics), reserves their worst case in the
budget ledger with one conditional update, and inserts the leases with one `INSERT … SELECT` (`RETURNING`
their ids), all in one transaction. Completion writes the replay rows of a batch of finished requests, settles
their reservations and marks their leases done in one transaction (on Postgres one statement), so a request is
complete for every arm or not at all. A stopping worker gives back what it will not finish (`give_back`): a
request with some arms replayed keeps their rows and its reservation, and whoever takes its lease over replays
only the other arms (`Lease.done_arms`) and settles the reservation to the cost of all of them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, load_only, sessionmaker

from shadowlab.budget import Reservation, pg_settle, release_batch, reserve_batch, settle_batch
from shadowlab.db import json_rows, pg_json_rows, session_scope
from shadowlab.experiment import TrafficSpec
from shadowlab.models import CapturedRequest, Experiment, Replay, WorkLease, utcnow

__all__ = ["Claim", "Cursor", "Finished", "Lease", "claim", "complete", "extend", "give_back",
           "pending_leases", "selection_filter"]  # fmt: skip

ClaimState = Literal["leased", "empty", "wait", "exhausted", "stopped"]
Cursor = tuple[datetime, int]  # (captured_at, id) of the last capture this worker leased
CostOf = Callable[[int, str, dict[str, Any]], float]  # (captured request id, api, body) → worst case, USD
_HASH_MULTIPLIER = 2654435761  # Knuth's multiplicative hash: sampling by id, deterministic on every database
_HASH_SPACE = 2**32
_RACES = 4  # reads in one claim whose captures all went to other workers meanwhile
# Core tables for the hot statements: the ORM's bulk machinery costs more than the SQL there.
_LEASES = cast(sa.Table, WorkLease.__table__)
_REPLAYS = cast(sa.Table, Replay.__table__)
_DONE = sa.update(_LEASES).where(_LEASES.c.id.in_(sa.bindparam("ids", expanding=True))).values(done=True)


@dataclass(frozen=True)
class Lease:
    lease_id: int
    captured_request_id: int
    request_id: str
    api: str
    body: dict[str, Any]
    attempt: int
    done_arms: frozenset[int] = frozenset()  # taken over part done (`give_back`): arms with a row already
    prior_usd: float = 0.0  # ... and what those rows cost


@dataclass(frozen=True)
class Claim:
    state: ClaimState
    leases: tuple[Lease, ...] = ()
    cursor: Cursor | None = None  # where the next claim of this worker reads on


@dataclass(frozen=True)
class Finished:
    """A request replayed on every arm: its rows, to be written with others in one transaction."""

    lease: Lease
    rows: Sequence[dict[str, Any]]


def selection_filter(traffic: TrafficSpec) -> list[sa.ColumnElement[bool]]:
    """SQL conditions on captured_requests for the experiment's traffic selection."""
    cr = CapturedRequest
    conditions: list[sa.ColumnElement[bool]] = []
    for column, values in (
        (cr.service, traffic.services), (cr.route, traffic.routes), (cr.environment, traffic.environments),
        (cr.model, traffic.models), (cr.api, traffic.apis),
    ):  # fmt: skip
        if values:
            conditions.append(column.in_(values))
    if traffic.since is not None:
        conditions.append(cr.captured_at >= traffic.since)
    if traffic.until is not None:
        conditions.append(cr.captured_at < traffic.until)
    if traffic.sample_rate < 1:
        threshold = int(traffic.sample_rate * _HASH_SPACE)
        conditions.append((cr.id * _HASH_MULTIPLIER) % _HASH_SPACE < threshold)
    return conditions


def claim(
    factory: sessionmaker[Session],
    *,
    experiment_id: int,
    worker_id: str,
    traffic: TrafficSpec,
    lease_s: float,
    limit: int,
    cost_of: CostOf,
    judge_usd: float = 0.0,
    after: Cursor | None = None,
    recover: bool = True,
) -> Claim:
    """Up to `limit` leases, new ones read after `after`; `cost_of` gives the worst case of all arms of one
    request, `judge_usd` of it the judge holdback. `recover`: look for expired leases first (else only when
    nothing new is left: a worker looks now and then, not at every claim, and always before it idles)."""
    with session_scope(factory) as session:
        query = (
            sa.select(Experiment)
            .where(Experiment.id == experiment_id)
            .options(load_only(Experiment.status, Experiment.budget_usd))  # not its JSON spec, every claim
        )
        if traffic.max_requests is not None:  # claims counting against a cap take turns
            # NO KEY UPDATE: it still queues claims (and status changes), but not the other workers' writes of
            # replays and reservations, whose foreign-key checks take KEY SHARE on this row (FOR UPDATE held
            # each of them behind every claim's transaction).
            query = query.with_for_update(key_share=True)
        experiment = session.scalars(query).one()
        if experiment.status != "running":
            return Claim("stopped")
        deadline = utcnow() + timedelta(seconds=lease_s)
        recovered = _recover_expired(session, experiment_id, worker_id, deadline, limit) if recover else ()
        if recovered:
            return Claim("leased", recovered, after)
        room = limit
        if traffic.max_requests is not None:
            taken = session.execute(
                sa.select(sa.func.count()).where(WorkLease.experiment_id == experiment_id)
            ).scalar_one()
            room = min(room, traffic.max_requests - taken)
        for _ in range(_RACES):
            rows = _next_captures(session, experiment_id, traffic, after, room) if room > 0 else ()
            if not rows:
                late = () if recover else _recover_expired(session, experiment_id, worker_id, deadline, limit)
                return Claim("leased", late, after) if late else Claim("empty")
            fresh = _insert_leases(session, experiment_id, worker_id, deadline, rows)
            if fresh:
                return _reserve(session, experiment, fresh, cost_of, judge_usd, after)
            last = rows[-1]  # all taken meanwhile by another worker: read on after them
            after = (last.captured_at, last.id)
        return Claim("wait", cursor=after)


def _insert_leases(
    session: Session, experiment_id: int, worker_id: str, deadline: datetime, rows: Sequence[sa.Row[Any]]
) -> list[tuple[sa.Row[Any], int]]:
    """Lease what no other worker leased meanwhile (the unique lease index decides): (capture, lease id)."""
    wl, cr = _LEASES.c, CapturedRequest
    # INSERT … SELECT by id: a short statement whatever the batch (a multi-row VALUES of k × 6 parameters is
    # parsed anew by the driver every time: its query cache skips statements of more than 50 parameters).
    picked = sa.select(
        sa.literal(experiment_id), cr.id, sa.literal(worker_id),
        sa.literal(deadline, sa.DateTime(timezone=True)), sa.literal(1), sa.false(),
    ).where(cr.id.in_([row.id for row in rows]))  # fmt: skip
    columns = [wl.experiment_id, wl.captured_request_id, wl.worker_id, wl.deadline, wl.attempts, wl.done]
    inserted = session.execute(
        _insert_of(session)(_LEASES).from_select(columns, picked).on_conflict_do_nothing()
        .returning(wl.captured_request_id, wl.id)
    ).all()  # fmt: skip
    lease_of: dict[int, int] = {crid: lease_id for crid, lease_id in inserted}  # noqa: C416
    return [(row, lease_of[row.id]) for row in rows if row.id in lease_of]


def _insert_of(session: Session) -> Any:
    return postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert


def _reserve(
    session: Session,
    experiment: Experiment,
    fresh: list[tuple[sa.Row[Any], int]],
    cost_of: CostOf,
    judge_usd: float,
    after: Cursor | None,
) -> Claim:
    """Reserve the new leases' worst case; those the budget cannot cover are not leased after all."""
    items = [Reservation(row.id, cost_of(row.id, row.api, row.request), judge_usd) for row, _ in fresh]
    count, outcome = reserve_batch(session, experiment, items)
    if count < len(fresh):
        session.execute(
            sa.delete(WorkLease).where(WorkLease.id.in_([lease_id for _, lease_id in fresh[count:]]))
        )
    if count == 0:
        return Claim("exhausted" if outcome == "exhausted" else "wait", cursor=after)
    leases = tuple(
        Lease(lease_id, row.id, row.request_id, row.api, row.request, 1) for row, lease_id in fresh[:count]
    )
    last = fresh[count - 1][0]
    return Claim("leased", leases, (last.captured_at, last.id))


def _next_captures(
    session: Session, experiment_id: int, traffic: TrafficSpec, after: Cursor | None, room: int
) -> Sequence[sa.Row[Any]]:
    cr, wl = CapturedRequest, WorkLease
    leased = sa.exists().where(wl.experiment_id == experiment_id, wl.captured_request_id == cr.id)
    # A per-row test (Postgres: a SubPlan, probing the unique lease index or one hash of the experiment's
    # leases), not `NOT EXISTS`: that one is planned as an anti-join, and on tables not analysed yet (a new
    # database, or a new experiment's first minute) the planner expects one lease and rescans all of them for
    # every capture read: 34 ms of server CPU per claim at 1,200 captures, quadratic in the run.
    not_leased = sa.case((leased, sa.false()), else_=sa.true())
    conditions = [*selection_filter(traffic), not_leased]
    if after is not None:
        conditions.append(
            sa.tuple_(cr.captured_at, cr.id) > sa.tuple_(sa.literal(after[0]), sa.literal(after[1]))
        )
    return session.execute(
        sa.select(cr.id, cr.request_id, cr.api, cr.request, cr.captured_at)
        .where(*conditions)
        .order_by(cr.captured_at, cr.id)
        .limit(room)
        .with_for_update(skip_locked=True, of=cr)
    ).all()


def _recover_expired(
    session: Session, experiment_id: int, worker_id: str, deadline: datetime, limit: int
) -> tuple[Lease, ...]:
    wl, cr = WorkLease, CapturedRequest
    expired = session.execute(
        sa.select(wl.id)
        .where(wl.experiment_id == experiment_id, wl.done.is_(False), wl.deadline < utcnow())
        .order_by(wl.deadline)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).scalars().all()  # fmt: skip
    if not expired:
        return ()
    session.execute(
        sa.update(wl)
        .where(wl.id.in_(expired))
        .values(worker_id=worker_id, deadline=deadline, attempts=wl.attempts + 1)
    )
    rows = session.execute(
        sa.select(wl.id, wl.captured_request_id, wl.attempts, cr.request_id, cr.api, cr.request)
        .join(cr, cr.id == wl.captured_request_id)
        .where(wl.id.in_(expired))
    ).all()
    done: dict[int, tuple[set[int], float]] = {r.captured_request_id: (set(), 0.0) for r in rows}
    finished = session.execute(  # arms a stopped worker finished (`give_back`)
        sa.select(Replay.captured_request_id, Replay.arm_id, Replay.cost_usd)
        .where(Replay.experiment_id == experiment_id, Replay.captured_request_id.in_(list(done)))
    ).all()  # fmt: skip
    for crid, arm_id, cost in finished:
        arms, usd = done[crid]
        arms.add(arm_id)
        done[crid] = (arms, usd + (cost or 0.0))
    return tuple(
        Lease(r.id, r.captured_request_id, r.request_id, r.api, r.request, r.attempts,
              frozenset(done[r.captured_request_id][0]), done[r.captured_request_id][1])
        for r in rows
    )  # fmt: skip


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
    rows = [row for done in finished for row in done.rows]
    lease_ids = [done.lease.lease_id for done in finished]
    requests = [done.lease.captured_request_id for done in finished]
    bind = factory.kw["bind"]
    if bind.dialect.name == "postgresql":  # one statement, a transaction by itself (`_PG_COMPLETE`)
        params = {"rows": json_rows(rows, _REPLAY_TYPES), "ids": lease_ids, "crids": requests}
        with _alone(bind).connect() as conn:
            conn.execute(_PG_COMPLETE, params | {"judge": judge_usd, "e": experiment_id, "now": utcnow()})
        return
    with session_scope(factory) as session:
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
        session.execute(_DONE, {"ids": lease_ids})


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
_PG_COMPLETE = sa.text(
    "WITH marked AS (UPDATE work_leases SET done = true WHERE id = ANY(CAST(:ids AS bigint[]))), "
    f"written AS ({_PG_INSERT_SQL} RETURNING captured_request_id, cost_usd), "
    "costs AS (SELECT q.crid, CAST(:judge AS float8) + coalesce((SELECT sum(x.cost_usd) FROM replays AS x "
    "WHERE x.experiment_id = :e AND x.captured_request_id = q.crid), 0) + coalesce((SELECT sum(w.cost_usd) "
    "FROM written AS w WHERE w.captured_request_id = q.crid), 0) AS usd "
    "FROM unnest(CAST(:crids AS bigint[])) AS q(crid)), " + pg_settle("costs")
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
    """What a stopping worker will not finish, in one transaction. `unstarted` (no arm replayed): the leases
    are deleted and their reservations released, so any claim takes the requests afresh. `part_done`: the
    finished arms' rows are written, the reservation stays (the money they cost is spent) and the lease
    expires now, so the next claim takes it over and replays the other arms only."""
    wl = _LEASES.c
    with session_scope(factory) as session:
        if unstarted:
            released = session.execute(
                sa.delete(_LEASES)
                .where(wl.id.in_([lease.lease_id for lease in unstarted]), wl.worker_id == worker_id,
                       wl.done.is_(False))
                .returning(wl.captured_request_id)
            ).scalars().all()  # fmt: skip
            release_batch(session, experiment_id, released)
        rows = [row for done in part_done for row in done.rows]
        if rows:
            _insert_replays(session, rows)
        if part_done:
            session.execute(
                sa.update(_LEASES)
                .where(wl.id.in_([done.lease.lease_id for done in part_done]), wl.worker_id == worker_id,
                       wl.done.is_(False))
                .values(deadline=utcnow())
            )  # fmt: skip


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
