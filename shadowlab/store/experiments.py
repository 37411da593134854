"""Experiments: look up, create from a spec, start, and the status transitions a command may make."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import sqlalchemy as sa
from sqlalchemy.orm import Session

from shadowlab.errors import NotFoundError, ShadowlabError
from shadowlab.models import Arm, Experiment, utcnow
from shadowlab.store import changes

if TYPE_CHECKING:  # imported where used: a read (analyze's load) starts before the spec models are built
    from shadowlab.experiment import ExperimentSpec
    from shadowlab.pricing import PriceTable

__all__ = [
    "ExperimentExistsError",
    "ExperimentStateError",
    "Transition",
    "by_id",
    "by_name",
    "create",
    "list_all",
    "spec_of",
    "start",
    "transition",
]

Transition = Literal["pause", "resume", "conclude"]
# command -> (statuses it may start from, status it leads to)
_TRANSITIONS: dict[Transition, tuple[frozenset[str], str]] = {
    "pause": (frozenset({"running"}), "paused"),
    "resume": (frozenset({"paused", "budget_exhausted"}), "running"),
    "conclude": (frozenset({"draft", "running", "paused", "budget_exhausted"}), "concluded"),
}


class ExperimentStateError(ShadowlabError):
    """A command that the experiment's status does not allow."""

    exit_code = 2


class ExperimentExistsError(ShadowlabError):
    """`create` with a name an experiment already has."""

    exit_code = 2


def by_name(name: str, *, session: Session, lock: bool = False) -> Experiment:
    """The experiment called `name`, row-locked for the transaction with `lock` (as `by_id`); `NotFoundError`
    when there is none."""
    query = sa.select(Experiment).where(Experiment.name == name)
    found = session.scalars(query.with_for_update() if lock else query).one_or_none()
    if found is None:
        raise NotFoundError(f"experiment {name!r}: not found (create it with `shadowlab experiment create`)")
    return found


def by_id(experiment_id: int, *, session: Session, lock: bool = False) -> Experiment:
    """The experiment with this id, row-locked for the transaction with `lock` (Postgres; SQLite has one
    writer anyway); `NotFoundError` when there is none."""
    query = sa.select(Experiment).where(Experiment.id == experiment_id)
    found = session.scalars(query.with_for_update() if lock else query).one_or_none()
    if found is None:
        raise NotFoundError(f"experiment id {experiment_id}: not found")
    return found


def list_all(*, session: Session) -> list[Experiment]:
    """Every experiment, oldest first."""
    return list(session.scalars(sa.select(Experiment).order_by(Experiment.created_at)))


def spec_of(experiment: Experiment) -> ExperimentSpec:
    """The stored spec, typed (it was validated when the experiment was created)."""
    from shadowlab.experiment import parse_spec

    return parse_spec(experiment.spec, f"experiment {experiment.name!r} (stored spec)")


def create(spec: ExperimentSpec, *, session: Session, created_by: str = "") -> Experiment:
    """A draft experiment with its arms; `ExperimentExistsError` when the name is taken, `ExperimentSpecError`
    when a provider is unknown or outside the allowlist (`check_providers`: specs not read by load_spec)."""
    from shadowlab.experiment import check_providers

    check_providers(spec, f"experiment {spec.name!r}")
    if session.execute(sa.select(Experiment.id).where(Experiment.name == spec.name)).first():
        raise ExperimentExistsError(f"experiment {spec.name!r}: already exists")
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


def start(
    name: str,
    prices: PriceTable,
    *,
    by: str = changes.LOCAL_USER,
    reason: str | None = None,
    session: Session,
) -> Experiment:
    """draft → running: refuses providers outside the allowlist and unpriced models; snapshots prices;
    recorded in the experiment's changes as `by`'s."""
    from shadowlab.experiment import check_startable
    from shadowlab.pricing import PriceTable

    experiment = by_name(name, session=session, lock=True)
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
    changes.record(experiment, "status", "draft", "running", by=by, reason=reason, session=session)
    return experiment


def transition(
    name: str,
    command: Transition,
    *,
    by: str = changes.LOCAL_USER,
    reason: str | None = None,
    session: Session,
) -> Experiment:
    """pause / resume / conclude, each allowed only from the statuses in `_TRANSITIONS`; recorded in the
    experiment's changes as `by`'s (`shadowlab.store.changes`)."""
    allowed, target = _TRANSITIONS[command]
    experiment = by_name(name, session=session, lock=True)
    if experiment.status not in allowed:
        raise ExperimentStateError(
            f"experiment {name!r}: {command} expects status {' or '.join(sorted(allowed))}, "
            f"found {experiment.status}"
        )
    before, experiment.status = experiment.status, target
    if target == "concluded":
        experiment.concluded_at = utcnow()
    changes.record(experiment, "status", before, target, by=by, reason=reason, session=session)
    return experiment
