"""shadowlab.store: typed reads and writes, on SQLite and on the real Postgres."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, get_args

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from shadowlab import migrate, store
from shadowlab.db import create_engine, session_factory, session_scope
from shadowlab.errors import ShadowlabError
from shadowlab.experiment import ExperimentSpec, ExperimentSpecError, parse_spec
from shadowlab.models import CapturedRequest, Label, Replay, ReplayStatus
from shadowlab.pricing import PriceTable
from shadowlab.scorer_versions import REPLAY_STATUSES

SPEC: dict[str, Any] = {
    "name": "haiku-vs-sonnet",
    "control": {"name": "sonnet", "provider": "anthropic", "model": "sonnet-x"},
    "candidates": [{"name": "haiku", "provider": "anthropic", "model": "haiku-x"}],
    "aa": {"name": "sonnet-aa", "provider": "anthropic", "model": "sonnet-x"},
    "allowed_providers": ["anthropic"],
    "budget": {"usd": 5},
    "plan": {"primary_metric": "quality"},
}
PRICES = PriceTable.from_json(
    {m: {"input_cost_per_token": 1e-6, "output_cost_per_token": 5e-6} for m in ("sonnet-x", "haiku-x")}
)
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def spec(**changes: Any) -> ExperimentSpec:
    return parse_spec(SPEC | changes)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    url = (
        f"sqlite:///{tmp_path / 'store.db'}"
        if request.param == "sqlite"
        else request.getfixturevalue("pg_migrated")
    )
    engine = create_engine(url)
    migrate.upgrade(engine)  # Postgres: a copy of the migrated template, already at head
    yield session_factory(engine)
    engine.dispose()


@pytest.fixture
def experiment_id(factory: sessionmaker[Session]) -> int:
    with session_scope(factory) as session:
        return store.experiments.create(spec(), session=session, created_by="ana").id


def _replays(
    session: Session, experiment_id: int, statuses: dict[str, list[str]], prefix: str = "r"
) -> dict[str, int]:
    """One capture per position in the lists (request ids `prefix`0, …); arm name → statuses of its replays;
    returns capture ids."""
    arms = {arm.name: arm.id for arm in store.arms.of_experiment(experiment_id, session=session)}
    n = max(len(s) for s in statuses.values())
    captures = [
        CapturedRequest(
            request_id=f"{prefix}{i}", captured_at=T0, service="chat", api="anthropic.messages", request={}
        )
        for i in range(n)
    ]
    session.add_all(captures)
    session.flush()
    for arm, states in statuses.items():
        session.add_all(
            Replay(experiment_id=experiment_id, arm_id=arms[arm], captured_request_id=c.id, status=status)
            for c, status in zip(captures, states, strict=False)
        )
    session.flush()
    return {c.request_id: c.id for c in captures}


def test_a_missing_row_is_one_clear_error(factory: sessionmaker[Session]) -> None:
    with factory() as session:
        with pytest.raises(store.NotFoundError, match="experiment 'nope': not found") as raised:
            store.experiments.by_name("nope", session=session)
        for lookup in (
            store.experiments.by_id,
            store.captures.by_id,
            store.replays.by_id,
            store.snapshots.by_id,
        ):
            with pytest.raises(store.NotFoundError, match="id 404: not found"):
                lookup(404, session=session)
    assert isinstance(raised.value, ShadowlabError) and raised.value.exit_code == 2
    assert isinstance(raised.value, LookupError)


def test_create_stores_a_draft_with_its_arms_and_refuses_a_taken_name(
    factory: sessionmaker[Session], experiment_id: int
) -> None:
    with session_scope(factory) as session:
        found = store.experiments.by_name("haiku-vs-sonnet", session=session)
        assert (found.id, found.status, found.budget_usd, found.created_by) == (
            experiment_id,
            "draft",
            5,
            "ana",
        )
        assert store.experiments.spec_of(found) == spec()
        assert [a.name for a in store.arms.of_experiment(experiment_id, session=session)] == [
            "sonnet", "haiku", "sonnet-aa",
        ]  # fmt: skip
        assert store.arms.roles(experiment_id, session=session) == {
            "sonnet": "control", "haiku": "candidate", "sonnet-aa": "aa",
        }  # fmt: skip
        with pytest.raises(store.experiments.ExperimentExistsError, match="already exists"):
            store.experiments.create(spec(), session=session)
        # a spec not read from a file (load_spec) is checked too: a provider no one registered, or one
        # outside the allowlist, would surface only when replays start
        with pytest.raises(
            ExperimentSpecError, match=r"'second': aa.provider: expected a registered provider"
        ):
            store.experiments.create(
                spec(name="second", aa={**SPEC["aa"], "provider": "anthropc"}), session=session
            )
        outside = {"name": "mini", "provider": "openai", "model": "gpt-4o-mini"}
        with pytest.raises(
            ExperimentSpecError, match=r"candidates\[1\].provider: expected a provider in allowed_"
        ):
            store.experiments.create(
                spec(name="second", candidates=[SPEC["candidates"][0], outside]), session=session
            )
        store.experiments.create(spec(name="second"), session=session)
    with factory() as session:
        assert [e.name for e in store.experiments.list_all(session=session)] == ["haiku-vs-sonnet", "second"]


def test_start_snapshots_prices_and_transitions_follow_the_status(
    factory: sessionmaker[Session], experiment_id: int
) -> None:
    with session_scope(factory) as session:
        started = store.experiments.start("haiku-vs-sonnet", PRICES, session=session)
        assert started.status == "running" and started.started_at is not None
        assert sorted(started.price_snapshot) == ["haiku-x", "sonnet-x"]
    with session_scope(factory) as session:
        with pytest.raises(store.experiments.ExperimentStateError, match="start expects status draft"):
            store.experiments.start("haiku-vs-sonnet", PRICES, session=session)
        with pytest.raises(store.experiments.ExperimentStateError, match="resume expects status"):
            store.experiments.transition("haiku-vs-sonnet", "resume", session=session)
        assert store.experiments.transition("haiku-vs-sonnet", "pause", session=session).status == "paused"
        assert store.experiments.transition("haiku-vs-sonnet", "resume", session=session).status == "running"
        concluded = store.experiments.transition("haiku-vs-sonnet", "conclude", session=session)
        assert concluded.status == "concluded" and concluded.concluded_at is not None
    with factory() as session:
        assert store.experiments.by_id(experiment_id, session=session, lock=True).status == "concluded"


def test_every_status_transition_is_kept_in_an_append_only_trail(
    factory: sessionmaker[Session], experiment_id: int
) -> None:
    with session_scope(factory) as session:
        store.experiments.start("haiku-vs-sonnet", PRICES, session=session)
        store.experiments.transition(
            "haiku-vs-sonnet", "pause", by="ana", reason="judge outage", session=session
        )
    with session_scope(factory) as session, pytest.raises(store.experiments.ExperimentStateError):
        store.experiments.transition("haiku-vs-sonnet", "pause", by="ana", session=session)  # leaves no row
    with session_scope(factory) as session:
        store.experiments.transition("haiku-vs-sonnet", "conclude", by="bo", reason="  ", session=session)
    with factory() as session:
        trail = store.changes.history(experiment_id, session=session)
        assert [(c.field, c.before, c.after, c.changed_by, c.reason) for c in trail] == [
            ("status", "paused", "concluded", "bo", None),
            ("status", "running", "paused", "ana", "judge outage"),
            ("status", "draft", "running", store.changes.LOCAL_USER, None),
        ]
        assert trail[0].changed_at >= trail[1].changed_at >= trail[2].changed_at
    for statement in ("UPDATE experiment_changes SET reason = 'rewritten'", "DELETE FROM experiment_changes"):
        refused = pytest.raises(sa.exc.DatabaseError, match="experiment changes are an audit trail")
        with refused, session_scope(factory) as session:
            session.execute(sa.text(statement))
    with session_scope(factory) as session:  # deleting the experiment deletes its trail
        session.execute(sa.text("DELETE FROM experiments WHERE id = :id"), {"id": experiment_id})
    with factory() as session:
        assert store.changes.history(experiment_id, session=session) == []


def test_replay_counts_and_the_pairs_a_person_can_label(
    factory: sessionmaker[Session], experiment_id: int
) -> None:
    with session_scope(factory) as session:
        ids = _replays(
            session,
            experiment_id,
            {
                "sonnet": ["ok", "ok", "error"],
                "haiku": ["ok", "error", "ok"],
                "sonnet-aa": ["ok", "ok", "ok"],
            },
        )
        arms = {a.name: a.id for a in store.arms.of_experiment(experiment_id, session=session)}
        for arm_b in ("haiku", "sonnet-aa"):
            session.add(Label(experiment_id=experiment_id, captured_request_id=ids["r0"],
                              arm_a_id=arms["sonnet"], arm_b_id=arms[arm_b], labeler="ana", order_shown="ab",
                              result="a"))  # fmt: skip
    with factory() as session:
        assert store.replays.counts_by_status(experiment_id, session=session) == {"ok": 7, "error": 2}
        assert (
            store.replays.candidate_pairs(experiment_id, session=session) == 1
        )  # r0 only (r1: haiku failed)
        assert store.labels.candidate_count(experiment_id, "ana", session=session) == 1  # the A/A copy is not
        assert store.labels.candidate_count(experiment_id, "bo", session=session) == 0
        found = store.captures.by_request_ids(["r1", "r2", "missing"], session=session)
        assert sorted(found) == ["r1", "r2"] and found["r1"].id == ids["r1"]
        assert store.captures.by_request_ids([], session=session) == {}


def test_the_replay_span_is_the_experiments_smallest_and_largest_replay_id_and_count(
    factory: sessionmaker[Session], experiment_id: int
) -> None:
    """`replay_span` reads each status' bounds from the index: a failed replay holding the smallest id and
    another the largest must count, and another experiment's replays must not."""
    with factory() as session:
        assert store.scorers.replay_span(experiment_id, session=session) == (0, 0, 0)
    with session_scope(factory) as session:
        other = store.experiments.create(spec(name="other"), session=session, created_by="ana").id
        _replays(session, other, {"sonnet": ["ok"]}, prefix="a")
        _replays(session, experiment_id, {"sonnet": ["error", "ok"], "haiku": ["ok", "error"]})
        _replays(session, other, {"haiku": ["error"]}, prefix="b")
    with factory() as session:
        ids = session.execute(
            sa.select(Replay.id, Replay.status)
            .where(Replay.experiment_id == experiment_id)
            .order_by(Replay.id)
        ).all()
        assert [s for _, s in ids] == ["error", "ok", "ok", "error"]
        assert store.scorers.replay_span(experiment_id, session=session) == (ids[0][0], ids[-1][0], 4)
    assert get_args(ReplayStatus) == REPLAY_STATUSES  # the statuses whose bounds are looked up


def test_scores_and_preferences_are_written_once_and_read_by_version(
    factory: sessionmaker[Session], experiment_id: int
) -> None:
    with session_scope(factory) as session:
        ids = _replays(session, experiment_id, {"sonnet": ["ok"], "haiku": ["ok"]})
        arms = {a.name: a.id for a in store.arms.of_experiment(experiment_id, session=session)}
        replay = {r.arm_id: r.id for r in session.query(Replay).filter_by(experiment_id=experiment_id)}
        for value in (4.0, 1.0):  # the second write of the same version is ignored
            store.scores.add(replay_id=replay[arms["haiku"]], scorer_name="quality", scorer_version="v1",
                             value=value, rationale=None, details={}, session=session)  # fmt: skip
        store.scores.add(replay_id=replay[arms["sonnet"]], scorer_name="quality", scorer_version="v1",
                         value=None, rationale="failed", details={"failure": "x"},
                         session=session)  # fmt: skip
        for order, result in (("ab", "b"), ("ba", "tie"), ("ab", "a")):
            store.scores.add_preference(
                experiment_id=experiment_id, captured_request_id=ids["r0"], arm_a_id=arms["sonnet"],
                arm_b_id=arms["haiku"], scorer_name="pref", scorer_version="p1", order_shown=order,
                result=result, rationale=None, session=session,
            )  # fmt: skip
    with factory() as session:
        assert store.scores.point_values(experiment_id, "quality", "v1", session=session) == {
            (arms["haiku"], ids["r0"]): 4.0,
            (arms["sonnet"], ids["r0"]): None,
        }
        assert store.scores.point_values(experiment_id, "quality", "v2", session=session) == {}
        found = store.scores.preference_results(experiment_id, "pref", "p1", arms["haiku"], session=session)
        assert sorted(found) == [(ids["r0"], "ab", "b"), (ids["r0"], "ba", "tie")]


def test_scorer_versions_from_scores_and_preferences(
    factory: sessionmaker[Session], experiment_id: int
) -> None:
    with session_scope(factory) as session:
        ids = _replays(session, experiment_id, {"sonnet": ["ok"], "haiku": ["ok"]})
        arms = {a.name: a.id for a in store.arms.of_experiment(experiment_id, session=session)}
        replay = {r.arm_id: r.id for r in session.query(Replay).filter_by(experiment_id=experiment_id)}
        for version, arm in (("v2", "sonnet"), ("v1", "sonnet"), ("v1", "haiku")):
            store.scores.add(replay_id=replay[arms[arm]], scorer_name="quality", scorer_version=version,
                             value=1.0, rationale=None, details={}, session=session)  # fmt: skip
        for name in ("pref", "human:ana"):
            store.scores.add_preference(
                experiment_id=experiment_id, captured_request_id=ids["r0"], arm_a_id=arms["sonnet"],
                arm_b_id=arms["haiku"], scorer_name=name, scorer_version="p1", order_shown="ab", result="a",
                rationale=None, session=session,
            )  # fmt: skip
    with factory() as session:
        found = store.scorers.versions(experiment_id, session=session)
        assert [(v.name, v.version, v.rows) for v in found] == [
            ("human:ana", "p1", 1), ("pref", "p1", 1), ("quality", "v1", 2), ("quality", "v2", 1),
        ]  # fmt: skip
        assert all(v.first_at <= v.last_at for v in found)
        quality = store.scorers.versions(experiment_id, session=session, name="quality")
        assert [v.version for v in quality] == ["v1", "v2"]
        assert [v.name for v in store.scorers.versions(experiment_id, session=session, pairwise=False)] == [
            "quality", "quality",
        ]  # fmt: skip
        assert store.scorers.latest_point_versions(experiment_id, session=session) == {"quality": "v1"}
        assert store.scorers.pairwise_judges(experiment_id, session=session) == ["pref"]


def test_the_latest_snapshot_and_the_decision_trail(
    factory: sessionmaker[Session], experiment_id: int
) -> None:
    with session_scope(factory) as session:
        assert store.snapshots.latest(experiment_id, session=session) is None
        old = store.snapshots.add(experiment_id, n_requests=1, verdict="keep_running", analysis={"n": 1},
                                  computed_at=T0, session=session)  # fmt: skip
        new = store.snapshots.add(experiment_id, n_requests=2, verdict="ship", analysis={"n": 2},
                                  computed_at=T0 + timedelta(hours=1), session=session)  # fmt: skip
        assert old.id != new.id
    with session_scope(factory) as session:
        latest = store.snapshots.latest(experiment_id, session=session)
        assert latest is not None and (latest.id, latest.verdict, latest.analysis) == (
            new.id,
            "ship",
            {"n": 2},
        )
        assert store.snapshots.by_id(old.id, session=session).n_requests == 1
        assert store.decisions.current(experiment_id, session=session) is None
        previous = None
        for verdict in ("keep_running", "ship"):
            previous = store.decisions.add(
                experiment_id, verdict=verdict, winner_arm="haiku" if verdict == "ship" else None,
                computed_verdict="ship", is_override=verdict != "ship", decided_by="ana", decided_at=T0,
                reason="because", evidence={}, analysis_snapshot_id=new.id,
                supersedes_id=None if previous is None else previous.id, session=session,
            )  # fmt: skip
    with factory() as session:
        trail = store.decisions.history(experiment_id, session=session)
        assert [d.verdict for d in trail] == ["keep_running", "ship"]
        assert trail[1].supersedes_id == trail[0].id
        current = store.decisions.current(experiment_id, session=session)
        assert current is not None and current.id == trail[1].id
