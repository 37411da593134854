"""The experiment budget: reserve the worst case before work starts, settle to the real cost (DESIGN §5).

Committed money = settled reservations at their real cost + unsettled ones at their worst case, so a
reservation whose worker died counts as spent until its work is recovered and settled. `reserve` and
`reserve_judge` must run in the caller's transaction after it locked the experiment row (`lock_experiment`),
so concurrent workers (replayers and scorers) are serialised and can never commit more than the budget.

Judge calls (`judge_calls`) are reserved and settled one by one. Each replay reservation includes a judge
holdback (`judge_usd`, the spec's `judge_usd_per_request`): money set aside so replays cannot spend what
judging needs. Judge spend draws from the pooled holdback first, so

    committed = Σ replay reservations (holdback included) + max(0, Σ judge calls − Σ holdback)

which is ≥ the money really spent (replays + judge calls) and counts judge spend beyond the holdback. A
judge call unsettled past its deadline (its scorer died) keeps counting at its worst case.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import sqlalchemy as sa
from sqlalchemy.orm import Session

from shadowlab import store
from shadowlab.models import BudgetReservation, Experiment, JudgeCall, utcnow
from shadowlab.pricing import PriceTable

__all__ = [
    "ArmCall",
    "JudgeRef",
    "ReserveOutcome",
    "committed_usd",
    "judge_spend_usd",
    "lock_experiment",
    "reserve",
    "reserve_judge",
    "settle",
    "settle_judge",
    "worst_case_usd",
]

ReserveOutcome = Literal["reserved", "wait", "exhausted"]
_EPSILON = 1e-9


@dataclass(frozen=True)
class ArmCall:
    """What one arm's call can cost at most: its model, input estimate (`usage.estimate_input_tokens`) and
    output cap."""

    model: str
    input_tokens: int
    max_output_tokens: int


def worst_case_usd(calls: Iterable[ArmCall], prices: PriceTable, judge_usd: float = 0.0) -> float:
    """Every arm at its output cap, input at the dearest input rate (cache writes cost more than input)."""
    total = judge_usd
    for call in calls:
        price = prices.price(call.model)
        input_rate = max(price.input, price.cache_creation or 0.0, price.cache_creation_1h or 0.0)
        if price.input_above_200k is not None:
            input_rate = max(input_rate, price.input_above_200k)
        output_rate = max(price.output, price.reasoning or 0.0, price.output_above_200k or 0.0)
        total += call.input_tokens * input_rate + call.max_output_tokens * output_rate
    return total


def lock_experiment(session: Session, experiment_id: int) -> Experiment:
    """Lock the experiment row for this transaction (budget and status changes are serialised on it)."""
    return store.experiments.by_id(experiment_id, session=session, lock=True)


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


def _committed(session: Session, experiment_id: int, extra_judge_usd: float = 0.0) -> float:
    """Committed money, with `extra_judge_usd` more judge spend (see the module docstring)."""
    res = BudgetReservation
    replays, holdback = session.execute(
        sa.select(
            sa.func.coalesce(sa.func.sum(sa.func.coalesce(res.settled_usd, res.reserved_usd)), 0.0),
            sa.func.coalesce(sa.func.sum(res.judge_usd), 0.0),
        ).where(res.experiment_id == experiment_id)
    ).one()
    judged = judge_spend_usd(session, experiment_id)
    return float(replays) + max(0.0, judged + extra_judge_usd - float(holdback))


def committed_usd(session: Session, experiment_id: int) -> float:
    """Settled cost plus the worst case of everything still in flight, judge calls included."""
    return _committed(session, experiment_id)


def judge_spend_usd(session: Session, experiment_id: int, scorer_name: str | None = None) -> float:
    """Judge calls' cost: settled ones at their real cost, unsettled ones at their worst case."""
    jc = JudgeCall
    where = [jc.experiment_id == experiment_id]
    if scorer_name is not None:
        where.append(jc.scorer_name == scorer_name)
    value = session.execute(
        sa.select(
            sa.func.coalesce(sa.func.sum(sa.func.coalesce(jc.settled_usd, jc.reserved_usd)), 0.0)
        ).where(*where)
    ).scalar_one()
    return float(value)


def _unsettled(session: Session, experiment_id: int) -> int:
    """Work in flight that may still settle below its worst case: replay reservations and live judge calls."""
    res, jc = BudgetReservation, JudgeCall
    replays = session.execute(
        sa.select(sa.func.count()).where(res.experiment_id == experiment_id, res.settled_usd.is_(None))
    ).scalar_one()
    judges = session.execute(
        sa.select(sa.func.count()).where(
            jc.experiment_id == experiment_id, jc.settled_usd.is_(None), jc.deadline > utcnow()
        )
    ).scalar_one()
    return int(replays) + int(judges)


def _refuse(session: Session, experiment: Experiment) -> ReserveOutcome:
    if _unsettled(session, experiment.id):
        return "wait"
    if experiment.status == "running":
        experiment.status = "budget_exhausted"
    return "exhausted"


def reserve(
    session: Session,
    experiment: Experiment,
    captured_request_id: int,
    amount_usd: float,
    *,
    judge_usd: float = 0.0,
) -> ReserveOutcome:
    """Reserve `amount_usd` (of which `judge_usd` is the judge holdback) for one request. `wait`: it may fit
    once work in flight settles; `exhausted`: nothing is in flight and it does not fit, so a running
    experiment is now `budget_exhausted`."""
    budget = experiment.budget_usd
    if budget is not None and committed_usd(session, experiment.id) + amount_usd > budget + _EPSILON:
        return _refuse(session, experiment)
    session.add(
        BudgetReservation(
            experiment_id=experiment.id, captured_request_id=captured_request_id, reserved_usd=amount_usd,
            judge_usd=judge_usd,
        )
    )  # fmt: skip
    return "reserved"


def settle(session: Session, experiment_id: int, captured_request_id: int, actual_usd: float) -> None:
    """Replace a reservation's worst case by what the request really cost."""
    res = BudgetReservation
    session.execute(
        sa.update(res)
        .where(res.experiment_id == experiment_id, res.captured_request_id == captured_request_id)
        .values(settled_usd=actual_usd, settled_at=utcnow())
    )


def reserve_judge(
    session: Session, experiment: Experiment, ref: JudgeRef, model: str, amount_usd: float, deadline: datetime
) -> tuple[ReserveOutcome, int | None]:
    """Reserve one judge call's worst case; the id of its `judge_calls` row when reserved."""
    budget = experiment.budget_usd
    if budget is not None and _committed(session, experiment.id, amount_usd) > budget + _EPSILON:
        return _refuse(session, experiment), None
    call = JudgeCall(
        experiment_id=experiment.id, scorer_name=ref.scorer_name, scorer_version=ref.scorer_version,
        model=model, captured_request_id=ref.captured_request_id, replay_id=ref.replay_id,
        arm_b_id=ref.arm_b_id, order_shown=ref.order_shown, reserved_usd=amount_usd, deadline=deadline,
    )  # fmt: skip
    session.add(call)
    session.flush()
    return "reserved", call.id


def settle_judge(session: Session, call_id: int, actual_usd: float) -> None:
    """Replace a judge call's worst case by what it really cost (0 when it never reached the provider)."""
    session.execute(
        sa.update(JudgeCall)
        .where(JudgeCall.id == call_id)
        .values(settled_usd=actual_usd, settled_at=utcnow())
    )
