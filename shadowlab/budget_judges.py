"""The judge side of the experiment budget (`shadowlab.budget`): each judge call's worst case reserved before
it is sent, settled to its real cost after, one `judge_calls` row each, moving the ledger's `judge_usd`
(drawn on the replay holdback first). A batch of calls is reserved with one conditional update of the ledger
and one insert, settled with one update of the rows and one of the ledger; on Postgres a scorer's usual batch
(the last calls settled, the next reserved) is one statement (`reserve_judges_alone`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, load_only

from shadowlab.budget_ledger import (
    EPSILON,
    JUDGE_CALLS,
    LEDGER,
    RACES,
    ReserveOutcome,
    ledger_row,
    ledger_total,
    positive,
    refuse,
)
from shadowlab.db import driver_rows, json_rows, pg_json_rows, pg_unnest
from shadowlab.models import BudgetLedger, Experiment, JudgeCall, utcnow

# fmt: off
__all__ = [
    "JudgeHold", "JudgeRef", "judge_spend_usd", "reserve_judge", "reserve_judges", "reserve_judges_alone",
    "reserve_judges_alone_statement", "reserved_alone", "settle_and_reserve_judges", "settle_judge",
    "settle_judges",
]
# fmt: on


@dataclass(frozen=True)
class JudgeRef:
    """What a judge call is for: a replay (pointwise) or a request, candidate arm and order (pairwise)."""

    experiment_id: int
    scorer_name: str
    scorer_version: str
    captured_request_id: int | None = None
    replay_id: int | None = None
    arm_b_id: int | None = None
    order_shown: str | None = None


def judge_spend_usd(session: Session, experiment_id: int, scorer_name: str | None = None) -> float:
    """Judge calls' cost: settled ones at their real cost, unsettled ones at their worst case."""
    if scorer_name is None:
        ledger = session.get(BudgetLedger, experiment_id, populate_existing=True)
        return 0.0 if ledger is None else ledger.judge_usd
    jc = JudgeCall
    value = session.execute(
        sa.select(
            sa.func.coalesce(sa.func.sum(sa.func.coalesce(jc.settled_usd, jc.reserved_usd)), 0.0)
        ).where(jc.experiment_id == experiment_id, jc.scorer_name == scorer_name)
    ).scalar_one()
    return float(value)


@dataclass(frozen=True)
class JudgeHold:
    """One judge call to reserve: what it is for, its model, its worst case, and when an unsettled hold
    stops being waited for (its scorer died)."""

    ref: JudgeRef
    model: str
    amount_usd: float
    deadline: datetime


# Postgres: a batch of judge calls as arrays the server unnests (`db.pg_unnest`); the ids' nextval runs after
# the ORDER BY (a volatile default), so they follow the holds' order.
_HOLD_TYPES = {"scorer_name": "text", "scorer_version": "text", "model": "text", "order_shown": "text",
               "captured_request_id": "bigint", "replay_id": "bigint", "arm_b_id": "bigint",
               "reserved_usd": "float8", "deadline": "timestamptz"}  # fmt: skip
_HOLDS = ", ".join(_HOLD_TYPES)
_PG_RESERVE_JUDGES = sa.text(
    f"INSERT INTO judge_calls (experiment_id, created_at, {_HOLDS}) SELECT :e, :now, {_HOLDS} "
    f"FROM {pg_unnest(_HOLD_TYPES, 'h')} ORDER BY h.n RETURNING id"
)
_PG_SETTLE_JUDGES = sa.text(
    "UPDATE judge_calls SET settled_usd = s.usd, settled_at = :now "
    f"FROM {pg_unnest({'id': 'bigint', 'usd': 'float8'}, 's')} "
    "WHERE judge_calls.id = s.id AND judge_calls.settled_usd IS NULL "
    "RETURNING judge_calls.experiment_id, judge_calls.reserved_usd, judge_calls.settled_usd"
)

# Postgres, a scorer process's usual batch as one statement that is its own transaction: its last calls
# settled, the ledger moved by their difference plus this batch's worst case, and the batch's rows inserted,
# if all of the batch fits; else nothing changes. The calls to settle are locked as they are read, so their
# difference is the one their settlement makes.
# The batch travels as JSON (`db.pg_json_rows`) and goes straight to the driver (`db.driver_rows`): this runs
# at every wave of every scorer.
_SETTLE_TYPES = {"settle_id": "bigint", "usd": "float8"}
_PG_RESERVE_ALONE = sa.text(
    "WITH pending AS (SELECT judge_calls.id, s.usd, s.usd - judge_calls.reserved_usd AS d FROM judge_calls "
    f"JOIN {pg_json_rows(_SETTLE_TYPES, 's', 'settles')} ON judge_calls.id = s.settle_id "
    "WHERE judge_calls.experiment_id = :e AND judge_calls.settled_usd IS NULL FOR UPDATE OF judge_calls), "
    "delta AS (SELECT coalesce(sum(d), 0) AS d FROM pending), "
    "moved AS (UPDATE budget_ledgers l SET judge_usd = l.judge_usd + delta.d + :x, updated_at = :now "
    "FROM delta "
    "WHERE l.experiment_id = :e AND l.replay_usd + greatest(l.judge_usd + delta.d + :x - l.holdback_usd, 0) "
    "<= (SELECT coalesce(budget_usd, 'Infinity') FROM experiments WHERE id = :e) + :eps "
    "RETURNING l.experiment_id), "
    "settled AS (UPDATE judge_calls SET settled_usd = pending.usd, settled_at = :now FROM pending "
    "WHERE judge_calls.id = pending.id AND EXISTS (SELECT FROM moved)), "
    f"held AS (INSERT INTO judge_calls (experiment_id, created_at, {_HOLDS}) SELECT :e, :now, {_HOLDS} "
    f"FROM {pg_json_rows(_HOLD_TYPES, 'h', 'holds')} WHERE EXISTS (SELECT FROM moved) ORDER BY h.n "
    "RETURNING id) "
    "SELECT ARRAY(SELECT id FROM held ORDER BY id)"
)


def _judges_fitting(ledger: BudgetLedger, budget: float, holds: Sequence[JudgeHold]) -> int:
    judge = ledger.judge_usd
    for count, hold in enumerate(holds):
        judge += hold.amount_usd
        if ledger_total(ledger.replay_usd, ledger.holdback_usd, judge) > budget + EPSILON:
            return count
    return len(holds)


_LED = LEDGER.c
_ADD = sa.bindparam("x", type_=sa.Float)
# The ledger's moves, built once (a batch of reservations every wave) with their values bound: `x` the amount,
# `limit` the budget (infinite when there is none).
_MOVE_JUDGES = (
    sa.update(LEDGER)
    .where(_LED.experiment_id == sa.bindparam("e"),
           _LED.replay_usd + positive(_LED.judge_usd + _ADD - _LED.holdback_usd) <= sa.bindparam("limit"))
    .values(judge_usd=_LED.judge_usd + _ADD, updated_at=sa.bindparam("now"))
    .returning(_LED.experiment_id)
)  # fmt: skip
_SETTLE_LEDGER = (
    sa.update(LEDGER)
    .where(_LED.experiment_id == sa.bindparam("e"))
    .values(judge_usd=_LED.judge_usd + _ADD, updated_at=sa.bindparam("now"))
)


def _move_judges(session: Session, experiment_id: int, budget: float | None, amount: float) -> bool:
    limit = float("inf") if budget is None else budget + EPSILON
    moved = session.execute(_MOVE_JUDGES, {"e": experiment_id, "x": amount, "limit": limit, "now": utcnow()})
    return moved.first() is not None


def reserve_judges(
    session: Session, experiment: Experiment, holds: Sequence[JudgeHold]
) -> tuple[list[int], ReserveOutcome]:
    """Reserve the longest prefix of `holds` that fits, with one conditional update of the ledger and one
    insert of their `judge_calls` rows: (their row ids in order, the outcome of the rest — `wait` or
    `exhausted` as in `reserve_batch`)."""
    count, rest = _move_judges_fitting(session, experiment, holds)
    jc, now = JUDGE_CALLS, utcnow()
    rows = _hold_rows(experiment.id, holds[:count], now)
    if not rows:
        return [], rest
    if session.get_bind().dialect.name == "postgresql":
        ids = session.execute(_PG_RESERVE_JUDGES, _arrays(rows) | {"e": experiment.id, "now": now}).scalars()
        return sorted(ids), rest
    found = session.execute(sa.insert(jc).returning(jc.c.id, sort_by_parameter_order=True), rows).scalars()
    return list(found), rest


def _hold_rows(experiment_id: int, holds: Sequence[JudgeHold], now: datetime) -> list[dict[str, Any]]:
    """The `judge_calls` rows of `holds`."""
    return [
        {"experiment_id": experiment_id, "scorer_name": h.ref.scorer_name,
         "scorer_version": h.ref.scorer_version, "model": h.model,
         "captured_request_id": h.ref.captured_request_id, "replay_id": h.ref.replay_id,
         "arm_b_id": h.ref.arm_b_id, "order_shown": h.ref.order_shown, "reserved_usd": float(h.amount_usd),
         "deadline": h.deadline, "created_at": now}
        for h in holds
    ]  # fmt: skip


def _arrays(rows: Sequence[Mapping[str, Any]]) -> dict[str, list[Any]]:
    """The `_HOLD_TYPES` columns of `rows`, one list each (Postgres arrays)."""
    return {column: [row[column] for row in rows] for column in _HOLD_TYPES}


def reserve_judges_alone(
    conn: sa.Connection, experiment_id: int, settles: Mapping[int, float], holds: Sequence[JudgeHold]
) -> list[int]:
    """Postgres, on a connection in autocommit: `settle_and_reserve_judges` in one statement (one round trip)
    if the whole batch fits: the holds' `judge_calls` ids in order; else nothing changes ([])."""
    return reserved_alone(driver_rows(conn, *reserve_judges_alone_statement(experiment_id, settles, holds)))


def reserve_judges_alone_statement(
    experiment_id: int, settles: Mapping[int, float], holds: Sequence[JudgeHold]
) -> tuple[sa.TextClause, dict[str, Any]]:
    """The statement of `reserve_judges_alone` and its parameters, for a caller that runs it on its own
    driver connection (`shadowlab.pg_async`); `reserved_alone` reads its rows."""
    now = utcnow()
    moving = {"e": experiment_id, "x": sum(h.amount_usd for h in holds), "eps": EPSILON, "now": now}
    settled = [{"settle_id": call_id, "usd": float(usd)} for call_id, usd in settles.items()]
    batch = {"settles": json_rows(settled, _SETTLE_TYPES),
             "holds": json_rows(_hold_rows(experiment_id, holds, now), _HOLD_TYPES)}  # fmt: skip
    return _PG_RESERVE_ALONE, batch | moving


def reserved_alone(rows: Sequence[Any]) -> list[int]:
    """The holds' `judge_calls` ids in order from the rows of `reserve_judges_alone_statement`; [] when the
    batch did not fit (nothing changed)."""
    return list(rows[0][0])


def settle_and_reserve_judges(
    session: Session, experiment_id: int, settles: Mapping[int, float], holds: Sequence[JudgeHold]
) -> tuple[list[int], ReserveOutcome]:
    """`settle_judges(settles)`, then `reserve_judges(holds)`: what the settlements give back may let the
    reservations fit."""
    if settles:
        settle_judges(session, settles)
    if not holds:
        return [], "reserved"
    experiment = session.scalars(
        sa.select(Experiment)
        .where(Experiment.id == experiment_id)
        .options(load_only(Experiment.budget_usd, Experiment.status))
    ).one()
    return reserve_judges(session, experiment, holds)


def _move_judges_fitting(
    session: Session, experiment: Experiment, holds: Sequence[JudgeHold]
) -> tuple[int, ReserveOutcome]:
    """Move the ledger by the longest prefix of `holds` that fits: (how many, the outcome of the rest)."""
    budget = experiment.budget_usd
    if not holds or _move_judges(session, experiment.id, budget, sum(h.amount_usd for h in holds)):
        return len(holds), "reserved"  # the usual case: the whole batch fits
    for _ in range(RACES):  # the ledger is missing, or not all fit: read it, then move what fits
        ledger = ledger_row(session, experiment.id)
        count = len(holds) if budget is None else _judges_fitting(ledger, budget, holds)
        if count == 0:
            return 0, refuse(session, experiment, ledger)
        if _move_judges(session, experiment.id, budget, sum(h.amount_usd for h in holds[:count])):
            return count, "reserved" if count == len(holds) else "wait"
    return 0, "wait"


def reserve_judge(
    session: Session, experiment: Experiment, ref: JudgeRef, model: str, amount_usd: float, deadline: datetime
) -> tuple[ReserveOutcome, int | None]:
    """Reserve one judge call's worst case (`reserve_judges`); the id of its `judge_calls` row."""
    ids, outcome = reserve_judges(session, experiment, [JudgeHold(ref, model, amount_usd, deadline)])
    return ("reserved", ids[0]) if ids else (outcome, None)


def settle_judges(session: Session, actual_usd: Mapping[int, float]) -> None:
    """Replace these judge calls' worst cases (`judge_calls` id → real cost; 0 when a call never reached the
    provider) by what they cost: the rows, then each experiment's ledger by the difference. A call settled
    already stays as it is."""
    jc = JUDGE_CALLS.c
    now = utcnow()
    if session.get_bind().dialect.name == "postgresql":
        costs = [float(value) for value in actual_usd.values()]
        arrays = {"id": list(actual_usd), "usd": costs, "now": now}
        settled = session.execute(_PG_SETTLE_JUDGES, arrays).all()
    else:
        settled = session.execute(
            sa.update(JUDGE_CALLS)
            .where(jc.id.in_(list(actual_usd)), jc.settled_usd.is_(None))
            .values(settled_usd=sa.case(dict(actual_usd), value=jc.id), settled_at=now)
            .returning(jc.experiment_id, jc.reserved_usd, jc.settled_usd)
        ).all()
    delta: dict[int, float] = {}
    for row in settled:
        delta[row.experiment_id] = delta.get(row.experiment_id, 0.0) + row.settled_usd - row.reserved_usd
    for experiment_id, usd in sorted(delta.items()):
        session.execute(_SETTLE_LEDGER, {"e": experiment_id, "x": usd, "now": now})


def settle_judge(session: Session, call_id: int, actual_usd: float) -> None:
    """Replace a judge call's worst case by what it really cost (`settle_judges`)."""
    settle_judges(session, {call_id: actual_usd})
