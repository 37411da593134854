"""Reading scores back by scorer version: which versions exist, and the values of the one chosen.

Old versions are never deleted, so an analysis selects the version it wants (default: the newest).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import cast

import sqlalchemy as sa
from sqlalchemy.orm import Session

from scoring.base import ScoringError
from scoring.pairwise import Canonical, PairwiseSummary, summarize
from shadowlab.models import Preference, Replay, Score

__all__ = ["ScorerVersion", "pair_results", "pairwise_summary", "point_scores", "scorer_versions"]


@dataclass(frozen=True)
class ScorerVersion:
    version: str
    rows: int
    first_at: datetime
    last_at: datetime


def scorer_versions(session: Session, experiment_id: int, name: str) -> list[ScorerVersion]:
    """Versions of scorer `name` with rows in this experiment, newest first (scores and preferences)."""
    found: dict[str, ScorerVersion] = {}
    score_rows = (
        sa.select(
            Score.scorer_version,
            sa.func.count(),
            sa.func.min(Score.created_at),
            sa.func.max(Score.created_at),
        )
        .join(Replay, Replay.id == Score.replay_id)
        .where(Replay.experiment_id == experiment_id, Score.scorer_name == name)
        .group_by(Score.scorer_version)
    )
    pref_rows = (
        sa.select(
            Preference.scorer_version,
            sa.func.count(),
            sa.func.min(Preference.created_at),
            sa.func.max(Preference.created_at),
        )
        .where(Preference.experiment_id == experiment_id, Preference.scorer_name == name)
        .group_by(Preference.scorer_version)
    )
    for statement in (score_rows, pref_rows):
        for version, rows, first, last in session.execute(statement):
            found[version] = ScorerVersion(version, rows, first, last)
    return sorted(found.values(), key=lambda v: v.last_at, reverse=True)


def _pick(session: Session, experiment_id: int, name: str, version: str | None) -> str:
    if version is not None:
        return version
    versions = scorer_versions(session, experiment_id, name)
    if not versions:
        raise ScoringError(f"scorer {name!r}: expected scores in experiment {experiment_id}, found none")
    return versions[0].version


def point_scores(
    session: Session, experiment_id: int, name: str, version: str | None = None
) -> dict[tuple[int, int], float | None]:
    """(arm id, captured request id) → score of one version (None: failed or not applicable)."""
    chosen = _pick(session, experiment_id, name, version)
    rows = session.execute(
        sa.select(Replay.arm_id, Replay.captured_request_id, Score.value)
        .join(Replay, Replay.id == Score.replay_id)
        .where(
            Replay.experiment_id == experiment_id, Score.scorer_name == name, Score.scorer_version == chosen
        )
    )
    return {(arm, request): value for arm, request, value in rows}


def pair_results(
    session: Session, experiment_id: int, name: str, candidate_arm_id: int, version: str | None = None
) -> dict[int, tuple[Canonical, Canonical]]:
    """Captured request id → (result with control shown first, result with candidate shown first), for the
    prompts judged in both orders."""
    chosen = _pick(session, experiment_id, name, version)
    rows = session.execute(
        sa.select(Preference.captured_request_id, Preference.order_shown, Preference.result).where(
            Preference.experiment_id == experiment_id,
            Preference.scorer_name == name,
            Preference.scorer_version == chosen,
            Preference.arm_b_id == candidate_arm_id,
        )
    )
    by_request: dict[int, dict[str, Canonical]] = {}
    for request, order, result in rows:
        by_request.setdefault(request, {})[order] = cast(Canonical, result)
    return {r: (o["ab"], o["ba"]) for r, o in by_request.items() if "ab" in o and "ba" in o}


def pairwise_summary(
    session: Session, experiment_id: int, name: str, candidate_arm_id: int, version: str | None = None
) -> PairwiseSummary:
    """Order-averaged preference for the candidate and the judge's position bias, for one version."""
    return summarize(list(pair_results(session, experiment_id, name, candidate_arm_id, version).values()))
