"""Work leases: one captured request with all its arms, claimed in batches (written back: `replayer.writes`).

A claim first takes over expired leases of dead workers (`FOR UPDATE SKIP LOCKED`; the dead attempt's
reservation is charged for good and the new one reserved afresh: `shadowlab.budget_recovery`; a worker looks
for them now and then and whenever nothing new is left), then reads the next captures of the selection after
the worker's cursor over (captured_at, id), `LIMIT k FOR UPDATE SKIP LOCKED` (two workers never read the same
captures at once; a per-row test probes the unique lease index, so no claim rescans all leases for each row,
whatever the planner's statistics), reserves their worst case in the budget ledger with one conditional
update, and inserts the leases with one `INSERT … SELECT` (`RETURNING` their ids), all in one transaction. A
lease taken over from a stopped worker (`writes.give_back`) carries the arms it replayed already
(`Lease.done_arms`): only the others are replayed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, load_only, sessionmaker

from shadowlab.budget import Reservation, reserve_batch
from shadowlab.budget_recovery import Takeover, take_over
from shadowlab.db import session_scope
from shadowlab.experiment import TrafficSpec
from shadowlab.models import CapturedRequest, Experiment, Replay, WorkLease, utcnow

__all__ = ["Claim", "Cursor", "Lease", "claim", "selection_filter"]

log = logging.getLogger("replayer")

ClaimState = Literal["leased", "empty", "wait", "exhausted", "stopped"]
Cursor = tuple[datetime, int]  # (captured_at, id) of the last capture this worker leased
CostOf = Callable[[int, str, dict[str, Any]], float]  # (captured request id, api, body) → worst case, USD
_HASH_MULTIPLIER = 2654435761  # Knuth's multiplicative hash: sampling by id, deterministic on every database
_HASH_SPACE = 2**32
_RACES = 4  # reads in one claim whose captures all went to other workers meanwhile
# Core table for the hot statement: the ORM's bulk machinery costs more than the SQL there.
_LEASES = cast(sa.Table, WorkLease.__table__)


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
        recovery = (experiment, worker_id, deadline, limit, cost_of, judge_usd)
        recovered = _recover_expired(session, *recovery) if recover else ()
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
                late = () if recover else _recover_expired(session, *recovery)
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
    inserted = session.execute(lease_insert(_insert_of(session), experiment_id, worker_id, deadline, rows))
    return leased(rows, inserted.all())


def lease_insert(
    insert: Any, experiment_id: int, worker_id: str, deadline: datetime, rows: Sequence[Any]
) -> Any:
    """The leases of `rows` (captures) with `insert` (the dialect's), none taken by another worker meanwhile;
    `RETURNING` (capture, lease id)."""
    wl, cr = _LEASES.c, CapturedRequest
    # INSERT … SELECT by id: a short statement whatever the batch (a multi-row VALUES of k × 6 parameters is
    # parsed anew by the driver every time: its query cache skips statements of more than 50 parameters).
    picked = sa.select(
        sa.literal(experiment_id), cr.id, sa.literal(worker_id),
        sa.literal(deadline, sa.DateTime(timezone=True)), sa.literal(1), sa.false(),
    ).where(cr.id.in_([row.id for row in rows]))  # fmt: skip
    columns = [wl.experiment_id, wl.captured_request_id, wl.worker_id, wl.deadline, wl.attempts, wl.done]
    return (
        insert(_LEASES).from_select(columns, picked).on_conflict_do_nothing()
        .returning(wl.captured_request_id, wl.id)
    )  # fmt: skip


def leased(rows: Sequence[Any], inserted: Sequence[Any]) -> list[tuple[Any, int]]:
    """(capture, lease id) of each of `rows` that `lease_insert` leased, in their order."""
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
    return session.execute(next_captures(experiment_id, traffic, after, room)).all()


def next_captures(
    experiment_id: int, traffic: TrafficSpec, after: Cursor | None, room: int
) -> sa.Select[Any]:
    """The next `room` captures of the selection after `after` not leased yet, locked (`SKIP LOCKED`)."""
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
    return (
        sa.select(cr.id, cr.request_id, cr.api, cr.request, cr.captured_at)
        .where(*conditions)
        .order_by(cr.captured_at, cr.id)
        .limit(room)
        .with_for_update(skip_locked=True, of=cr)
    )


def _recover_expired(
    session: Session,
    experiment: Experiment,
    worker_id: str,
    deadline: datetime,
    limit: int,
    cost_of: CostOf,
    judge_usd: float,
) -> tuple[Lease, ...]:
    """Take over expired leases: their dead attempts charged, the new ones reserved in the budget
    (`shadowlab.budget_recovery.take_over`); one that cannot be paid for waits, or is done with the arms it
    has."""
    wl, cr = WorkLease, CapturedRequest
    expired = session.execute(
        sa.select(wl.id)
        .where(wl.experiment_id == experiment.id, wl.done.is_(False), wl.deadline < utcnow())
        .order_by(wl.deadline)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).scalars().all()  # fmt: skip
    if not expired:
        return ()
    rows = session.execute(
        sa.select(wl.id, wl.captured_request_id, wl.attempts, cr.request_id, cr.api, cr.request)
        .join(cr, cr.id == wl.captured_request_id)
        .where(wl.id.in_(expired))
        .order_by(wl.deadline)
    ).all()
    done = _done_arms(session, experiment.id, [r.captured_request_id for r in rows])
    # The new attempt's worst case: every arm's (those done too: over, never under), without the holdback.
    items = [
        Takeover(crid, done[crid][1], cost_of(crid, r.api, r.request) - judge_usd)
        for r in rows for crid in [r.captured_request_id]
    ]  # fmt: skip
    outcome = take_over(session, experiment, items)
    lease_of = {r.captured_request_id: r.id for r in rows}
    if outcome.dropped:
        session.execute(
            sa.update(wl).where(wl.id.in_([lease_of[crid] for crid in outcome.dropped])).values(done=True)
        )
        log.warning(
            "%d requests of dead workers not replayed again: their calls may have been billed, and the "
            "budget cannot pay for them twice (done with the arms they have)", len(outcome.dropped),
        )  # fmt: skip
    taken = set(outcome.taken)
    if not taken:
        return ()
    session.execute(
        sa.update(wl)
        .where(wl.id.in_([lease_of[crid] for crid in taken]))
        .values(worker_id=worker_id, deadline=deadline, attempts=wl.attempts + 1)
    )
    return tuple(
        Lease(r.id, r.captured_request_id, r.request_id, r.api, r.request, r.attempts + 1,
              frozenset(done[r.captured_request_id][0]), done[r.captured_request_id][1])
        for r in rows if r.captured_request_id in taken
    )  # fmt: skip


def _done_arms(session: Session, experiment_id: int, crids: list[int]) -> dict[int, tuple[set[int], float]]:
    """The arms of these requests a stopped worker finished (`give_back`), and what their rows cost."""
    done: dict[int, tuple[set[int], float]] = {crid: (set(), 0.0) for crid in crids}
    finished = session.execute(
        sa.select(Replay.captured_request_id, Replay.arm_id, Replay.cost_usd)
        .where(Replay.experiment_id == experiment_id, Replay.captured_request_id.in_(crids))
    ).all()  # fmt: skip
    for crid, arm_id, cost in finished:
        arms, usd = done[crid]
        arms.add(arm_id)
        done[crid] = (arms, usd + (cost or 0.0))
    return done
