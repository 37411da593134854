"""Decisions: an append-only audit trail; a new decision supersedes the current one, none is ever edited
(migration 0003 makes the database refuse an UPDATE or DELETE too)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from shadowlab.models import Decision

__all__ = ["add", "current", "history"]


def history(experiment_id: int, *, session: Session) -> list[Decision]:
    """Every decision of the experiment, oldest first: each supersedes the one before it."""
    return list(
        session.scalars(
            sa.select(Decision).where(Decision.experiment_id == experiment_id).order_by(Decision.id)
        )
    )


def current(experiment_id: int, *, session: Session) -> Decision | None:
    """The decision no other decision supersedes, if any."""
    superseded = sa.select(Decision.supersedes_id).where(Decision.supersedes_id.is_not(None))
    return session.scalars(
        sa.select(Decision)
        .where(Decision.experiment_id == experiment_id, Decision.id.not_in(superseded))
        .order_by(Decision.id.desc())
        .limit(1)
    ).first()


def add(
    experiment_id: int,
    *,
    verdict: str,
    winner_arm: str | None,
    computed_verdict: str | None,
    is_override: bool,
    decided_by: str,
    decided_at: datetime,
    reason: str,
    evidence: dict[str, Any],
    analysis_snapshot_id: int | None,
    supersedes_id: int | None,
    session: Session,
) -> Decision:
    """Append one decision (flushed, so its id is set); the caller checks it supersedes the current one."""
    row = Decision(
        experiment_id=experiment_id, verdict=verdict, winner_arm=winner_arm,
        computed_verdict=computed_verdict, is_override=is_override, decided_by=decided_by,
        decided_at=decided_at, reason=reason, evidence=evidence,
        analysis_snapshot_id=analysis_snapshot_id, supersedes_id=supersedes_id,
    )  # fmt: skip
    session.add(row)
    session.flush()
    return row
