"""Budget changes: the audit trail of `shadowlab experiment budget` (who, when, from what to what), written
beside the change in its transaction and never edited."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from shadowlab.models import BudgetChange, Experiment, utcnow

__all__ = ["add", "history"]


def add(
    experiment: Experiment,
    *,
    before_usd: float | None,
    after_usd: float,
    committed_usd: float,
    changed_by: str,
    session: Session,
    changed_at: datetime | None = None,
) -> BudgetChange:
    """Record that `changed_by` moved the experiment's budget from `before_usd` (None: it had none) to
    `after_usd`, with what it had committed and its status then (flushed, so its id is set)."""
    row = BudgetChange(
        experiment_id=experiment.id, before_usd=before_usd, after_usd=after_usd,
        committed_usd=committed_usd, status=experiment.status, changed_by=changed_by,
        changed_at=changed_at or utcnow(),
    )  # fmt: skip
    session.add(row)
    session.flush()
    return row


def history(experiment_id: int, *, session: Session) -> list[BudgetChange]:
    """Every budget change of the experiment, oldest first."""
    return list(
        session.scalars(
            sa.select(BudgetChange)
            .where(BudgetChange.experiment_id == experiment_id)
            .order_by(BudgetChange.changed_at, BudgetChange.id)
        )
    )
