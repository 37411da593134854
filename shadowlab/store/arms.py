"""Arms of an experiment."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session

from shadowlab.models import Arm

__all__ = ["of_experiment", "roles"]


def of_experiment(experiment_id: int, *, session: Session) -> list[Arm]:
    """The experiment's arms in the order they were created (control first)."""
    return list(session.scalars(sa.select(Arm).where(Arm.experiment_id == experiment_id).order_by(Arm.id)))


def roles(experiment_id: int, *, session: Session) -> dict[str, str]:
    """Arm name → role (control, candidate, aa)."""
    rows = session.execute(sa.select(Arm.name, Arm.role).where(Arm.experiment_id == experiment_id))
    return {str(name): str(role) for name, role in rows}
