"""Work leases: one captured request with all its arms, with its budget reserved in the same transaction.

A claim locks the experiment row (serialising budget decisions across workers), first takes over expired
leases of dead workers (`FOR UPDATE SKIP LOCKED`; their reservation already counts as spent), then picks new
captures matching the traffic selection, reserving each one's worst case before leasing it. Completion
writes every arm's replay row, settles the reservation to the real cost and marks the lease done in one
transaction, so a request is complete for every arm or not at all.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from shadowlab.budget import lock_experiment, reserve, settle
from shadowlab.db import session_scope
from shadowlab.experiment import TrafficSpec
from shadowlab.models import CapturedRequest, Replay, WorkLease, utcnow

__all__ = ["Claim", "Lease", "claim", "complete", "extend", "pending_leases", "selection_filter"]

ClaimState = Literal["leased", "empty", "wait", "exhausted", "stopped"]
_HASH_MULTIPLIER = 2654435761  # Knuth's multiplicative hash: sampling by id, deterministic on every database
_HASH_SPACE = 2**32


@dataclass(frozen=True)
class Lease:
    lease_id: int
    captured_request_id: int
    request_id: str
    api: str
    body: dict[str, Any]
    attempt: int


@dataclass(frozen=True)
class Claim:
    state: ClaimState
    leases: tuple[Lease, ...] = ()


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
    cost_of: Callable[[str, dict[str, Any]], float],
    judge_usd: float = 0.0,
) -> Claim:
    """Up to `limit` leases; `cost_of(api, body)` is the worst-case cost of all arms of one request,
    `judge_usd` of it the judge holdback."""
    with session_scope(factory) as session:
        experiment = lock_experiment(session, experiment_id)
        if experiment.status != "running":
            return Claim("stopped")
        deadline = utcnow() + timedelta(seconds=lease_s)
        leases = _recover_expired(session, experiment_id, worker_id, deadline, limit)
        if leases:
            return Claim("leased", leases)
        room = limit
        if traffic.max_requests is not None:
            taken = session.execute(
                sa.select(sa.func.count()).where(WorkLease.experiment_id == experiment_id)
            ).scalar_one()
            room = min(room, traffic.max_requests - taken)
            if room <= 0:
                return Claim("empty")
        cr = CapturedRequest
        taken_ids = sa.select(WorkLease.captured_request_id).where(WorkLease.experiment_id == experiment_id)
        rows = session.execute(
            sa.select(cr.id, cr.request_id, cr.api, cr.request)
            .where(*selection_filter(traffic), cr.id.not_in(taken_ids))
            .order_by(cr.captured_at, cr.id)
            .limit(room)
        ).all()
        if not rows:
            return Claim("empty")
        new: list[Lease] = []
        for row in rows:
            outcome = reserve(session, experiment, row.id, cost_of(row.api, row.request), judge_usd=judge_usd)
            if outcome != "reserved":
                return Claim("leased", tuple(new)) if new else Claim(outcome)
            lease = WorkLease(
                experiment_id=experiment_id, captured_request_id=row.id, worker_id=worker_id,
                deadline=deadline, attempts=1, done=False,
            )  # fmt: skip
            session.add(lease)
            session.flush()
            new.append(Lease(lease.id, row.id, row.request_id, row.api, row.request, 1))
        return Claim("leased", tuple(new))


def _recover_expired(
    session: Session, experiment_id: int, worker_id: str, deadline: Any, limit: int
) -> tuple[Lease, ...]:
    wl, cr = WorkLease, CapturedRequest
    expired = (
        session.execute(
            sa.select(wl)
            .where(wl.experiment_id == experiment_id, wl.done.is_(False), wl.deadline < utcnow())
            .order_by(wl.deadline)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        .scalars()
        .all()
    )
    leases = []
    for lease in expired:
        lease.worker_id, lease.deadline, lease.attempts = worker_id, deadline, lease.attempts + 1
        row = session.execute(
            sa.select(cr.request_id, cr.api, cr.request).where(cr.id == lease.captured_request_id)
        ).one()
        leases.append(Lease(lease.id, lease.captured_request_id, row.request_id, row.api, row.request,
                            lease.attempts))  # fmt: skip
    return tuple(leases)


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
    factory: sessionmaker[Session],
    *,
    experiment_id: int,
    lease: Lease,
    rows: Sequence[dict[str, Any]],
    judge_usd: float,
) -> None:
    """Write the arms' replays (a row that exists already stays), settle, and mark the lease done."""
    with session_scope(factory) as session:
        dialect = session.get_bind().dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        session.execute(insert(Replay).values(list(rows)).on_conflict_do_nothing())
        cost = session.execute(
            sa.select(sa.func.coalesce(sa.func.sum(Replay.cost_usd), 0.0)).where(
                Replay.experiment_id == experiment_id, Replay.captured_request_id == lease.captured_request_id
            )
        ).scalar_one()
        settle(session, experiment_id, lease.captured_request_id, float(cost or 0.0) + judge_usd)
        session.execute(sa.update(WorkLease).where(WorkLease.id == lease.lease_id).values(done=True))


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
