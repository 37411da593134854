"""The experiment budget as a ledger: reserve the worst case before work starts, settle to the real cost.

`budget_ledgers` keeps one experiment's committed money as running sums, moved by conditional updates (the
row and its moves: `shadowlab.budget_ledger`):

    committed = replay_usd + max(0, judge_usd − holdback_usd)

`replay_usd` holds replay reservations at their worst case until settled, then at their real cost (the
judge holdback, the spec's `judge_usd_per_request`, included: money set aside so replays cannot spend what
judging needs); `judge_usd` the judge calls likewise, drawing on the pooled holdback first. A batch of
requests is reserved with one statement (`committed + x <= budget` in its WHERE) and settled with one
(`+ actual − reserved`), so concurrent replayers and scorers never commit more than the budget and no
request reads the whole experiment; a batch of judge calls likewise (`shadowlab.budget_judges`).
`budget_reservations` and `judge_calls` keep every row for audit and crash recovery: a reservation whose
worker died counts at its worst case for good (its calls may have gone out and been billed): the worker that
takes its lease over charges it and reserves its own attempt afresh (`shadowlab.budget_recovery`); a judge
call unsettled past its deadline (its scorer died) counts at its worst case for good.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from shadowlab import store
from shadowlab.budget_ledger import (
    EPSILON,
    LEDGER,
    MOVES,
    RACES,
    RESERVATIONS,
    Reservation,
    ReserveOutcome,
    fitting,
    ledger_row,
    ledger_total,
    refuse,
)
from shadowlab.db import pg_unnest
from shadowlab.errors import ShadowlabError
from shadowlab.models import BudgetLedger, Experiment, utcnow
from shadowlab.pricing import PriceTable

# fmt: off
__all__ = [
    "ArmCall", "BudgetError", "Reservation", "ReserveOutcome", "committed_usd", "lock_experiment",
    "pg_reserve", "pg_settle", "release_batch", "reserve", "reserve_batch", "set_budget", "settle",
    "settle_batch", "worst_case_usd",
]
# fmt: on


@dataclass(frozen=True)
class ArmCall:
    """What one arm's call can cost at most: its model, input estimate (`usage.estimate_input_tokens`) and
    output cap."""

    model: str
    input_tokens: int
    max_output_tokens: int


def worst_case_usd(calls: Iterable[ArmCall], prices: PriceTable, judge_usd: float = 0.0) -> float:
    """Every arm at its output cap, input at the dearest input rate (cache writes cost more than input; a
    long-context tier more still: every tier of the price counts)."""
    total = judge_usd
    for call in calls:
        price = prices.price(call.model)
        total += (
            call.input_tokens * price.dearest_input_rate()
            + call.max_output_tokens * price.dearest_output_rate()
        )
    return total


def lock_experiment(session: Session, experiment_id: int) -> Experiment:
    """Lock the experiment row for this transaction (status changes; the ledger no longer needs it)."""
    return store.experiments.by_id(experiment_id, session=session, lock=True)


def committed_usd(session: Session, experiment_id: int) -> float:
    """Settled cost plus the worst case of everything still in flight, judge calls included (one row)."""
    ledger = session.get(BudgetLedger, experiment_id, populate_existing=True)
    return 0.0 if ledger is None else ledger_total(ledger.replay_usd, ledger.holdback_usd, ledger.judge_usd)


class BudgetError(ShadowlabError):
    """A budget the experiment cannot take: not a positive amount, below what it committed, or concluded."""

    exit_code = 2


def set_budget(
    session: Session,
    experiment: Experiment,
    usd: float,
    *,
    by: str = store.changes.LOCAL_USER,
    reason: str | None = None,
) -> float:
    """Give the experiment a budget of `usd` (the spec's `budget.usd` too); returns the one it had (0: none).
    Refused below what is committed already, lower than the budget while it runs, and for a concluded
    experiment. A `budget_exhausted` experiment stays so until `resume`. Recorded in the experiment's
    changes as `by`'s (`shadowlab.store.changes`)."""
    if not (math.isfinite(usd) and usd > 0):
        raise BudgetError(f"budget: expected a positive amount of USD, found {usd}")
    if experiment.status == "concluded":
        raise BudgetError(f"experiment {experiment.name!r} is concluded: its budget no longer matters")
    if experiment.status == "running" and experiment.budget_usd is not None and usd < experiment.budget_usd:
        # reservations do not lock the experiment row: one made under the old budget could land after the
        # check below and commit more than the new budget
        raise BudgetError(f"experiment {experiment.name!r} is running: pause it before lowering its budget")
    committed = committed_usd(session, experiment.id)
    if usd + EPSILON < committed:
        raise BudgetError(
            f"budget: expected at least the ${committed:.4f} experiment {experiment.name!r} has committed, "
            f"found ${usd:g}"
        )
    before = experiment.budget_usd
    experiment.budget_usd = usd
    spec = dict(experiment.spec or {})
    spec["budget"] = {**dict(spec.get("budget") or {}), "usd": usd}
    experiment.spec = spec
    after = store.changes.budget_text(usd) or ""
    store.changes.record(
        experiment, "budget", store.changes.budget_text(before), after, by=by, reason=reason, session=session
    )
    return before or 0.0


def reserve_batch(
    session: Session, experiment: Experiment, items: Sequence[Reservation]
) -> tuple[int, ReserveOutcome]:
    """Reserve the longest prefix of `items` that fits, with one conditional update of the ledger; (how many,
    outcome). `wait`: none fits, but may once work in flight settles; `exhausted`: nothing is in flight and
    none fits, so a running experiment is now `budget_exhausted`."""
    budget = experiment.budget_usd
    if _move(session, experiment.id, budget, items):  # the usual case: the whole batch fits
        return len(items), "reserved"
    for _ in range(RACES):
        ledger = ledger_row(session, experiment.id)
        count = len(items) if budget is None else fitting(ledger, budget, items)
        if count == 0:
            return 0, refuse(session, experiment, ledger) if items else "reserved"
        if _move(session, experiment.id, budget, items[:count]):
            return count, "reserved"
    return 0, "wait"


# Postgres: a batch's reservation rows as arrays, one statement whatever the batch size (an executemany sends
# one statement per row).
_RESERVE_TYPES = {"captured_request_id": "bigint", "reserved_usd": "float8", "judge_usd": "float8"}
_PG_RESERVE = sa.text(
    f"INSERT INTO budget_reservations (experiment_id, created_at, {', '.join(_RESERVE_TYPES)}) "
    f"SELECT :e, :now, {', '.join(_RESERVE_TYPES)} FROM {pg_unnest(_RESERVE_TYPES, 'r')}"
)


def _pg_move(bounded: bool) -> sa.TextClause:
    """Postgres: `_ledger_move` and the reservation rows in one statement (the rows are inserted only if the
    ledger moved); its one row counts the ledger rows moved (0: the batch did not fit)."""
    gap = "judge_usd - holdback_usd - CAST(:holdback AS float8)"
    fits = f" AND replay_usd + CAST(:amount AS float8) + CASE WHEN {gap} > 0 THEN {gap} ELSE 0 END <= :limit"
    return sa.text(
        "WITH moved AS (UPDATE budget_ledgers SET replay_usd = replay_usd + CAST(:amount AS float8), "
        "holdback_usd = holdback_usd + CAST(:holdback AS float8), "
        "unsettled = unsettled + CAST(:count AS int), "
        f"updated_at = :now WHERE experiment_id = :e{fits if bounded else ''} RETURNING experiment_id), "
        f"reserved AS ({_PG_RESERVE.text} WHERE EXISTS (SELECT FROM moved)) SELECT count(*) FROM moved"
    )


_PG_MOVES = {bounded: _pg_move(bounded) for bounded in (True, False)}


def pg_reserve(
    experiment_id: int, budget: float | None, items: Sequence[Reservation]
) -> tuple[sa.TextClause, dict[str, Any]]:
    """Postgres: the statement and parameters reserving all of `items` or none (`reserve_batch`'s usual case,
    for a caller on its own connection); its one row is 1 if the ledger moved."""
    params = {"e": experiment_id, "amount": sum(item.amount_usd for item in items), "count": len(items),
              "holdback": sum(item.judge_usd for item in items), "now": utcnow(),
              "limit": (budget or 0.0) + EPSILON,
              "captured_request_id": [item.captured_request_id for item in items],
              "reserved_usd": [float(item.amount_usd) for item in items],
              "judge_usd": [float(item.judge_usd) for item in items]}  # fmt: skip
    return _PG_MOVES[budget is not None], params


def _move(session: Session, experiment_id: int, budget: float | None, items: Sequence[Reservation]) -> bool:
    """One conditional update of the ledger for `items`, and their reservation rows if it fit."""
    now = utcnow()
    params = {"e": experiment_id, "amount": sum(item.amount_usd for item in items), "count": len(items),
              "holdback": sum(item.judge_usd for item in items), "now": now,
              "limit": (budget or 0.0) + EPSILON}  # fmt: skip
    if session.get_bind().dialect.name == "postgresql":  # one round trip
        return bool(session.execute(*pg_reserve(experiment_id, budget, items)).scalar_one())
    if session.execute(MOVES[budget is not None], params).first() is None:
        return False
    session.execute(
        sa.insert(RESERVATIONS),
        [{"experiment_id": experiment_id, "captured_request_id": item.captured_request_id,
          "reserved_usd": item.amount_usd, "judge_usd": item.judge_usd, "created_at": now}
         for item in items],
    )  # fmt: skip
    return True


def reserve(
    session: Session,
    experiment: Experiment,
    captured_request_id: int,
    amount_usd: float,
    *,
    judge_usd: float = 0.0,
) -> ReserveOutcome:
    """Reserve `amount_usd` (of which `judge_usd` is the judge holdback) for one request (`reserve_batch`)."""
    return reserve_batch(session, experiment, [Reservation(captured_request_id, amount_usd, judge_usd)])[1]


# Postgres: a batch of requests' costs as two arrays (the CASE per request of the SQLite statement is new SQL
# at each batch size, and past 50 parameters psycopg parses it again every time).
def pg_settle(costs: str) -> str:
    """Postgres: the end of a `WITH` statement that settles the open reservations of the requests in its CTE
    `costs` (columns `crid`, `usd`: captured request id, real cost; what dead attempts were charged is added)
    and moves the ledger by the difference, only if some settled (parameters `:e`, the experiment, and
    `:now`): a write can settle in the statement that computed the costs (`replayer.writes.complete`)."""
    return (
        "settled AS (UPDATE budget_reservations AS r SET settled_usd = c.usd + r.charged_usd, "
        f"settled_at = :now FROM {costs} AS c WHERE r.experiment_id = :e AND r.captured_request_id = c.crid "
        "AND r.settled_usd IS NULL RETURNING r.reserved_usd, r.settled_usd) "
        "UPDATE budget_ledgers AS l SET replay_usd = l.replay_usd + d.delta, unsettled = l.unsettled - d.n, "
        "updated_at = :now FROM (SELECT sum(settled_usd - reserved_usd) AS delta, count(*) AS n "
        "FROM settled) AS d WHERE l.experiment_id = :e AND d.n > 0"
    )


# The ledger moves by the difference in the same statement (one round trip), and only if some settled.
_PG_SETTLE = sa.text(
    f"WITH costs AS (SELECT ids AS crid, usd FROM {pg_unnest({'ids': 'bigint', 'usd': 'float8'}, 's')}), "
    + pg_settle("costs")
)


_SETTLE_LEDGER = (
    sa.update(LEDGER)
    .where(LEDGER.c.experiment_id == sa.bindparam("e"))
    .values(replay_usd=LEDGER.c.replay_usd + sa.bindparam("delta", type_=sa.Float),
            unsettled=LEDGER.c.unsettled - sa.bindparam("count", type_=sa.Integer),
            updated_at=sa.bindparam("now", type_=sa.DateTime(timezone=True)))
)  # fmt: skip


def settle_batch(session: Session, experiment_id: int, actual_usd: dict[int, float]) -> None:
    """Replace the worst case of these requests' reservations (captured request id → real cost) by what they
    cost, plus what dead attempts were charged (`budget_recovery`): the rows, then the ledger by the
    difference (Postgres: one statement; SQLite: one each). A reservation settled already stays as it is."""
    res = RESERVATIONS.c
    now = utcnow()
    if session.get_bind().dialect.name == "postgresql":  # arrays: one statement text for every batch size
        arrays = {"ids": list(actual_usd), "usd": [float(usd) for usd in actual_usd.values()]}
        session.execute(_PG_SETTLE, arrays | {"e": experiment_id, "now": now})
        return
    settled = session.execute(
        sa.update(RESERVATIONS)
        .where(res.experiment_id == experiment_id, res.captured_request_id.in_(list(actual_usd)),
               res.settled_usd.is_(None))
        .values(settled_usd=sa.case(dict(actual_usd), value=res.captured_request_id) + res.charged_usd,
                settled_at=now)
        .returning(res.reserved_usd, res.settled_usd)
    ).all()  # fmt: skip
    if not settled:
        return
    delta = sum(row.settled_usd - row.reserved_usd for row in settled)
    session.execute(_SETTLE_LEDGER, {"e": experiment_id, "delta": delta, "count": len(settled), "now": now})


def release_batch(session: Session, experiment_id: int, captured_request_ids: Sequence[int]) -> None:
    """Take back these requests' open reservations as if never made (their work was given back unstarted:
    `replayer.writes.give_back`): the rows go, so a later claim reserves them afresh, and the ledger moves
    back by exactly what they held. A settled reservation stays."""
    if not captured_request_ids:
        return
    res = RESERVATIONS.c
    released = session.execute(
        sa.delete(RESERVATIONS)
        .where(res.experiment_id == experiment_id, res.captured_request_id.in_(list(captured_request_ids)),
               res.settled_usd.is_(None))
        .returning(res.reserved_usd, res.judge_usd)
    ).all()  # fmt: skip
    if not released:
        return
    led = LEDGER.c
    session.execute(
        sa.update(LEDGER)
        .where(led.experiment_id == experiment_id)
        .values(replay_usd=led.replay_usd - sum(row.reserved_usd for row in released),
                holdback_usd=led.holdback_usd - sum(row.judge_usd for row in released),
                unsettled=led.unsettled - len(released), updated_at=utcnow())
    )  # fmt: skip


def settle(session: Session, experiment_id: int, captured_request_id: int, actual_usd: float) -> None:
    """Replace one reservation's worst case by what the request really cost (`settle_batch`)."""
    settle_batch(session, experiment_id, {captured_request_id: actual_usd})
