"""Scorer versions: which (scorer, version) pairs wrote scores or preferences in an experiment.

Old versions are never deleted, so readers choose the version they want (usually the newest).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from shadowlab.models import Preference, Replay, Score
from shadowlab.scorer_versions import REPLAY_STATUSES, ReplaySpan, latest_versions, span_of_bounds

__all__ = [
    "HUMAN_PREFIX",
    "ReplaySpan",
    "ScorerVersion",
    "latest_point_versions",
    "pairwise_judges",
    "replay_span",
    "versions",
]

# scorer, version, rows, first written, last written
_VersionRows = sa.Select[str, str, int, datetime, datetime]
HUMAN_PREFIX = "human:"  # human labels stored as preferences are scored as `human:<labeler>`


@dataclass(frozen=True)
class ScorerVersion:
    """One version of one scorer in one experiment: its rows and when they were written."""

    name: str
    version: str
    rows: int
    first_at: datetime
    last_at: datetime


def _point_rows(
    experiment_id: int, name: str | None, *, session: Session, span: ReplaySpan | None = None
) -> _VersionRows:
    query = sa.select(
        Score.scorer_name, Score.scorer_version, sa.func.count(), sa.func.min(Score.created_at),
        sa.func.max(Score.created_at),
    ).group_by(Score.scorer_name, Score.scorer_version)  # fmt: skip
    query = query.where(_of_experiment(experiment_id, span or replay_span(experiment_id, session=session)))
    return query if name is None else query.where(Score.scorer_name == name)


def replay_span(experiment_id: int, *, session: Session) -> ReplaySpan:
    """The experiment's smallest and largest replay id and how many replays it has (0, 0, 0 without any): each
    status' bounds are two lookups in the index on (experiment_id, status, id) and the count an index-only
    scan, not a scan of the replays (`span_of_bounds`)."""
    of = Replay.experiment_id == experiment_id
    bounds = [
        sa.select(bound(Replay.id)).where(of, Replay.status == status).scalar_subquery()
        for status in REPLAY_STATUSES
        for bound in (sa.func.min, sa.func.max)
    ]
    count = sa.select(sa.func.count()).select_from(Replay).where(of).scalar_subquery()
    return span_of_bounds(session.execute(sa.select(*bounds, count)).one())


def _of_experiment(experiment_id: int, span: ReplaySpan) -> sa.ColumnElement[bool]:
    """Scores of the experiment's replays: a replay-id range when its replays hold every id of one (one scan
    of `scores`, no join with a million replays: 1.5 s -> 0.3 s at 1M replays), else the replays it has."""
    low, high, count = span
    if count and high - low + 1 == count:
        return Score.replay_id.between(low, high)
    replays = sa.select(Replay.id).where(Replay.experiment_id == experiment_id)
    return Score.replay_id.in_(replays)


def _pair_rows(experiment_id: int, name: str | None) -> _VersionRows:
    p = Preference
    query = (
        sa.select(p.scorer_name, p.scorer_version, sa.func.count(), sa.func.min(p.created_at),
                  sa.func.max(p.created_at))
        .where(p.experiment_id == experiment_id)
        .group_by(p.scorer_name, p.scorer_version)
    )  # fmt: skip
    return query if name is None else query.where(p.scorer_name == name)


def versions(
    experiment_id: int,
    *,
    session: Session,
    name: str | None = None,
    pointwise: bool = True,
    pairwise: bool = True,
    span: ReplaySpan | None = None,
) -> list[ScorerVersion]:
    """Every (scorer, version) with rows in the experiment, sorted by name then version; only scorer `name`
    when given; from scores (`pointwise`) and preferences (`pairwise`)."""
    statements = [_point_rows(experiment_id, name, session=session, span=span)] if pointwise else []
    statements += [_pair_rows(experiment_id, name)] if pairwise else []
    found: dict[tuple[str, str], ScorerVersion] = {}
    for statement in statements:
        for scorer, version, rows, first, last in session.execute(statement):
            seen = found.get((scorer, version))
            if seen is not None:  # one scorer version writing both kinds of row: count them together
                rows, first, last = rows + seen.rows, min(first, seen.first_at), max(last, seen.last_at)
            found[(scorer, version)] = ScorerVersion(str(scorer), str(version), int(rows), first, last)
    return [found[key] for key in sorted(found)]


def latest_point_versions(
    experiment_id: int, *, session: Session, span: ReplaySpan | None = None
) -> dict[str, str]:
    """Per pointwise scorer name, the version written most recently in the experiment (`span`: its
    `replay_span`, when the caller has it)."""
    found = versions(experiment_id, session=session, pairwise=False, span=span)
    return latest_versions((v.name, v.version, v.last_at) for v in found)


def pairwise_judges(experiment_id: int, *, session: Session) -> list[str]:
    """Names of the pairwise judges that wrote preferences (human labels left out), sorted."""
    names = {v.name for v in versions(experiment_id, session=session, pointwise=False)}
    return sorted(name for name in names if not name.startswith(HUMAN_PREFIX))
