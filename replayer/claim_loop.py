"""Postgres: a worker's usual claim as one short transaction on its event loop (`shadowlab.pg_async`).

The usual claim (no look for expired leases due, new captures found, the whole batch within the budget)
runs the statements of `leases.claim` (the experiment read, under `max_requests` its row lock and the count of
its leases, the captures locked with `SKIP LOCKED`, the leases inserted, the ledger moved with the reservation
rows) on the worker's own connection, awaited on its loop: no executor thread waiting for the GIL of a loop
that replays without pause after each of them. Under `max_requests` the claims of all workers take turns on
the experiment's row, so a claim that waits for a thread's GIL holds every other worker's claim too. Anything
else rolls back and returns None, and the worker claims on a thread (`leases.claim`: recovery, races, a batch
that fits only in part, the cap reached).
"""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from replayer.leases import Claim, CostOf, Cursor, Lease, lease_insert, leased, next_captures
from shadowlab.budget import Reservation, pg_reserve
from shadowlab.experiment import TrafficSpec
from shadowlab.models import Experiment, WorkLease, utcnow
from shadowlab.pg_async import AsyncStatements

__all__ = ["claim_on_loop"]

_EXPERIMENT = sa.select(Experiment.status, Experiment.budget_usd).where(Experiment.id == sa.bindparam("e"))
# Claims against a cap take turns on the experiment's row (NO KEY UPDATE, as `leases.claim`: not the writes'
# foreign-key checks); the count is the next statement, so it sees the leases of the claim waited for (read
# committed: a snapshot per statement).
_LOCKED = _EXPERIMENT.with_for_update(key_share=True)
_TAKEN = sa.select(sa.func.count()).where(WorkLease.experiment_id == sa.bindparam("e"))


class _NotUsual(Exception):
    """The claim is not the usual one: roll back, the worker claims on a thread."""


async def claim_on_loop(
    statements: AsyncStatements,
    *,
    experiment_id: int,
    worker_id: str,
    traffic: TrafficSpec,
    lease_s: float,
    limit: int,
    cost_of: CostOf,
    judge_usd: float,
    after: Cursor | None,
) -> Claim | None:
    """`leases.claim(..., recover=False)` in its usual case, or None (nothing done: claim on a thread)."""
    cap = traffic.max_requests
    try:
        async with statements.transaction("claim") as tx:
            ((status, budget),) = await tx.rows(_EXPERIMENT if cap is None else _LOCKED, {"e": experiment_id})
            if status != "running":
                raise _NotUsual
            room = limit
            if cap is not None:
                ((taken,),) = await tx.rows(_TAKEN, {"e": experiment_id})
                room = min(room, cap - taken)
                if room <= 0:
                    raise _NotUsual  # the thread's claim says so (or takes over an expired lease)
            rows = await tx.rows(next_captures(experiment_id, traffic, after, room))
            if not rows:
                raise _NotUsual
            deadline = utcnow() + timedelta(seconds=lease_s)
            inserted = await tx.rows(
                lease_insert(postgresql.insert, experiment_id, worker_id, deadline, rows)
            )
            fresh = leased(rows, inserted)
            if not fresh:
                raise _NotUsual
            items = [
                Reservation(row.id, cost_of(row.id, row.api, row.request), judge_usd) for row, _ in fresh
            ]
            statement, params = pg_reserve(experiment_id, budget, items)
            ((moved,),) = await tx.rows(statement, params)
            if not moved:
                raise _NotUsual
    except _NotUsual:
        return None
    leases = tuple(
        Lease(lease_id, row.id, row.request_id, row.api, row.request, 1) for row, lease_id in fresh
    )
    last = fresh[-1][0]
    return Claim("leased", leases, (last.captured_at, last.id))
