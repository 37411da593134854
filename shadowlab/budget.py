"""The experiment budget: reserve the worst case before work starts, settle to the real cost (DESIGN §5).

Committed money = settled reservations at their real cost + unsettled ones at their worst case, so a
reservation whose worker died counts as spent until its work is recovered and settled. `reserve` must run
in the caller's transaction after it locked the experiment row (`lock_experiment`), so concurrent workers
are serialised and can never commit more than the budget together.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.orm import Session

from shadowlab.models import BudgetReservation, Experiment, utcnow
from shadowlab.pricing import PriceTable

__all__ = [
    "ArmCall",
    "ReserveOutcome",
    "committed_usd",
    "estimate_input_tokens",
    "lock_experiment",
    "reserve",
    "settle",
    "worst_case_usd",
]

ReserveOutcome = Literal["reserved", "wait", "exhausted"]
_CHARS_PER_TOKEN_FLOOR = 2  # real tokenizers average 3.5-4 characters per token; 2 over-estimates on purpose
_EPSILON = 1e-9


@dataclass(frozen=True)
class ArmCall:
    """What one arm's call can cost at most: its model, input estimate and output cap."""

    model: str
    input_tokens: int
    max_output_tokens: int


def estimate_input_tokens(body: Mapping[str, Any]) -> int:
    """An upper estimate of a request's input tokens from its JSON size."""
    return math.ceil(len(json.dumps(body, separators=(",", ":"))) / _CHARS_PER_TOKEN_FLOOR) + 16


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
    return session.execute(
        sa.select(Experiment).where(Experiment.id == experiment_id).with_for_update()
    ).scalar_one()


def committed_usd(session: Session, experiment_id: int) -> float:
    """Settled cost plus the worst case of everything still in flight."""
    res = BudgetReservation
    value = session.execute(
        sa.select(
            sa.func.coalesce(sa.func.sum(sa.func.coalesce(res.settled_usd, res.reserved_usd)), 0.0)
        ).where(res.experiment_id == experiment_id)
    ).scalar_one()
    return float(value)


def _unsettled(session: Session, experiment_id: int) -> int:
    res = BudgetReservation
    return int(
        session.execute(
            sa.select(sa.func.count()).where(res.experiment_id == experiment_id, res.settled_usd.is_(None))
        ).scalar_one()
    )


def reserve(
    session: Session, experiment: Experiment, captured_request_id: int, amount_usd: float
) -> ReserveOutcome:
    """Reserve `amount_usd` for one request. `wait`: it may fit once work in flight settles; `exhausted`:
    nothing is in flight and it does not fit, so the experiment is now `budget_exhausted`."""
    budget = experiment.budget_usd
    committed = committed_usd(session, experiment.id)
    if budget is not None and committed + amount_usd > budget + _EPSILON:
        if _unsettled(session, experiment.id):
            return "wait"
        experiment.status = "budget_exhausted"
        return "exhausted"
    session.add(
        BudgetReservation(
            experiment_id=experiment.id, captured_request_id=captured_request_id, reserved_usd=amount_usd
        )
    )
    return "reserved"


def settle(session: Session, experiment_id: int, captured_request_id: int, actual_usd: float) -> None:
    """Replace a reservation's worst case by what the request really cost."""
    res = BudgetReservation
    session.execute(
        sa.update(res)
        .where(res.experiment_id == experiment_id, res.captured_request_id == captured_request_id)
        .values(settled_usd=actual_usd, settled_at=utcnow())
    )
