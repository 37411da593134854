"""Reading scores back by scorer version: which versions exist, and the values of the one chosen.

Old versions are never deleted, so an analysis selects the version it wants (default: the newest). The rows
come from `shadowlab.store` (scores and scorers).
"""

from __future__ import annotations

from typing import cast

from sqlalchemy.orm import Session

from scoring.base import ScoringError
from scoring.pairwise import Canonical, PairwiseSummary, summarize
from shadowlab import store
from shadowlab.store.scorers import ScorerVersion

__all__ = ["ScorerVersion", "pair_results", "pairwise_summary", "point_scores", "scorer_versions"]


def scorer_versions(session: Session, experiment_id: int, name: str) -> list[ScorerVersion]:
    """Versions of scorer `name` with rows in this experiment, newest first (scores and preferences)."""
    found = store.scorers.versions(experiment_id, session=session, name=name)
    return sorted(found, key=lambda v: v.last_at, reverse=True)


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
    return store.scores.point_values(experiment_id, name, chosen, session=session)


def pair_results(
    session: Session, experiment_id: int, name: str, candidate_arm_id: int, version: str | None = None
) -> dict[int, tuple[Canonical, Canonical]]:
    """Captured request id → (result with control shown first, result with candidate shown first), for the
    prompts judged in both orders."""
    chosen = _pick(session, experiment_id, name, version)
    rows = store.scores.preference_results(experiment_id, name, chosen, candidate_arm_id, session=session)
    by_request: dict[int, dict[str, Canonical]] = {}
    for request, order, result in rows:
        by_request.setdefault(request, {})[order] = cast(Canonical, result)
    return {r: (o["ab"], o["ba"]) for r, o in by_request.items() if "ab" in o and "ba" in o}


def pairwise_summary(
    session: Session, experiment_id: int, name: str, candidate_arm_id: int, version: str | None = None
) -> PairwiseSummary:
    """Order-averaged preference for the candidate and the judge's position bias, for one version."""
    return summarize(list(pair_results(session, experiment_id, name, candidate_arm_id, version).values()))
