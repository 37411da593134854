"""Score tasks: judging work leased like replays (`score_tasks`), so any number of `shadowlab score`
processes judge each item once.

A task is one item of one scorer version: a replay (pointwise) or a request, candidate and order shown
(pairwise). `seed` inserts a task for every item still without a result, in pages of replay ids and inside
the database (`INSERT … SELECT … ON CONFLICT DO NOTHING`: nothing is read into memory, and processes seeding
at once add each task once). `claim` takes up to `limit` open tasks — never claimed, or held by a process
whose deadline has passed — with `FOR UPDATE SKIP LOCKED` on Postgres (`BEGIN IMMEDIATE` on SQLite), and
reads only their bodies. The holder pushes its deadlines (`extend`) while it works; `finish` writes the
results and marks their tasks done in one transaction. A task whose call failed (provider, budget, an
unparseable pairwise verdict) is deleted: the item has no result, so the next run seeds it again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal, cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, aliased, sessionmaker

from scoring.pairwise import ORDERS
from scoring.store import (
    PairItem,
    PointItem,
    Written,
    claimed_point_items,
    claiming_points,
    control_and_candidates,
    pair_items,
    point_items,
    result_rows,
    write,
)
from shadowlab import store
from shadowlab.db import driver_rows, pg_json_rows, session_scope
from shadowlab.models import Preference, Replay, Score, ScoreTask, utcnow
from shadowlab.pg_async import AsyncStatements

__all__ = ["Kind", "ScorerKey", "TaskQueue"]

Kind = Literal["point", "pair"]
_SEED_PAGE = 10_000  # replay ids per seeding transaction
# The table for the hot statements (claims, completions): the ORM's bulk update machinery costs more than SQL.
_TASKS = cast(sa.Table, ScoreTask.__table__)
_DONE = sa.update(_TASKS).where(_TASKS.c.id.in_(sa.bindparam("ids", expanding=True))).values(done=True)
# Postgres: the ids as one array, so the statement is one text whatever the batch size (prepared once).
_PG_DONE = sa.text("UPDATE score_tasks SET done = true WHERE id = ANY(CAST(:ids AS bigint[]))")
# A group commit of results does not wait for its WAL to reach the disk (`synchronous_commit` off for that
# transaction alone: set_config(…, true), so the pooled connection keeps the server's setting for the budget's
# statements). It is visible to every session at once and survives a scorer killed at any point; only a crash
# of Postgres itself can lose the last such commits, and then results and their tasks' `done` together: those
# tasks are open again once their lease has passed and are judged again (paid again, as calls whose results a
# killed scorer never wrote are). No score is stored twice (unique rows), and no money is in this transaction:
# judge calls' reservations and settlements (`budget_judges`) stay durable at commit. Each group commit waited
# ~2 ms for the disk here, with its results' places held through it.
_NO_FLUSH_WAIT = "no_flush_wait AS (SELECT set_config('synchronous_commit', 'off', true) AS off)"
# Postgres: a group commit of results of one kind, its rows and its tasks done, as one statement, its batch
# one JSON parameter (each row with its task id) sent straight to the driver (`db.driver_rows`).
_FINISH_TYPES = {
    table: store.scores.batch_types(table) | {"task_id": "bigint"} for table in (Score, Preference)
}
_PG_FINISH = {
    table: sa.text(f"WITH r AS (SELECT * FROM {pg_json_rows(_FINISH_TYPES[table], 'j', 'rows')}), "
                   f"written AS ({store.scores.insert_ignore_sql(table, 'r')}), "
                   f"{_NO_FLUSH_WAIT} UPDATE score_tasks SET done = true FROM r, no_flush_wait "
                   "WHERE score_tasks.id = r.task_id")
    for table in (Score, Preference)
}  # fmt: skip


@dataclass(frozen=True)
class ScorerKey:
    """One scorer version of one experiment: what a queue hands out."""

    experiment_id: int
    name: str
    version: str
    kind: Kind


class TaskQueue:
    """The tasks of one scorer version, as seen by one process (`worker_id`)."""

    def __init__(
        self, factory: sessionmaker[Session], key: ScorerKey, *, worker_id: str, lease_s: float
    ) -> None:
        self.factory, self.key, self.worker_id, self.lease_s = factory, key, worker_id, lease_s
        postgres = factory.kw["bind"].dialect.name == "postgresql"
        self._insert = postgresql.insert if postgres else sqlite.insert
        self._done = _PG_DONE if postgres else _DONE
        # A statement that is a whole transaction runs on its own (autocommit, Postgres): one round trip, not
        # three (BEGIN, it, COMMIT), each a wait for the GIL on return to a thread of a busy process.
        self._alone = factory.kw["bind"].execution_options(isolation_level="AUTOCOMMIT") if postgres else None
        self._arms: tuple[int, list[int]] | None = None
        # Built once (a claim every wave); on Postgres a pointwise claim reads its items in one statement.
        self._claim = self._claim_statement()
        self._claim_points = claiming_points(self._claim) if postgres and key.kind == "point" else None
        # Postgres: the claims and group commits the drive awaits run on its loop (`shadowlab.pg_async`).
        self._aio = AsyncStatements(factory.kw["bind"]) if postgres else None

    def _of_key(self) -> list[sa.ColumnElement[bool]]:
        t, k = _TASKS.c, self.key
        return [t.experiment_id == k.experiment_id, t.scorer_name == k.name, t.scorer_version == k.version]

    def arms(self, session: Session) -> tuple[int, list[int]]:
        """The control arm and the arms compared with it (pairwise), read once."""
        if self._arms is None:
            control, others = control_and_candidates(session, self.key.experiment_id)
            self._arms = control.id, [arm.id for arm in others]
        return self._arms

    def seed(self) -> None:
        """A task for every item of this scorer version that has no result and no task yet."""
        with self.factory() as session:
            low, high = session.execute(
                sa.select(sa.func.min(Replay.id), sa.func.max(Replay.id)).where(
                    Replay.experiment_id == self.key.experiment_id
                )
            ).one()
        if low is None:
            return
        for start in range(int(low) - 1, int(high), _SEED_PAGE):
            with session_scope(self.factory) as session:
                session.execute(self._seed_page(session, start, start + _SEED_PAGE))

    def _seed_page(self, session: Session, after: int, upto: int) -> sa.Executable:
        k, t = self.key, ScoreTask
        columns = ["experiment_id", "scorer_name", "scorer_version", "captured_request_id", "arm_id",
                   "order_shown", "replay_id", "attempts", "done"]  # fmt: skip
        fixed = (sa.literal(k.name), sa.literal(k.version))
        tail = (sa.literal(0), sa.literal(False))
        if k.kind == "point":
            r = Replay
            scored = sa.exists().where(Score.replay_id == r.id, Score.scorer_name == k.name,
                                       Score.scorer_version == k.version)  # fmt: skip
            rows = sa.select(r.experiment_id, *fixed, r.captured_request_id, r.arm_id, sa.literal(""), r.id,
                             *tail).where(r.experiment_id == k.experiment_id, r.status == "ok", r.id > after,
                                          r.id <= upto, ~scored)  # fmt: skip
        else:
            control, others = self.arms(session)
            b, c, p = aliased(Replay), aliased(Replay), Preference
            orders = sa.union_all(*(sa.select(sa.literal(o).label("o")) for o in ORDERS)).subquery()
            judged = sa.exists().where(
                p.experiment_id == k.experiment_id, p.captured_request_id == b.captured_request_id,
                p.arm_a_id == control, p.arm_b_id == b.arm_id, p.scorer_name == k.name,
                p.scorer_version == k.version, p.order_shown == orders.c.o,
            )  # fmt: skip
            rows = (
                sa.select(b.experiment_id, *fixed, b.captured_request_id, b.arm_id, orders.c.o,
                          sa.cast(sa.null(), t.replay_id.type), *tail)
                .join(c, sa.and_(c.captured_request_id == b.captured_request_id, c.arm_id == control,
                                 c.status == "ok"))
                .join(orders, sa.true())
                .where(b.experiment_id == k.experiment_id, b.arm_id.in_(others), b.status == "ok",
                       b.id > after, b.id <= upto, ~judged)
            )  # fmt: skip
        return self._insert(t).from_select(columns, rows).on_conflict_do_nothing()

    def _claim_statement(self) -> sa.Update:
        """Take up to :limit open tasks (never claimed, or their holder's deadline is before :now) until
        :until, returning what their items are."""
        t = _TASKS.c
        open_ids = (
            sa.select(t.id)
            .where(*self._of_key(), t.done.is_(False),
                   sa.or_(t.deadline.is_(None), t.deadline < sa.bindparam("now", type_=t.deadline.type)))
            .order_by(t.id)
            .limit(sa.bindparam("limit", type_=sa.Integer))
            .with_for_update(skip_locked=True)
        )  # fmt: skip
        return (
            sa.update(_TASKS)
            .where(t.id.in_(open_ids.scalar_subquery()))
            .values(worker_id=self.worker_id, deadline=sa.bindparam("until", type_=t.deadline.type),
                    attempts=t.attempts + 1)
            .returning(t.id, t.captured_request_id, t.arm_id, t.order_shown, t.replay_id)
        )  # fmt: skip

    def _claim_params(self, limit: int) -> dict[str, Any]:
        now = utcnow()
        return {"now": now, "until": now + timedelta(seconds=self.lease_s), "limit": limit}

    async def claim_async(self, limit: int) -> list[PointItem] | list[PairItem]:
        """`claim`, awaited: on Postgres a pointwise claim's one statement runs on the event loop, any other
        claim on an executor thread."""
        if self._claim_points is not None and self._aio is not None:
            rows = await self._aio.rows("claim", self._claim_points, self._claim_params(limit))
            return claimed_point_items(rows)
        return await asyncio.get_running_loop().run_in_executor(None, self.claim, limit)

    def claim(self, limit: int) -> list[PointItem] | list[PairItem]:
        """Up to `limit` open tasks, now held by this process, with what their scorer needs to see."""
        params = self._claim_params(limit)
        if self._claim_points is not None and self._alone is not None:
            with self._alone.connect() as conn:
                return claimed_point_items(driver_rows(conn, self._claim_points, params))
        with session_scope(self.factory) as session:
            claimed = session.execute(self._claim, params).all()
            if not claimed:
                return []
            if self.key.kind == "point":
                return point_items(session, [(row.id, int(row.replay_id)) for row in claimed])
            control, _ = self.arms(session)
            tasks = [(row.id, row.captured_request_id, row.arm_id, row.order_shown) for row in claimed]
            return pair_items(session, self.key.experiment_id, control, tasks)

    def extend(self, task_ids: Sequence[int]) -> None:
        """Heartbeat: push the deadline of the tasks this process still holds."""
        if not task_ids:
            return
        t = _TASKS.c
        with session_scope(self.factory) as session:
            session.execute(
                sa.update(_TASKS)
                .where(t.id.in_(task_ids), t.worker_id == self.worker_id, t.done.is_(False))
                .values(deadline=utcnow() + timedelta(seconds=self.lease_s))
            )

    async def finish_async(
        self, written: Sequence[Written], failed: Sequence[int], unstarted: Sequence[int] = ()
    ) -> None:
        """`finish`, awaited: on Postgres a group commit of results alone (its usual batch) runs on the event
        loop as one statement, anything else on an executor thread."""
        batch = None if failed or unstarted else self._finish_batch(written)
        if batch is not None and self._aio is not None:
            await self._aio.rows("finish", *batch)
            return
        await asyncio.get_running_loop().run_in_executor(None, self.finish, written, failed, unstarted)

    async def aclose(self) -> None:
        """Close the event loop's connections (the end of a drive)."""
        if self._aio is not None:
            await self._aio.aclose()

    def finish(
        self,
        written: Sequence[Written],
        failed: Sequence[int],
        unstarted: Sequence[int] = (),
    ) -> None:
        """One transaction: the results written and their tasks done; failed tasks deleted (seeded again by
        the next run); tasks never started handed back (open to any process at once)."""
        if not (failed or unstarted) and self._finish_alone(written):
            return
        t = _TASKS.c
        with session_scope(self.factory) as session:
            write(session, self.key.experiment_id, self.key.name, self.key.version, written)
            if written:
                session.execute(self._done, {"ids": [result.task_id for result in written]})
            mine = (t.worker_id == self.worker_id, t.done.is_(False))
            if failed:
                session.execute(sa.delete(_TASKS).where(t.id.in_(failed), *mine))
            if unstarted:
                session.execute(sa.update(_TASKS).where(t.id.in_(unstarted), *mine)
                                .values(worker_id=None, deadline=None))  # fmt: skip

    def _finish_alone(self, written: Sequence[Written]) -> bool:
        """Postgres: results of one kind (a queue's) and their tasks done in one statement; False when that
        does not apply."""
        batch = self._finish_batch(written)
        if batch is None or self._alone is None:
            return False
        with self._alone.connect() as conn:
            driver_rows(conn, *batch)
        return True

    def _finish_batch(self, written: Sequence[Written]) -> tuple[sa.TextClause, dict[str, Any]] | None:
        """Postgres: the one statement (and its parameters) that writes results of one kind (a queue's) and
        marks their tasks done; None when that does not apply."""
        if self._alone is None or not written:
            return None
        k = self.key
        scores, preferences = result_rows(k.experiment_id, k.name, k.version, written)
        if scores and preferences:
            return None
        table, rows = (Score, scores) if scores else (Preference, preferences)
        tasks = [{**row, "task_id": result.task_id} for row, result in zip(rows, written, strict=True)]
        batch = store.scores.insert_ignore_rows(table, tasks, _FINISH_TYPES[table])
        return _PG_FINISH[table], {"rows": batch, "now": utcnow()}

    def open_count(self) -> int:
        """Tasks not done yet (open, or held by a live or dead process)."""
        with self.factory() as session:
            t = ScoreTask
            count = session.execute(sa.select(sa.func.count()).where(*self._of_key(), t.done.is_(False)))
            return int(count.scalar_one())
