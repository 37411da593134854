"""Experiment changes: an append-only trail of budget changes and status transitions, as decisions are for
verdicts (migration 0012 makes the database refuse an UPDATE or DELETE too).

Who is named by the rule decisions follow: the signed-in dashboard user, else `LOCAL_USER` (the dashboard
with authentication off, the command line: whoever can reach the database). A change the system makes itself
(a spent budget stops the experiment) is `SYSTEM`'s.
"""

from __future__ import annotations

from typing import get_args

import sqlalchemy as sa
from sqlalchemy.orm import Session

from shadowlab.models import ChangedField, Experiment, ExperimentChange

__all__ = ["LOCAL_USER", "SYSTEM", "budget_text", "history", "record"]

LOCAL_USER = "local"
SYSTEM = "shadowlab"


def budget_text(usd: float | None) -> str | None:
    """A budget as the trail stores it: the float's repr (exact), None for no budget."""
    return None if usd is None else repr(float(usd))


def record(
    experiment: Experiment,
    field: ChangedField,
    before: str | None,
    after: str,
    *,
    by: str,
    reason: str | None = None,
    session: Session,
) -> ExperimentChange:
    """Append one change (flushed, so its id is set); an empty reason is stored as none."""
    if field not in get_args(ChangedField):
        raise ValueError(f"field: expected one of {get_args(ChangedField)}, found {field!r}")
    row = ExperimentChange(
        experiment_id=experiment.id, field=field, before=before, after=after, changed_by=by,
        reason=(reason or "").strip() or None,
    )  # fmt: skip
    session.add(row)
    session.flush()
    return row


def history(experiment_id: int, *, session: Session) -> list[ExperimentChange]:
    """Every change of the experiment, newest first."""
    return list(
        session.scalars(
            sa.select(ExperimentChange)
            .where(ExperimentChange.experiment_id == experiment_id)
            .order_by(ExperimentChange.id.desc())
        )
    )
