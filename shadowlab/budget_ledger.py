"""The budget ledger's row and its conditional moves (`shadowlab.budget`): what the replay side (`budget`,
`budget_recovery`) and the judge side (`budget_judges`) share.

`budget_ledgers` keeps one experiment's committed money as running sums (`committed = replay_usd + max(0,
judge_usd − holdback_usd)`); every move is a conditional update whose WHERE holds the budget test, so writers
that read the ledger before another moved it read it again (`RACES` times) rather than overshoot.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from shadowlab import store
from shadowlab.models import BudgetLedger, BudgetReservation, Experiment, JudgeCall, utcnow

# fmt: off
__all__ = [
    "EPSILON", "JUDGE_CALLS", "LEDGER", "MOVES", "RACES", "RESERVATIONS", "Reservation", "ReserveOutcome",
    "fitting", "judging", "ledger_row", "ledger_total", "positive", "raise_holds", "refuse",
]
# fmt: on

ReserveOutcome = Literal["reserved", "wait", "exhausted"]
EPSILON = 1e-9
# Core tables for the hot statements: the ORM's bulk machinery costs more than the SQL there.
LEDGER = cast(sa.Table, BudgetLedger.__table__)
JUDGE_CALLS = cast(sa.Table, JudgeCall.__table__)
RESERVATIONS = cast(sa.Table, BudgetReservation.__table__)
RACES = 8  # another worker moved the ledger between our read and our update: read again, this often


@dataclass(frozen=True)
class Reservation:
    """One request's worst case (`judge_usd` of it the judge holdback)."""

    captured_request_id: int
    amount_usd: float
    judge_usd: float = 0.0


def positive(expr: sa.ColumnElement[float]) -> sa.ColumnElement[float]:
    return sa.case((expr > 0, expr), else_=0.0)


def ledger_row(session: Session, experiment_id: int) -> BudgetLedger:
    """The experiment's ledger as it is now (made at zero if it has none)."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    session.execute(
        insert(BudgetLedger)
        .values(experiment_id=experiment_id, replay_usd=0.0, holdback_usd=0.0, judge_usd=0.0, unsettled=0,
                updated_at=utcnow())
        .on_conflict_do_nothing()
    )  # fmt: skip
    ledger = session.get_one(BudgetLedger, experiment_id, populate_existing=True)
    return ledger


def ledger_total(replay: float, holdback: float, judge: float) -> float:
    return replay + max(0.0, judge - holdback)


def refuse(session: Session, experiment: Experiment, ledger: BudgetLedger) -> ReserveOutcome:
    """`wait` while work that may still settle below its worst case is in flight, else `exhausted`."""
    if ledger.unsettled > 0 or session.execute(sa.select(judging(experiment.id))).scalar_one():
        return "wait"
    if experiment.status == "running":
        experiment.status = "budget_exhausted"
        store.changes.record(
            experiment, "status", "running", "budget_exhausted", by=store.changes.SYSTEM,
            reason="the budget is spent: nothing more fits in it", session=session,
        )  # fmt: skip
    return "exhausted"


def judging(experiment_id: int) -> sa.Exists:
    """Whether a judge call of the experiment is in flight (unsettled, its deadline ahead): it may still
    settle below its hold."""
    jc = JudgeCall
    return sa.exists().where(
        jc.experiment_id == experiment_id, jc.settled_usd.is_(None), jc.deadline > utcnow()
    )


def fitting(ledger: BudgetLedger, budget: float, items: Sequence[Reservation]) -> int:
    """How many of `items`, in order, fit in the budget on top of what `ledger` holds."""
    replay, holdback = ledger.replay_usd, ledger.holdback_usd
    for count, item in enumerate(items):
        replay, holdback = replay + item.amount_usd, holdback + item.judge_usd
        if ledger_total(replay, holdback, ledger.judge_usd) > budget + EPSILON:
            return count
    return len(items)


def _ledger_move(bounded: bool) -> sa.Update:
    """The ledger's conditional update for a batch of reservations, built once (its values are parameters):
    `bounded` adds the budget test."""
    led = LEDGER.c
    amount, holdback = sa.bindparam("amount", type_=sa.Float), sa.bindparam("holdback", type_=sa.Float)
    fits = led.replay_usd + amount + positive(led.judge_usd - led.holdback_usd - holdback)
    return (
        sa.update(LEDGER)
        .where(led.experiment_id == sa.bindparam("e"), *([fits <= sa.bindparam("limit")] if bounded else []))
        .values(replay_usd=led.replay_usd + amount, holdback_usd=led.holdback_usd + holdback,
                unsettled=led.unsettled + sa.bindparam("count", type_=sa.Integer),
                updated_at=sa.bindparam("now", type_=sa.DateTime(timezone=True)))
        .returning(led.experiment_id)
    )  # fmt: skip


MOVES = {bounded: _ledger_move(bounded) for bounded in (True, False)}


def raise_holds(session: Session, experiment: Experiment, holds: Sequence[Reservation]) -> int | None:
    """Move the ledger by the longest prefix of `holds` that fits the budget, their reservation rows open
    already (a new attempt on them: `budget_recovery.take_over`; the rows are the caller's, the unsettled
    count and holdback stay): how many; None when other writers kept moving it (`RACES` reads), as
    `budget.reserve_batch`'s wait."""
    budget = experiment.budget_usd
    for _ in range(RACES):
        ledger = ledger_row(session, experiment.id)
        count = len(holds) if budget is None else fitting(ledger, budget, holds)
        if count == 0:
            return 0
        params = {"e": experiment.id, "amount": sum(h.amount_usd for h in holds[:count]), "holdback": 0.0,
                  "count": 0, "now": utcnow(), "limit": (budget or 0.0) + EPSILON}  # fmt: skip
        if session.execute(MOVES[budget is not None], params).first() is not None:
            return count
    return None
