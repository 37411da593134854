"""Experiments in the database: create from a spec, list, show, and the status transitions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from shadowlab.budget import committed_usd, lock_experiment
from shadowlab.errors import ShadowlabError
from shadowlab.experiment import ExperimentSpec, check_startable, parse_spec
from shadowlab.models import Arm, Experiment, Replay, WorkLease, utcnow
from shadowlab.pricing import PriceTable

__all__ = [
    "ExperimentStateError",
    "ExperimentSummary",
    "create_experiment",
    "find_experiment",
    "list_experiments",
    "set_status",
    "spec_of",
    "start_experiment",
    "summarize",
]

# status -> statuses it may move to by command
_TRANSITIONS = {
    "pause": ({"running"}, "paused"),
    "resume": ({"paused", "budget_exhausted"}, "running"),
    "conclude": ({"draft", "running", "paused", "budget_exhausted"}, "concluded"),
}


class ExperimentStateError(ShadowlabError):
    """A command that the experiment's status does not allow, or an unknown experiment."""

    exit_code = 2


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


def find_experiment(session: Session, name: str) -> Experiment:
    found = session.execute(sa.select(Experiment).where(Experiment.name == name)).scalar_one_or_none()
    if found is None:
        raise ExperimentStateError(f"experiment {name!r}: not found (create it with `experiment create`)")
    return found


def spec_of(experiment: Experiment) -> ExperimentSpec:
    return parse_spec(experiment.spec, f"experiment {experiment.name!r} (stored spec)")


def create_experiment(session: Session, spec: ExperimentSpec, created_by: str = "") -> Experiment:
    """A draft experiment with its arms; the name must be new."""
    if session.execute(sa.select(Experiment.id).where(Experiment.name == spec.name)).first():
        raise ExperimentStateError(f"experiment {spec.name!r}: already exists")
    experiment = Experiment(
        name=spec.name,
        status="draft",
        spec=spec.model_dump(mode="json"),
        plan=spec.plan.model_dump(mode="json"),
        budget_usd=spec.budget.usd,
        created_by=created_by,
    )
    for role, arm in spec.roles():
        experiment.arms.append(
            Arm(
                name=arm.name,
                role=role,
                provider=arm.provider,
                model=arm.model,
                params=dict(arm.params),
                prompt_template_version=arm.prompt_template_version,
                prompt_template={"system": arm.system, "extra_headers": arm.extra_headers},
            )
        )
    session.add(experiment)
    session.flush()
    return experiment


def start_experiment(session: Session, name: str, prices: PriceTable) -> Experiment:
    """draft → running: refuses providers outside the allowlist and unpriced models; snapshots prices."""
    experiment = find_experiment(session, name)
    experiment = lock_experiment(session, experiment.id)
    if experiment.status != "draft":
        raise ExperimentStateError(
            f"experiment {name!r}: start expects status draft, found {experiment.status} (use resume)"
        )
    spec = spec_of(experiment)
    check_startable(spec, prices)
    models = set(spec.models())
    snapshot = {model: entry for model, entry in prices.to_json().items() if model in models}
    for model in models - set(snapshot):  # priced through a `provider/` prefix fallback
        snapshot[model] = PriceTable({model: prices.price(model)}).to_json()[model]
    experiment.price_snapshot = snapshot
    experiment.status = "running"
    experiment.started_at = utcnow()
    return experiment


def set_status(session: Session, name: str, command: str) -> Experiment:
    """pause / resume / conclude, each allowed only from the statuses in `_TRANSITIONS`."""
    allowed, target = _TRANSITIONS[command]
    experiment = lock_experiment(session, find_experiment(session, name).id)
    if experiment.status not in allowed:
        raise ExperimentStateError(
            f"experiment {name!r}: {command} expects status {' or '.join(sorted(allowed))}, "
            f"found {experiment.status}"
        )
    experiment.status = target
    if target == "concluded":
        experiment.concluded_at = utcnow()
    return experiment


def list_experiments(session: Session) -> list[Experiment]:
    return list(session.execute(sa.select(Experiment).order_by(Experiment.created_at)).scalars())


def summarize(session: Session, experiment: Experiment) -> ExperimentSummary:
    lease, replay = WorkLease, Replay
    leased, done = session.execute(
        sa.select(sa.func.count(), sa.func.count().filter(lease.done.is_(True))).where(
            lease.experiment_id == experiment.id
        )
    ).one()
    by_status = dict(
        session.execute(
            sa.select(replay.status, sa.func.count())
            .where(replay.experiment_id == experiment.id)
            .group_by(replay.status)
        ).all()
    )
    return ExperimentSummary(
        name=experiment.name,
        status=experiment.status,
        arms=tuple(f"{a.name} ({a.role}: {a.provider}/{a.model})" for a in experiment.arms),
        budget_usd=experiment.budget_usd,
        committed_usd=committed_usd(session, experiment.id),
        requests_done=int(done),
        requests_leased=int(leased),
        replays_ok=int(by_status.get("ok", 0)),
        replays_error=int(by_status.get("error", 0)),
    )
