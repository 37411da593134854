"""Analysis snapshots (`analysis_snapshots`): each analysis run's document, what the dashboard reads."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from shadowlab.errors import NotFoundError
from shadowlab.models import AnalysisSnapshot, Preference, Replay, Score

__all__ = ["NewSince", "add", "by_id", "latest", "new_since"]


@dataclass(frozen=True)
class NewSince:
    """What arrived for an experiment after a moment (its latest analysis): replays finished, scores and
    pairwise preferences stored."""

    replays: int
    scores: int
    preferences: int

    @property
    def any(self) -> bool:
        return bool(self.replays or self.scores or self.preferences)


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


def new_since(experiment_id: int, since: datetime, *, session: Session) -> NewSince:
    """Counts of the experiment's replays, scores and preferences newer than `since`, in one statement."""
    count = sa.func.count()
    replays = (
        sa.select(count)
        .select_from(Replay)
        .where(Replay.experiment_id == experiment_id, Replay.finished_at > since)
    )
    scores = (
        sa.select(count)
        .select_from(Score)
        .join(Replay, Replay.id == Score.replay_id)
        .where(Replay.experiment_id == experiment_id, Score.created_at > since)
    )
    preferences = (
        sa.select(count)
        .select_from(Preference)
        .where(Preference.experiment_id == experiment_id, Preference.created_at > since)
    )
    row = session.execute(
        sa.select(replays.scalar_subquery(), scores.scalar_subquery(), preferences.scalar_subquery())
    ).one()
    return NewSince(int(row[0]), int(row[1]), int(row[2]))
