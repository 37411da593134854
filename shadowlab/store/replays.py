"""Replays: one row per (arm, captured request)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session

from shadowlab.errors import NotFoundError
from shadowlab.models import Arm, Replay

__all__ = ["by_id", "candidate_pairs", "counts_by_status"]


def by_id(replay_id: int, *, session: Session) -> Replay:
    """The replay with this id; `NotFoundError` when there is none."""
    found = session.get(Replay, replay_id)
    if found is None:
        raise NotFoundError(f"replay id {replay_id}: not found")
    return found


def counts_by_status(experiment_id: int, *, session: Session) -> dict[str, int]:
    """Replays of the experiment per status (ok, error)."""
    rows = session.execute(
        sa.select(Replay.status, sa.func.count())
        .where(Replay.experiment_id == experiment_id)
        .group_by(Replay.status)
    )
    return {str(status): int(n) for status, n in rows}


def candidate_pairs(experiment_id: int, *, session: Session) -> int:
    """(request, candidate arm) pairs where the control and the candidate both answered (status ok)."""
    control = (
        sa.select(Replay.captured_request_id)
        .join(Arm, Arm.id == Replay.arm_id)
        .where(Replay.experiment_id == experiment_id, Replay.status == "ok", Arm.role == "control")
    )
    count = session.scalar(
        sa.select(sa.func.count())
        .select_from(Replay)
        .join(Arm, Arm.id == Replay.arm_id)
        .where(
            Replay.experiment_id == experiment_id,
            Replay.status == "ok",
            Arm.role == "candidate",
            Replay.captured_request_id.in_(control),
        )
    )
    return int(count or 0)
