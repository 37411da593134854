"""Postgres: a worker's usual claim as one short transaction on its event loop (`shadowlab.pg_async`).

The usual claim (an experiment with no `max_requests`, no look for expired leases due, new captures found,
the whole batch within the budget) runs the statements of `leases.claim` (the experiment read, the captures
locked with `SKIP LOCKED`, the leases inserted, the ledger moved with the reservation rows) on the worker's
own connection, awaited on its loop: no executor thread waiting for the GIL of a loop that replays without
pause after each of them. Anything else rolls back and returns None, and the worker claims on a thread
(`leases.claim`: counts under the experiment's row lock, recovery, races, a batch that fits only in part).
"""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from replayer.leases import Claim, CostOf, Cursor, Lease, lease_insert, leased, next_captures
from shadowlab.budget import Reservation, pg_reserve
from shadowlab.experiment import TrafficSpec
from shadowlab.models import Experiment, utcnow
from shadowlab.pg_async import AsyncStatements

__all__ = ["claim_on_loop"]

_EXPERIMENT = sa.select(Experiment.status, Experiment.budget_usd).where(Experiment.id == sa.bindparam("e"))


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
    if traffic.max_requests is not None:  # the count must see the leases after the row lock's wait
        return None
    try:
        async with statements.transaction("claim") as tx:
            ((status, budget),) = await tx.rows(_EXPERIMENT, {"e": experiment_id})
            if status != "running":
                raise _NotUsual
            rows = await tx.rows(next_captures(experiment_id, traffic, after, limit))
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
