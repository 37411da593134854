"""Blind human labels (written by `scoring.labels`)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session

from shadowlab.models import Arm, Label

__all__ = ["candidate_count"]


def candidate_count(experiment_id: int, labeler: str, *, session: Session) -> int:
    """This person's labels on control-vs-candidate pairs (an A/A copy of the control is not a candidate)."""
    count = session.scalar(
        sa.select(sa.func.count())
        .select_from(Label)
        .join(Arm, Arm.id == Label.arm_b_id)
        .where(Label.experiment_id == experiment_id, Label.labeler == labeler, Arm.role == "candidate")
    )
    return int(count or 0)
