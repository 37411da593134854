"""Declaring a decision: role-checked, stored with its evidence, never edited, only superseded.

The database enforces immutability too (migration 0003_decisions_immutable): an UPDATE or DELETE of a
decision fails unless its experiment is being deleted.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, get_args

from sqlalchemy.orm import Session

from analysis.experiment_analysis import analyze_experiment
from dashboard.auth import User
from shadowlab import store
from shadowlab.errors import NotFoundError, ShadowlabError
from shadowlab.models import AnalysisSnapshot, Decision, Experiment

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
    return [_record(row) for row in reversed(store.decisions.history(experiment_id, session=session))]


def current(session: Session, experiment_id: int) -> DecisionRecord | None:
    """The decision that no other decision supersedes, if any."""
    row = store.decisions.current(experiment_id, session=session)
    return None if row is None else _record(row)


def _latest_snapshot(session: Session, experiment: Experiment) -> AnalysisSnapshot:
    """The newest analysis snapshot; a fresh one is computed and stored when there is none."""
    snapshot = store.snapshots.latest(experiment.id, session=session)
    if snapshot is None:
        report = analyze_experiment(session, experiment.name, store=True)
        assert report.snapshot_id is not None  # stored above
        snapshot = store.snapshots.by_id(report.snapshot_id, session=session)
    return snapshot


def scorer_versions(session: Session, experiment_id: int) -> list[dict[str, str]]:
    """The scorers (name, version) behind the experiment's scores and preferences."""
    return [
        {"name": v.name, "version": v.version} for v in store.scorers.versions(experiment_id, session=session)
    ]


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


def _check_declaration(user: User, verdict: str, reason: str) -> None:
    if not user.can_declare:
        raise PermissionDeniedError(
            f"user {user.name!r}: declaring needs the role 'decider', found {user.role!r}"
        )
    if verdict not in DECLARED_VERDICTS:
        raise DecisionError(f"verdict: expected one of {', '.join(DECLARED_VERDICTS)}, found {verdict!r}")
    if not reason.strip():
        raise DecisionError("reason: expected a written reason, found an empty text")


def _override_text(
    snapshot: AnalysisSnapshot, verdict: str, winner_arm: str | None, override_reason: str | None
) -> tuple[bool, str | None]:
    """Whether the declaration overrides the analysis, and its written reason (required for an override)."""
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
    return is_override, override_text if is_override else None


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
    _check_declaration(user, verdict, reason)
    try:  # the row lock serialises declarations on one experiment
        experiment = store.experiments.by_id(experiment_id, session=session, lock=True)
    except NotFoundError:
        raise DecisionError(f"experiment_id: no experiment with id {experiment_id}") from None
    _check_winner(verdict, winner_arm, store.arms.roles(experiment_id, session=session))
    previous = current(session, experiment_id)
    previous_id = None if previous is None else previous.id
    if previous_id != expected_current_id:
        raise StaleDecisionError(
            f"expected_current_id: the current decision is {previous_id}, not {expected_current_id}; "
            "someone declared in the meantime, review it first"
        )
    snapshot = _latest_snapshot(session, experiment)
    is_override, override_text = _override_text(snapshot, verdict, winner_arm, override_reason)
    evidence: dict[str, Any] = {
        "analysis": snapshot.analysis,
        "analysis_snapshot_id": snapshot.id,
        "analysis_computed_at": snapshot.computed_at.isoformat(),
        "n_requests": snapshot.n_requests,
        "price_snapshot": experiment.price_snapshot,
        "scorer_versions": scorer_versions(session, experiment_id),
        "override_reason": override_text,
        "concluded": conclude and verdict in FINAL_VERDICTS,
    }
    if evidence["concluded"] and experiment.status != "concluded":
        store.experiments.transition(
            experiment.name, "conclude", by=user.name, reason=f"declared {verdict}: {reason.strip()}",
            session=session,
        )  # fmt: skip
    row = store.decisions.add(
        experiment_id, verdict=verdict, winner_arm=winner_arm, computed_verdict=_computed(snapshot)[0],
        is_override=is_override, decided_by=user.name, decided_at=now or datetime.now(UTC),
        reason=reason.strip(), evidence=evidence, analysis_snapshot_id=snapshot.id, supersedes_id=previous_id,
        session=session,
    )  # fmt: skip
    return _record(row)
