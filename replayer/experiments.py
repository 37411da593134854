"""`shadowlab experiment show`: an experiment's status, arms, spend and replay progress in one summary.

Creating, starting and the status transitions are data access and live in `shadowlab.store.experiments`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from shadowlab import store
from shadowlab.budget import committed_usd
from shadowlab.models import Experiment, WorkLease

__all__ = ["ExperimentSummary", "summarize"]


@dataclass(frozen=True)
class ExperimentSummary:
    name: str
    status: str
    arms: tuple[str, ...]
    budget_usd: float | None
    committed_usd: float
    requests_done: int
    requests_leased: int
    replays_ok: int
    replays_error: int

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def summarize(session: Session, experiment: Experiment) -> ExperimentSummary:
    leased, done = session.execute(
        sa.select(sa.func.count(), sa.func.count().filter(WorkLease.done.is_(True))).where(
            WorkLease.experiment_id == experiment.id
        )
    ).one()
    by_status = store.replays.counts_by_status(experiment.id, session=session)
    return ExperimentSummary(
        name=experiment.name,
        status=experiment.status,
        arms=tuple(f"{a.name} ({a.role}: {a.provider}/{a.model})" for a in experiment.arms),
        budget_usd=experiment.budget_usd,
        committed_usd=committed_usd(session, experiment.id),
        requests_done=int(done),
        requests_leased=int(leased),
        replays_ok=by_status.get("ok", 0),
        replays_error=by_status.get("error", 0),
    )
