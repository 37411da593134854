"""Analysis snapshots (`analysis_snapshots`): each analysis run's document, what the dashboard reads."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from shadowlab.errors import NotFoundError
from shadowlab.models import AnalysisSnapshot

__all__ = ["add", "by_id", "latest"]


def latest(experiment_id: int, *, session: Session) -> AnalysisSnapshot | None:
    """The experiment's newest snapshot, or None when no analysis was stored."""
    return session.scalars(
        sa.select(AnalysisSnapshot)
        .where(AnalysisSnapshot.experiment_id == experiment_id)
        .order_by(AnalysisSnapshot.computed_at.desc(), AnalysisSnapshot.id.desc())
        .limit(1)
    ).first()


def by_id(snapshot_id: int, *, session: Session) -> AnalysisSnapshot:
    """The snapshot with this id; `NotFoundError` when there is none."""
    found = session.get(AnalysisSnapshot, snapshot_id)
    if found is None:
        raise NotFoundError(f"analysis snapshot id {snapshot_id}: not found")
    return found


def add(
    experiment_id: int,
    *,
    n_requests: int,
    verdict: str | None,
    analysis: dict[str, Any],
    session: Session,
    computed_at: datetime | None = None,
) -> AnalysisSnapshot:
    """Store one analysis document (flushed, so its id is set)."""
    snapshot = AnalysisSnapshot(
        experiment_id=experiment_id,
        computed_at=computed_at or datetime.now(UTC),
        n_requests=n_requests,
        verdict=verdict,
        analysis=analysis,
    )
    session.add(snapshot)
    session.flush()
    return snapshot
