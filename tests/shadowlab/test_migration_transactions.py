"""`shadowlab db upgrade` runs one transaction per migration (migrations/env.py), and on Postgres 0013 builds
its index on `replays` CONCURRENTLY: the replayer's writes go on while it builds, and an upgrade interrupted
in it runs again to the end. The builds are held up deterministically by a transaction that holds a write
lock on `replays` (a concurrent build waits for every older writer; a plain CREATE INDEX waits for its SHARE
lock, and every insert queued behind that waits with it), and the tests watch pg_stat_activity, never the
clock."""

from __future__ import annotations

import json
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from shadowlab import migrate
from shadowlab.db import create_engine
from tests.support.database_errors import CliRunner, one_line
from tests.support.waiting import wait_for

SPAN = "0013_replays_span_index"
WITH_ID = "ix_replays_experiment_id_status_id"
WITHOUT_ID = "ix_replays_experiment_id_status"


def test_a_failed_migration_keeps_the_ones_before_it_and_runs_again(engine: sa.Engine) -> None:
    migrate.upgrade(engine, "0010_grants_ledger")
    with engine.begin() as conn:  # 0012 creates this table: it fails, after 0011 ran
        conn.execute(sa.text("CREATE TABLE experiment_changes (id integer)"))
    with pytest.raises(sa.exc.DBAPIError, match="experiment_changes"):
        migrate.upgrade(engine)
    assert migrate.current_revision(engine) == "0011_scores_created_at"
    assert "ix_scores_created_at" in {ix["name"] for ix in sa.inspect(engine).get_indexes("scores")}

    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE experiment_changes"))
    migrate.upgrade(engine)
    assert migrate.current_revision(engine) == migrate.head_revision()


# --- Postgres: 0013's concurrent build ----------------------------------------------------------------------


SEED = (
    "INSERT INTO experiments (name, status, spec, price_snapshot, created_by, created_at, updated_at) "
    "VALUES ('e', 'running', '{}', '{}', 'me', now(), now())",
    "INSERT INTO arms (experiment_id, name, role, provider, model, params) "
    "VALUES (1, 'control', 'control', 'simulator', 'm', '{}')",
    "INSERT INTO captured_requests (request_id, schema_version, captured_at, ingested_at, service, tags, "
    "api, request, redaction) SELECT 'r' || n, 1, now(), now(), 's', '{}', 'openai.chat', '{}', '{}' "
    "FROM generate_series(1, 3) AS n",
)


@pytest.fixture
def pg_url(pg_database: str) -> str:
    """A database at 0011 with an experiment, an arm and three captures (ids 1-3), no replay yet."""
    engine = create_engine(pg_database)
    migrate.upgrade(engine, "0011_scores_created_at")
    with engine.begin() as conn:
        for statement in SEED:
            conn.execute(sa.text(statement))
    engine.dispose()
    return pg_database


def _insert_replay(conn: sa.Connection, capture: int) -> None:
    """What the replayer writes for a capture (an insert into `replays`), in `conn`'s transaction."""
    conn.execute(
        sa.text(
            "INSERT INTO replays (experiment_id, arm_id, captured_request_id, status, untranslated, "
            "input_tokens, cache_creation_input_tokens, cache_read_input_tokens, output_tokens, "
            "reasoning_tokens, attempts) VALUES (1, 1, :capture, 'ok', :untranslated, 1, 0, 0, 1, 0, 1)"
        ),
        {"capture": capture, "untranslated": json.dumps([])},
    )


class Watch:
    """An autocommit connection on the database that reads pg_stat_activity afresh at every query."""

    def __init__(self, engine: sa.Engine) -> None:
        self.conn = engine.connect().execution_options(isolation_level="AUTOCOMMIT")

    def build_waiting(self) -> int | None:
        """The pid of a backend whose CREATE INDEX waits for a lock, if one does."""
        pid = self.conn.scalar(sa.text(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND query ILIKE 'CREATE INDEX%' AND wait_event_type = 'Lock'"
        ))  # fmt: skip
        return None if pid is None else int(pid)

    def waits_for_a_lock(self, pid: int) -> bool:
        state = "SELECT wait_event_type FROM pg_stat_activity WHERE pid = :pid"
        return bool(self.conn.scalar(sa.text(state), {"pid": pid}) == "Lock")

    def revision(self) -> str | None:
        return migrate.database_revision(self.conn)

    def replays_indexes(self) -> list[tuple[str, bool]]:
        """(name, valid) of every index on `replays`, by name."""
        return [tuple(row) for row in self.conn.execute(sa.text(
            "SELECT c.relname, i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE i.indrelid = 'replays'::regclass ORDER BY c.relname"
        ))]  # fmt: skip


def _build_held_up(watch: Watch, upgrade: Future[Any]) -> int:
    """Wait until the upgrade's index build waits for the lock holder; its backend's pid."""
    wait_for(lambda: upgrade.done() or watch.build_waiting() is not None, "0013's index build to wait")
    assert not upgrade.done(), f"the upgrade ended without waiting for the open writer: {upgrade.result()}"
    pid = watch.build_waiting()
    assert pid is not None
    return pid


def _span_index_alone(indexes: list[tuple[str, bool]]) -> bool:
    """0013's index is there once and valid, the one it replaces gone, no index left invalid."""
    names = [name for name, _ in indexes]
    return names.count(WITH_ID) == 1 and WITHOUT_ID not in names and all(valid for _, valid in indexes)


@pytest.mark.postgres
def test_the_replayer_writes_replays_while_0013_builds_its_index(pg_url: str) -> None:
    engine = create_engine(pg_url)
    watch = Watch(engine)
    holder, writer = engine.connect(), engine.connect()
    writer_pid = writer.scalar(sa.text("SELECT pg_backend_pid()"))
    writer.commit()
    holder.begin()
    _insert_replay(holder, 1)  # a replayer's transaction still open when the upgrade starts
    try:
        with ThreadPoolExecutor(2) as pool:
            try:
                upgrade = pool.submit(migrate.upgrade, engine)
                build = _build_held_up(watch, upgrade)
                assert watch.revision() == "0012_experiment_changes"  # committed on its own, before 0013

                def write() -> None:
                    with writer.begin():
                        _insert_replay(writer, 2)

                written = pool.submit(write)
                wait_for(
                    lambda: written.done() or watch.waits_for_a_lock(writer_pid), "the insert to end or wait"
                )
                assert written.done(), "an insert into replays waits for 0013's index build"
                written.result()
                assert watch.build_waiting() == build and not upgrade.done()  # the build still waits
            finally:
                holder.rollback()  # the build goes on (an insert queued behind a plain CREATE INDEX with it)
        upgrade.result()
        assert watch.revision() == migrate.head_revision()
        assert _span_index_alone(watch.replays_indexes()), watch.replays_indexes()
        assert watch.conn.scalar(sa.text("SELECT array_agg(captured_request_id) FROM replays")) == [2]
    finally:
        for conn in (holder, writer, watch.conn):
            conn.close()
        engine.dispose()


@pytest.mark.postgres
def test_an_upgrade_cancelled_in_0013_runs_again_to_one_valid_index(
    pg_url: str, tmp_path: Path, cli: CliRunner
) -> None:
    engine = create_engine(pg_url)
    watch = Watch(engine)
    holder = engine.connect()
    holder.begin()
    _insert_replay(holder, 1)
    env = {"SHADOWLAB_DATABASE_URL": pg_url}
    try:
        with ThreadPoolExecutor(1) as pool:
            try:
                upgrade = pool.submit(cli, "db", "upgrade", env=env, cwd=tmp_path)
                build = _build_held_up(watch, upgrade)
                assert watch.conn.scalar(sa.text("SELECT pg_cancel_backend(:pid)"), {"pid": build})
                line = one_line(upgrade.result(), 3)
            finally:
                holder.rollback()
        assert "the migration did not finish" in line and "canceling statement" in line, line
        assert "cancelled by another session or an administrator" in line and "timeout" not in line, line
        assert watch.revision() == "0012_experiment_changes"
        assert (WITH_ID, False) in watch.replays_indexes()  # what the cancelled build left

        done = cli("db", "upgrade", env=env, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        assert watch.revision() == migrate.head_revision()
        assert _span_index_alone(watch.replays_indexes()), watch.replays_indexes()

        migrate.downgrade(engine, "0012_experiment_changes")
        names = [name for name, valid in watch.replays_indexes() if valid]
        assert WITHOUT_ID in names and WITH_ID not in names
    finally:
        holder.close()
        watch.conn.close()
        engine.dispose()


@pytest.mark.postgres
def test_two_upgrades_at_once_run_one_after_the_other(pg_url: str, tmp_path: Path, cli: CliRunner) -> None:
    """Two `shadowlab db upgrade` at once (two deploys, compose's migrate job and an operator): the second
    waits for the first, then finds the database at head. With one transaction per migration nothing else
    keeps them apart: the second would run 0013 beside the first (dropping the index the first is building
    as an INVALID leftover) and one of them would find alembic_version moved under it."""
    engine = create_engine(pg_url)
    watch = Watch(engine)
    holder = engine.connect()
    holder.begin()
    _insert_replay(holder, 1)
    env = {"SHADOWLAB_DATABASE_URL": pg_url}
    try:
        with ThreadPoolExecutor(2) as pool:
            try:
                first = pool.submit(cli, "db", "upgrade", env=env, cwd=tmp_path)
                build = _build_held_up(watch, first)
                second = pool.submit(cli, "db", "upgrade", env=env, cwd=tmp_path)

                def second_waits() -> bool:  # for the first: for its lock, or on what it holds
                    waiting = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    waiting += "AND pid <> :build AND (wait_event_type = 'Lock' OR application_name = :name)"
                    params = {"build": build, "name": migrate.WAITING}
                    return bool(watch.conn.scalar(sa.text(waiting), params))

                wait_for(lambda: second.done() or second_waits(), "the second upgrade to end or wait")
                assert watch.build_waiting() == build  # the first still builds its index
            finally:
                holder.rollback()
            results = [first.result(), second.result()]
        for result in results:
            assert result.returncode == 0, result.stderr
            assert result.stdout.endswith(f": {migrate.head_revision()}\n"), result.stdout
        assert watch.conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars().all() == [
            migrate.head_revision()
        ]
        assert _span_index_alone(watch.replays_indexes()), watch.replays_indexes()
    finally:
        holder.close()
        watch.conn.close()
        engine.dispose()
