"""Declaring decisions: roles enforced by the data layer, evidence stored, overrides marked, immutable."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from dashboard.auth import User
from dashboard.decisions import (
    AGREEING,
    DecisionError,
    PermissionDeniedError,
    StaleDecisionError,
    current,
    declare,
    history,
)
from shadowlab import migrate, store
from shadowlab.db import create_engine, session_factory, session_scope
from shadowlab.models import AnalysisSnapshot, Decision, Experiment
from tests.support.dashboard_seed import PLAN, PRICES, add_experiment

DECIDER = User("erin", "decider")
VIEWER = User("pat", "viewer")
IMMUTABLE = "decisions are immutable"


@pytest.fixture
def engine(seeded: Any) -> Iterator[sa.Engine]:
    engine = create_engine(seeded.url)
    yield engine
    engine.dispose()


def _session(engine: sa.Engine) -> Any:
    return session_scope(session_factory(engine))


def _computed(seeded: Any) -> tuple[str, str | None]:
    return seeded.analysis["verdict"]["verdict"], seeded.analysis["verdict"]["recommended"]


def _agreeing(seeded: Any) -> dict[str, Any]:
    verdict, recommended = _computed(seeded)
    if verdict in ("ship", "dont_ship", "keep_running"):
        return {"verdict": verdict, "winner_arm": recommended if verdict == "ship" else None}
    pytest.fail(f"the seeded analysis should reach a declarable verdict, found {verdict!r}")


def _contradicting(seeded: Any) -> dict[str, Any]:
    verdict, _ = _computed(seeded)
    return {"verdict": "dont_ship"} if verdict != "dont_ship" else {"verdict": "ship", "winner_arm": "cand"}


@pytest.mark.postgres
def test_a_viewer_cannot_declare_even_through_the_data_layer(seeded: Any, engine: sa.Engine) -> None:
    with _session(engine) as session, pytest.raises(PermissionDeniedError, match="role 'decider'"):
        declare(
            session, user=VIEWER, experiment_id=seeded.experiment_id, reason="looks good", **_agreeing(seeded)
        )
    with _session(engine) as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(Decision)) == 0


@pytest.mark.postgres
def test_a_decision_stores_who_when_why_and_the_evidence(seeded: Any, engine: sa.Engine) -> None:
    with _session(engine) as session:
        record = declare(
            session, user=DECIDER, experiment_id=seeded.experiment_id, reason="primary metric up",
            **_agreeing(seeded),
        )  # fmt: skip
    with _session(engine) as session:
        row = session.get_one(Decision, record.id)
        snapshot_id = session.scalar(sa.select(AnalysisSnapshot.id))
        assert (row.decided_by, row.reason, row.is_override) == ("erin", "primary metric up", False)
        assert row.computed_verdict == seeded.analysis["verdict"]["verdict"]
        assert row.analysis_snapshot_id == snapshot_id and row.supersedes_id is None
        assert row.evidence["analysis"] == seeded.analysis
        assert row.evidence["analysis_snapshot_id"] == snapshot_id
        assert row.evidence["price_snapshot"] == PRICES
        assert row.evidence["scorer_versions"] == [{"name": "judge", "version": "1"}]
        assert row.decided_at is not None


@pytest.mark.postgres
def test_contradicting_the_computed_verdict_needs_an_override_reason(seeded: Any, engine: sa.Engine) -> None:
    contradicting = _contradicting(seeded)
    with _session(engine) as session, pytest.raises(DecisionError, match="override_reason"):
        declare(session, user=DECIDER, experiment_id=seeded.experiment_id, reason="no", **contradicting)
    with _session(engine) as session:
        record = declare(
            session, user=DECIDER, experiment_id=seeded.experiment_id, reason="legal asked us to wait",
            override_reason="contract with the vendor not signed", **contradicting,
        )  # fmt: skip
    assert record.is_override and record.computed_verdict == seeded.analysis["verdict"]["verdict"]
    assert record.override_reason == "contract with the vendor not signed"


@pytest.mark.postgres
def test_bad_declarations_name_the_field(seeded: Any, engine: sa.Engine) -> None:
    eid = seeded.experiment_id
    cases: list[tuple[dict[str, Any], str]] = [
        ({"verdict": "ship", "winner_arm": "ctrl", "reason": "x"}, "winner_arm"),
        ({"verdict": "keep_running", "winner_arm": "cand", "reason": "x"}, "winner_arm"),
        ({"verdict": "maybe", "reason": "x"}, "verdict"),
        ({**_agreeing(seeded), "reason": "   "}, "reason"),
    ]
    for kwargs, field in cases:
        with _session(engine) as session, pytest.raises(DecisionError, match=field):
            declare(session, user=DECIDER, experiment_id=eid, **kwargs)


@pytest.mark.postgres
def test_a_new_decision_supersedes_and_a_stale_view_is_refused(seeded: Any, engine: sa.Engine) -> None:
    eid = seeded.experiment_id
    with _session(engine) as session:
        first = declare(session, user=DECIDER, experiment_id=eid, reason="first", **_agreeing(seeded))
    with _session(engine) as session, pytest.raises(StaleDecisionError, match="current decision is"):
        declare(session, user=DECIDER, experiment_id=eid, reason="again", **_agreeing(seeded))
    with _session(engine) as session:
        second = declare(
            session, user=DECIDER, experiment_id=eid, verdict="keep_running", reason="wait a week",
            override_reason="seasonal traffic", expected_current_id=first.id,
        ) if _agreeing(seeded)["verdict"] != "keep_running" else declare(
            session, user=DECIDER, experiment_id=eid, reason="second", expected_current_id=first.id,
            **_agreeing(seeded),
        )  # fmt: skip
    assert second.supersedes_id == first.id
    with _session(engine) as session:
        assert [d.id for d in history(session, eid)] == [second.id, first.id]
        current_row = current(session, eid)
        assert current_row is not None and current_row.id == second.id


@pytest.mark.postgres
def test_postgres_refuses_to_update_or_delete_a_decision(seeded: Any, engine: sa.Engine) -> None:
    with _session(engine) as session:
        record = declare(
            session, user=DECIDER, experiment_id=seeded.experiment_id, reason="r", **_agreeing(seeded)
        )
    for statement in (
        sa.update(Decision).where(Decision.id == record.id).values(reason="edited"),
        sa.delete(Decision).where(Decision.id == record.id),
    ):
        with pytest.raises(sa.exc.IntegrityError, match=IMMUTABLE), _session(engine) as session:
            session.execute(statement)
    _deleting_the_snapshot_and_experiment_still_works(engine, record.id)


def _deleting_the_snapshot_and_experiment_still_works(engine: sa.Engine, decision_id: int) -> None:
    with _session(engine) as session:
        session.execute(sa.delete(AnalysisSnapshot))
    with _session(engine) as session:
        row = session.get_one(Decision, decision_id)
        assert row.analysis_snapshot_id is None and row.evidence["analysis_snapshot_id"] is not None
        session.execute(sa.delete(Experiment))
    with _session(engine) as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(Decision)) == 0


def test_sqlite_refuses_to_update_or_delete_a_decision(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'decisions.db'}")
    migrate.upgrade(engine)
    with _session(engine) as session:
        experiment, _, _ = add_experiment(session, "embedded")
        snapshot = AnalysisSnapshot(experiment_id=experiment.id, analysis={"verdict": None})
        session.add(snapshot)
        session.flush()
        record = declare(
            session, user=DECIDER, experiment_id=experiment.id, verdict="keep_running", reason="r"
        )
    for statement in (
        sa.update(Decision).where(Decision.id == record.id).values(reason="edited"),
        sa.update(Decision).where(Decision.id == record.id).values(analysis_snapshot_id=snapshot.id + 1),
        sa.delete(Decision).where(Decision.id == record.id),
    ):
        with pytest.raises(sa.exc.IntegrityError, match=IMMUTABLE), _session(engine) as session:
            session.execute(statement)
    _deleting_the_snapshot_and_experiment_still_works(engine, record.id)
    engine.dispose()


@pytest.mark.postgres
def test_without_a_snapshot_a_fresh_analysis_is_computed_and_cited(seeded: Any, engine: sa.Engine) -> None:
    with _session(engine) as session:
        session.execute(sa.delete(AnalysisSnapshot))
        # Stored scores are named `judge` (the seeded snapshot came from a table naming it judge_score).
        session.execute(sa.update(Experiment).values(plan={**PLAN, "primary_metric": "judge"}))
    with _session(engine) as session:
        record = declare(
            session, user=DECIDER, experiment_id=seeded.experiment_id, verdict="keep_running", reason="r",
            override_reason="checking", winner_arm=None,
        )  # fmt: skip
    with _session(engine) as session:
        snapshot = session.scalars(sa.select(AnalysisSnapshot)).one()
        assert record.analysis_snapshot_id == snapshot.id
        assert record.evidence["analysis"] == snapshot.analysis
        assert record.computed_verdict == snapshot.verdict


def _snapshot(engine: sa.Engine, experiment_id: int, verdict: str, recommended: str | None = None) -> None:
    """A newer snapshot whose computed verdict is `verdict` (declare reads the latest)."""
    doc: dict[str, Any] = {"verdict": {"verdict": verdict, "recommended": recommended, "reasons": []}}
    with _session(engine) as session:
        session.add(AnalysisSnapshot(experiment_id=experiment_id, verdict=verdict, analysis=doc))


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("computed", "agreeing", "against"),
    [("inconclusive", "dont_ship", "ship"), ("invalid", "keep_running", "dont_ship")],
)
def test_inconclusive_agrees_with_dont_ship_and_invalid_with_keep_running(
    seeded: Any, engine: sa.Engine, computed: str, agreeing: str, against: str
) -> None:
    eid = seeded.experiment_id
    _snapshot(engine, eid, computed)
    assert AGREEING[computed] == agreeing
    with _session(engine) as session:
        record = declare(session, user=DECIDER, experiment_id=eid, verdict=agreeing, reason="as computed")
    assert not record.is_override and record.computed_verdict == computed
    with _session(engine) as session, pytest.raises(DecisionError, match="override_reason"):
        declare(
            session, user=DECIDER, experiment_id=eid, verdict=against, reason="no",
            winner_arm="cand" if against == "ship" else None, expected_current_id=record.id,
        )  # fmt: skip


@pytest.mark.postgres
def test_shipping_concludes_the_experiment_and_keep_running_never_does(
    seeded: Any, engine: sa.Engine
) -> None:
    eid = seeded.experiment_id
    _snapshot(engine, eid, "keep_running")
    with _session(engine) as session:
        first = declare(
            session, user=DECIDER, experiment_id=eid, verdict="keep_running", reason="wait", conclude=True
        )
    with _session(engine) as session:
        assert session.get_one(Experiment, eid).status == "running" and not first.evidence["concluded"]
    _snapshot(engine, eid, "ship", "cand")
    with _session(engine) as session:
        second = declare(
            session, user=DECIDER, experiment_id=eid, verdict="ship", winner_arm="cand", reason="it passed",
            conclude=True, expected_current_id=first.id,
        )  # fmt: skip
    assert not second.is_override and second.evidence["concluded"] is True
    with _session(engine) as session:
        experiment = session.get_one(Experiment, eid)
        assert experiment.status == "concluded" and experiment.concluded_at is not None
        trail = [
            (c.before, c.after, c.changed_by, c.reason) for c in store.changes.history(eid, session=session)
        ]
        assert trail == [
            ("running", "concluded", "erin", "declared ship: it passed")
        ]  # the decider, as decided_by
    with _session(engine) as session:  # declaring again on a concluded experiment leaves it concluded
        third = declare(
            session, user=DECIDER, experiment_id=eid, verdict="ship", winner_arm="cand", reason="confirmed",
            conclude=True, expected_current_id=second.id,
        )  # fmt: skip
    assert third.supersedes_id == second.id
