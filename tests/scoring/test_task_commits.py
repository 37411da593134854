"""A group commit of results (`TaskQueue.finish`, Postgres) skips the wait for the disk for its own
transaction only: the pooled connection it used keeps the server's `synchronous_commit` for what runs on it
next (the budget's reservations and settlements, which must be durable at commit)."""

from __future__ import annotations

from typing import Any, cast

import sqlalchemy as sa

from scoring import tasks
from scoring.base import ScoreResult
from scoring.store import PointItem, PointWritten
from scoring.tasks import ScorerKey, TaskQueue
from shadowlab import store
from shadowlab.db import driver_rows, session_factory
from shadowlab.models import Score, ScoreTask, utcnow
from tests.support.replayed_arms import Seeded


def test_group_commit_turns_synchronous_commit_off_for_itself_only(seeded: Seeded) -> None:
    url = seeded.factory.kw["bind"].url
    # One connection (the finish's is the next's), durable commits as its own setting: `make test`'s cluster
    # runs with synchronous_commit off server-wide (SHADOWLAB_SERVICES_DURABILITY=fast), `make services`' on.
    engine = sa.create_engine(
        url, pool_size=1, max_overflow=0, connect_args={"options": "-c synchronous_commit=on"}
    )
    try:
        factory = session_factory(engine)
        with engine.connect() as conn:
            pid, before = conn.execute(
                sa.text("SELECT pg_backend_pid(), current_setting('synchronous_commit')")
            ).one()
        queue = TaskQueue(
            factory, ScorerKey(seeded.experiment_id, "q", "v1", "point"), worker_id="w", lease_s=60
        )
        queue.seed()
        claimed = cast(list[PointItem], queue.claim(5))  # a pointwise queue's
        assert len(claimed) == 5
        *items, last = claimed
        queue.finish(
            [PointWritten(i.task_id, i.replay_id, ScoreResult(7.0, rationale="ok")) for i in items], []
        )
        with engine.connect() as conn:
            assert conn.execute(
                sa.text("SELECT pg_backend_pid(), current_setting('synchronous_commit')")
            ).one() == (pid, before)
            assert before == "on"
            values = conn.execute(sa.select(Score.value).where(Score.scorer_name == "q")).scalars().all()
            assert values == [7.0] * 4
            done = conn.execute(
                sa.select(sa.func.count()).where(ScoreTask.scorer_name == "q", ScoreTask.done.is_(True))
            ).scalar_one()
            assert done == 4
            conn.commit()
            # Inside its transaction the statement has turned the setting off (read before the commit).
            with conn.begin() as transaction:
                row: dict[str, Any] = {
                    "replay_id": last.replay_id, "scorer_name": "q", "scorer_version": "v1", "value": 3.0,
                    "rationale": None, "details": {}, "task_id": last.task_id,
                }  # fmt: skip
                batch = store.scores.insert_ignore_rows(Score, [row], tasks._FINISH_TYPES[Score])
                driver_rows(conn, tasks._PG_FINISH[Score], {"rows": batch, "now": utcnow()})
                assert conn.execute(sa.text("SELECT current_setting('synchronous_commit')")).scalar() == "off"
                transaction.rollback()
            assert conn.execute(sa.text("SELECT current_setting('synchronous_commit')")).scalar() == "on"
    finally:
        engine.dispose()
