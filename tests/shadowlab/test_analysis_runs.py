"""Fresh analyses without a command (`shadowlab.analysis_runs`): `--analyze-every` read as an interval, and
`PeriodicAnalysis` (what `replay`/`score --all --follow` tick every pass) starting an analysis of an
experiment only when its latest snapshot is older than the interval and something arrived since, one at a
time; on a real Postgres, with a fake clock and a recording start."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from shadowlab import migrate, store
from shadowlab.analysis_runs import AnalysisRun, PeriodicAnalysis, analyze_every, parse_interval
from shadowlab.db import create_engine, session_factory, session_scope
from shadowlab.errors import ConfigError
from shadowlab.experiment import parse_spec
from shadowlab.models import AnalysisSnapshot, CapturedRequest, Replay, WorkLease
from tests.support.clock import FakeClock
from tests.support.dashboard_seed import PLAN, seed
from tests.support.waiting import wait_for


def test_the_interval_reads_minutes_seconds_hours_or_off() -> None:
    assert [parse_interval(t) for t in ("5m", "90s", "1h", "2.5m", "off", "0")] == [
        300,
        90,
        3600,
        150,
        None,
        None,
    ]
    for bad in ("5", "5 minutes", "-1m", "0m", ""):
        with pytest.raises(ConfigError, match=r"^--analyze-every: expected an interval like 5m"):
            parse_interval(bad)
    assert (analyze_every(None, follow=True), analyze_every(None, follow=False)) == (300, None)
    assert analyze_every("off", follow=True) is None
    with pytest.raises(ConfigError, match="expected --follow with it"):
        analyze_every("1m", follow=False)


@pytest.mark.postgres
def test_an_analysis_starts_when_the_snapshot_is_old_and_data_arrived_since(pg_database: str) -> None:
    engine = create_engine(pg_database)
    migrate.upgrade(engine)
    engine.dispose()
    seeded = seed(pg_database, n=20)
    engine = create_engine(pg_database)
    factory = session_factory(engine)
    clock = FakeClock(datetime.now(UTC) + timedelta(hours=1))  # after every replay and score of the seed
    started: list[str] = []

    def start(name: str) -> AnalysisRun:  # what `shadowlab analyze` does: store a snapshot, here at once
        with session_scope(factory) as session:
            store.snapshots.add(seeded.experiment_id, n_requests=20, verdict=None, analysis={},
                                computed_at=clock.now, session=session)  # fmt: skip
        started.append(name)
        return AnalysisRun(name, clock.now, subprocess.Popen(["true"]), tempfile.TemporaryFile())

    def tick() -> list[str]:
        before = len(started)
        periodic.tick(["checkout-assistant-v2", "deleted-meanwhile"])
        for run in periodic.running.values():
            run.wait(30)
        return started[before:]

    try:
        with session_scope(factory) as session:  # the seed's snapshot is 3 h old
            session.execute(sa.update(AnalysisSnapshot).values(computed_at=clock.now - timedelta(hours=3)))
        periodic = PeriodicAnalysis(factory, 300, now=clock.wall, start=start)
        assert tick() == []  # a process just started waits one interval before its first look
        clock.advance(299)
        assert tick() == []
        clock.advance(1)
        assert tick() == ["checkout-assistant-v2"]  # 3 h old, replays and scores since
        clock.advance(60)
        assert tick() == []  # a minute old
        clock.advance(300)
        assert tick() == []  # six minutes old, but nothing arrived since
        with session_scope(factory) as session:  # a replay finishes
            replay = session.scalars(sa.select(Replay).limit(1)).one()
            replay.finished_at = clock.now
        clock.advance(30)
        assert tick() == []  # looked at once a minute at most
        clock.advance(30)
        assert tick() == ["checkout-assistant-v2"]
        periodic.tick([])
        assert periodic.running == {}  # a finished run is let go on the next pass
    finally:
        engine.dispose()


@pytest.mark.postgres
@pytest.mark.parametrize("stage", ["score", "replay"])
def test_all_follow_stores_a_fresh_analysis_every_interval(
    stage: str, pg_database: str, tmp_path: Path
) -> None:
    """The hook in both follow loops, end to end: `score|replay --all --follow --analyze-every 1s` starts
    `shadowlab analyze` (a process of its own) for a running experiment whose snapshot is old; the snapshot
    appears."""
    engine = create_engine(pg_database)
    migrate.upgrade(engine)
    seeded = seed(pg_database)
    with session_scope(session_factory(engine)) as session:
        session.execute(
            sa.update(AnalysisSnapshot).values(computed_at=datetime.now(UTC) - timedelta(hours=3))
        )
        # the database loader names the judge's metric by its scorer
        experiment = store.experiments.by_id(seeded.experiment_id, session=session)
        experiment.plan = {**PLAN, "primary_metric": "judge"}
        # the replayer reads the stored spec (the seed's arms)
        experiment.spec = parse_spec(
            {"name": experiment.name,
             "control": {"name": "ctrl", "provider": "anthropic", "model": "model-a"},
             "candidates": [{"name": "cand", "provider": "openai", "model": "model-b"}],
             "allowed_providers": ["anthropic", "openai"], "budget": {"usd": 5}, "plan": experiment.plan},
            "seeded.yaml",
        ).model_dump(mode="json")  # fmt: skip
        for arm in experiment.arms:
            arm.provider = "anthropic" if arm.role == "control" else "openai"
        # and every seeded request is done, as the replayer records it: the follower has nothing to call
        session.execute(
            sa.insert(WorkLease).from_select(
                ["experiment_id", "captured_request_id", "done"],
                sa.select(sa.literal(experiment.id), CapturedRequest.id, sa.true()),
            )
        )

    def snapshots() -> int:
        with engine.connect() as conn:
            return int(conn.scalar(sa.select(sa.func.count()).select_from(AnalysisSnapshot)) or 0)

    env = {k: v for k, v in os.environ.items() if not k.startswith("SHADOWLAB_")}
    env["SHADOWLAB_DATABASE_URL"] = pg_database
    follower = subprocess.Popen(
        [sys.executable, "-m", "cli.main", stage, "--all", "--follow", "--analyze-every", "1s"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_for(lambda: snapshots() == 2 or follower.poll() is not None, "a snapshot from the follower")
    finally:
        follower.send_signal(signal.SIGTERM)
        _, err = follower.communicate(timeout=60)
        engine.dispose()
    assert follower.returncode == 0, err
    assert "analysing checkout-assistant-v2" in err
