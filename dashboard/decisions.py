"""Declaring a decision: role-checked, stored with its evidence, never edited, only superseded.

The database enforces immutability too (migration 0003_decisions_immutable): an UPDATE or DELETE of a
decision fails unless its experiment is being deleted.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, get_args

import sqlalchemy as sa
from sqlalchemy.orm import Session

from analysis.experiment_analysis import analyze_experiment
from dashboard.answers import scorers
from dashboard.auth import User
from replayer.experiments import set_status
from shadowlab.errors import ShadowlabError
from shadowlab.models import AnalysisSnapshot, Arm, Decision, Experiment, Preference

DeclaredVerdict = Literal["ship", "dont_ship", "keep_running"]
DECLARED_VERDICTS: tuple[str, ...] = get_args(DeclaredVerdict)
# The declaration that agrees with each computed verdict: inconclusive at the maximum sample means no proven
# gain, so not switching; invalid means the data cannot decide yet, so keep running (after fixing it).
AGREEING: dict[str, DeclaredVerdict] = {
    "ship": "ship",
    "dont_ship": "dont_ship",
    "keep_running": "keep_running",
    "inconclusive": "dont_ship",
    "invalid": "keep_running",
}
FINAL_VERDICTS = ("ship", "dont_ship")  # these may conclude the experiment


class DecisionError(ShadowlabError):
    """A declaration is incomplete or inconsistent; the message names the field."""

    exit_code = 2


class PermissionDeniedError(DecisionError):
    """The user's role does not allow declaring (viewers read and label only)."""


class StaleDecisionError(DecisionError):
    """Someone declared in the meantime: the decision the user saw is no longer the current one."""


@dataclass(frozen=True)
class DecisionRecord:
    """One stored decision, as the history shows it."""

    id: int
    experiment_id: int
    verdict: str
    winner_arm: str | None
    computed_verdict: str | None
    is_override: bool
    decided_by: str
    decided_at: datetime
    reason: str
    override_reason: str | None
    analysis_snapshot_id: int | None
    supersedes_id: int | None
    evidence: dict[str, Any]


def _record(row: Decision) -> DecisionRecord:
    return DecisionRecord(
        row.id, row.experiment_id, row.verdict, row.winner_arm, row.computed_verdict, row.is_override,
        row.decided_by, row.decided_at, row.reason, row.evidence.get("override_reason"),
        row.analysis_snapshot_id, row.supersedes_id, row.evidence,
    )  # fmt: skip


def history(session: Session, experiment_id: int) -> list[DecisionRecord]:
    """Every decision of the experiment, newest first: each supersedes the one before it."""
    rows = session.scalars(
        sa.select(Decision).where(Decision.experiment_id == experiment_id).order_by(Decision.id.desc())
    )
    return [_record(row) for row in rows]


def current(session: Session, experiment_id: int) -> DecisionRecord | None:
    """The decision that no other decision supersedes, if any."""
    superseded = sa.select(Decision.supersedes_id).where(Decision.supersedes_id.is_not(None))
    row = session.scalars(
        sa.select(Decision)
        .where(Decision.experiment_id == experiment_id, Decision.id.not_in(superseded))
        .order_by(Decision.id.desc())
        .limit(1)
    ).first()
    return None if row is None else _record(row)


def latest_snapshot(session: Session, experiment: Experiment) -> AnalysisSnapshot:
    """The newest analysis snapshot; a fresh one is computed and stored when there is none."""
    snapshot = session.scalars(
        sa.select(AnalysisSnapshot)
        .where(AnalysisSnapshot.experiment_id == experiment.id)
        .order_by(AnalysisSnapshot.computed_at.desc(), AnalysisSnapshot.id.desc())
        .limit(1)
    ).first()
    if snapshot is None:
        report = analyze_experiment(session, experiment.name, store=True)
        snapshot = session.get_one(AnalysisSnapshot, report.snapshot_id)
    return snapshot


def scorer_versions(session: Session, experiment_id: int) -> list[dict[str, str]]:
    """The scorers (name, version) behind the experiment's scores and preferences."""
    pairs = set(scorers(session.connection(), experiment_id))
    pairs.update(
        (str(name), str(version))
        for name, version in session.execute(
            sa.select(Preference.scorer_name, Preference.scorer_version)
            .where(Preference.experiment_id == experiment_id)
            .distinct()
        )
    )
    return [{"name": name, "version": version} for name, version in sorted(pairs)]


def _computed(snapshot: AnalysisSnapshot) -> tuple[str | None, str | None]:
    block = snapshot.analysis.get("verdict")
    recommended = block.get("recommended") if isinstance(block, dict) else None
    return snapshot.verdict, recommended if isinstance(recommended, str) else None


def _check_winner(verdict: str, winner_arm: str | None, arms: dict[str, str]) -> None:
    if verdict == "ship":
        candidates = sorted(name for name, role in arms.items() if role == "candidate")
        if winner_arm not in candidates:
            raise DecisionError(
                f"winner_arm: shipping needs one of the candidate arms {candidates}, found {winner_arm!r}"
            )
    elif winner_arm is not None:
        raise DecisionError(f"winner_arm: only a 'ship' decision names a winner, found {winner_arm!r}")


def declare(
    session: Session,
    *,
    user: User,
    experiment_id: int,
    verdict: str,
    reason: str,
    winner_arm: str | None = None,
    override_reason: str | None = None,
    expected_current_id: int | None = None,
    conclude: bool = False,
    now: datetime | None = None,
) -> DecisionRecord:
    """Store a decision with its evidence; it supersedes the current one, which must be `expected_current_id`.
    With `conclude`, a ship or don't-ship decision also concludes the experiment (no more replays).

    Raises `PermissionDeniedError` for a viewer, `DecisionError` for a missing reason, an unknown verdict or
    winner, or a declaration other than the one agreeing with the computed verdict (`AGREEING`) without
    `override_reason`."""
    if not user.can_declare:
        raise PermissionDeniedError(
            f"user {user.name!r}: declaring needs the role 'decider', found {user.role!r}"
        )
    if verdict not in DECLARED_VERDICTS:
        raise DecisionError(f"verdict: expected one of {', '.join(DECLARED_VERDICTS)}, found {verdict!r}")
    if not reason.strip():
        raise DecisionError("reason: expected a written reason, found an empty text")
    # The row lock serialises declarations on one experiment (Postgres; SQLite has one writer anyway).
    experiment = session.scalars(
        sa.select(Experiment).where(Experiment.id == experiment_id).with_for_update()
    ).first()
    if experiment is None:
        raise DecisionError(f"experiment_id: no experiment with id {experiment_id}")
    arms = {
        str(name): str(role)
        for name, role in session.execute(
            sa.select(Arm.name, Arm.role).where(Arm.experiment_id == experiment_id)
        )
    }
    _check_winner(verdict, winner_arm, arms)
    previous = current(session, experiment_id)
    previous_id = None if previous is None else previous.id
    if previous_id != expected_current_id:
        raise StaleDecisionError(
            f"expected_current_id: the current decision is {previous_id}, not {expected_current_id}; "
            "someone declared in the meantime, review it first"
        )
    snapshot = latest_snapshot(session, experiment)
    computed, recommended = _computed(snapshot)
    is_override = computed is not None and (
        verdict != AGREEING.get(computed, computed)
        or (verdict == "ship" and recommended is not None and winner_arm != recommended)
    )
    override_text = (override_reason or "").strip() or None
    if is_override and override_text is None:
        raise DecisionError(
            f"override_reason: the analysis says {computed!r}"
            + (f" (recommended arm {recommended!r})" if recommended else "")
            + f" and you declared {verdict!r}"
            + (f" ({winner_arm!r})" if winner_arm else "")
            + "; an override needs its own written reason"
        )
    evidence: dict[str, Any] = {
        "analysis": snapshot.analysis,
        "analysis_snapshot_id": snapshot.id,
        "analysis_computed_at": snapshot.computed_at.isoformat(),
        "n_requests": snapshot.n_requests,
        "price_snapshot": experiment.price_snapshot,
        "scorer_versions": scorer_versions(session, experiment_id),
        "override_reason": override_text if is_override else None,
        "concluded": conclude and verdict in FINAL_VERDICTS,
    }
    if evidence["concluded"] and experiment.status != "concluded":
        set_status(session, experiment.name, "conclude")
    row = Decision(
        experiment_id=experiment_id,
        verdict=verdict,
        winner_arm=winner_arm,
        computed_verdict=computed,
        is_override=is_override,
        decided_by=user.name,
        decided_at=now or datetime.now(UTC),
        reason=reason.strip(),
        evidence=evidence,
        analysis_snapshot_id=snapshot.id,
        supersedes_id=previous_id,
    )
    session.add(row)
    session.flush()
    return _record(row)
