"""Migrations go up, down and up again on the real Postgres and on SQLite, and match the models."""

from __future__ import annotations

import importlib
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from shadowlab import migrate
from shadowlab.fingerprint import body_fingerprint
from shadowlab.models import Base

EXPECTED_UNIQUE: dict[str, set[tuple[str, ...]]] = {
    "captured_requests": {("request_id",)},
    "replays": {("arm_id", "captured_request_id")},
    "scores": {("replay_id", "scorer_name", "scorer_version")},
    "arms": {("experiment_id", "name")},
    "experiments": {("name",)},
    "work_leases": {("experiment_id", "captured_request_id")},
    "budget_reservations": {("experiment_id", "captured_request_id")},
    "labels": {("captured_request_id", "arm_a_id", "arm_b_id", "labeler")},
    "preferences": {
        ("captured_request_id", "arm_a_id", "arm_b_id", "scorer_name", "scorer_version", "order_shown")
    },
    "decisions": {("supersedes_id",)},
}


def _tables(engine: sa.Engine) -> set[str]:
    return set(sa.inspect(engine).get_table_names()) - {"alembic_version"}


def _unique_keys(engine: sa.Engine, table: str) -> set[tuple[str, ...]]:
    inspector = sa.inspect(engine)
    keys = {tuple(uc["column_names"]) for uc in inspector.get_unique_constraints(table)}
    # SQLite reports some unique constraints only as unique indexes.
    keys |= {
        tuple(str(c) for c in ix["column_names"]) for ix in inspector.get_indexes(table) if ix.get("unique")
    }
    return keys


def test_upgrade_downgrade_upgrade(engine: sa.Engine) -> None:
    migrate.upgrade(engine)
    assert _tables(engine) == set(Base.metadata.tables)
    assert migrate.current_revision(engine) == migrate.head_revision(engine)

    migrate.downgrade(engine, "base")
    assert _tables(engine) == set()
    assert migrate.current_revision(engine) is None

    migrate.upgrade(engine)
    assert _tables(engine) == set(Base.metadata.tables)
    for table, keys in EXPECTED_UNIQUE.items():
        assert keys <= _unique_keys(engine, table), table


def test_the_revisions_read_without_alembic_are_alembics() -> None:
    # check_revision reads the code's revisions from the files' names: they must be Alembic's, in order.
    script = migrate.scripts()
    assert migrate.known_revisions() == [rev.revision for rev in reversed(list(script.walk_revisions()))]
    assert migrate.head_revision() == script.get_current_head()


def test_the_database_revision_is_the_one_alembic_reads(engine: sa.Engine) -> None:
    migrate.upgrade(engine, "0004_judge_spend")
    with engine.connect() as conn:
        assert migrate.database_revision(conn) == "0004_judge_spend"
        assert MigrationContext.configure(conn).get_current_revision() == "0004_judge_spend"


def test_models_and_migrations_do_not_drift(engine: sa.Engine) -> None:
    migrate.upgrade(engine)
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, Base.metadata)
    assert diff == []


def test_unique_request_id_rejects_a_second_capture(engine: sa.Engine) -> None:
    migrate.upgrade(engine)
    table = Base.metadata.tables["captured_requests"]
    row = {
        "request_id": "req-1",
        "schema_version": 1,
        "captured_at": sa.func.now(),
        "ingested_at": sa.func.now(),
        "service": "chat",
        "tags": {},
        "api": "anthropic.messages",
        "request": {"model": "m", "messages": []},
        "redaction": {},
    }
    with engine.begin() as conn:
        conn.execute(table.insert().values(**row))
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
        conn.execute(table.insert().values(**row))


def _insert(conn: sa.Connection, table: str, **values: Any) -> Any:
    """Insert one row; its primary key."""
    key = conn.execute(Base.metadata.tables[table].insert().values(**values)).inserted_primary_key
    assert key is not None
    return key[0]


def test_deleting_a_capture_deletes_what_was_derived_from_it(engine: sa.Engine) -> None:
    """`forget` and `retention` rely on these cascades: replays and their scores go with the capture."""
    migrate.upgrade(engine)
    t = Base.metadata.tables
    with engine.begin() as conn:
        exp = _insert(
            conn,
            "experiments",
            name="e",
            status="running",
            spec={},
            price_snapshot={},
            created_by="me",
            created_at=sa.func.now(),
            updated_at=sa.func.now(),
        )
        arm = _insert(
            conn,
            "arms",
            experiment_id=exp,
            name="control",
            role="control",
            provider="simulator",
            model="m",
            params={},
        )
        req = _insert(
            conn,
            "captured_requests",
            request_id="r1",
            schema_version=1,
            captured_at=sa.func.now(),
            ingested_at=sa.func.now(),
            service="s",
            tags={},
            api="openai.chat",
            request={},
            redaction={},
        )
        replay = _insert(
            conn,
            "replays",
            experiment_id=exp,
            arm_id=arm,
            captured_request_id=req,
            status="ok",
            untranslated=[],
            input_tokens=1,
            cache_creation_input_tokens=0,
            cache_read_input_tokens=0,
            output_tokens=1,
            reasoning_tokens=0,
            attempts=1,
        )
        conn.execute(
            t["scores"]
            .insert()
            .values(
                replay_id=replay,
                scorer_name="judge",
                scorer_version="1",
                value=7.0,
                details={},
                created_at=sa.func.now(),
            )
        )
    with engine.begin() as conn:
        conn.execute(t["captured_requests"].delete().where(t["captured_requests"].c.id == req))
    with engine.connect() as conn:
        counts = {
            name: conn.execute(sa.select(sa.func.count()).select_from(t[name])).scalar_one()
            for name in ("replays", "scores", "arms", "experiments")
        }
    assert counts == {"replays": 0, "scores": 0, "arms": 1, "experiments": 1}


FINGERPRINT_REVISION = "0005_prompt_fingerprint"
HELLO = [{"role": "user", "content": "hello"}]
BODIES: list[tuple[str, Any]] = [
    ("anthropic.messages", {"model": "claude-haiku-4-5", "max_tokens": 9, "messages": HELLO}),
    ("openai.chat", {"model": "gpt-4o", "max_tokens": 9, "messages": HELLO, "stream": True}),
    ("anthropic.messages", {"model": "m", "max_tokens": 9, "messages": [{"role": "user", "content": "bye"}]}),
    ("openai.chat", {}),  # does not normalise: hashed as stored
    ("anthropic.messages", {"model": "claude-haiku-4-5", "max_tokens": 9, "messages": HELLO}),
]


def _insert_captures(conn: sa.Connection, prefix: str) -> None:
    table = sa.table(  # the columns every revision has, so rows can be written before the fingerprint exists
        "captured_requests",
        *(sa.column(c) for c in ("request_id", "schema_version", "service", "api")),
        *(sa.column(c, sa.DateTime(timezone=True)) for c in ("captured_at", "ingested_at")),
        *(sa.column(c, sa.JSON()) for c in ("tags", "redaction", "request")),
    )
    now = datetime.now(UTC)
    conn.execute(
        table.insert(),
        [
            {"request_id": f"{prefix}{i}", "schema_version": 1, "captured_at": now, "ingested_at": now,
             "service": "s", "tags": {}, "api": api, "request": body, "redaction": {}}
            for i, (api, body) in enumerate(BODIES)
        ],
    )  # fmt: skip


def _fingerprints(conn: sa.Connection) -> list[str | None]:
    table = Base.metadata.tables["captured_requests"]
    return list(conn.execute(sa.select(table.c.prompt_fingerprint).order_by(table.c.id)).scalars())


def test_the_fingerprint_migration_backfills_existing_captures(engine: sa.Engine) -> None:
    migrate.upgrade(engine, "0004_judge_spend")
    with engine.begin() as conn:
        _insert_captures(conn, "old-")

    migrate.upgrade(engine)

    expected = [body_fingerprint(api, body) for api, body in BODIES]
    with engine.connect() as conn:
        assert _fingerprints(conn) == expected
    assert expected[0] == expected[1] == expected[4] and len(set(expected)) == 3
    migrate.downgrade(engine, "0004_judge_spend")
    columns = {c["name"] for c in sa.inspect(engine).get_columns("captured_requests")}
    assert "prompt_fingerprint" not in columns


def test_the_backfill_works_in_batches_and_leaves_stored_fingerprints_alone(engine: sa.Engine) -> None:
    migration = importlib.import_module(f"migrations.versions.{FINGERPRINT_REVISION}")
    migrate.upgrade(engine)
    table = Base.metadata.tables["captured_requests"]
    with engine.begin() as conn:
        _insert_captures(conn, "new-")
        conn.execute(table.update().where(table.c.request_id == "new-2").values(prompt_fingerprint="kept"))
        assert migration.backfill(conn, batch=2) == len(BODIES) - 1
        assert migration.backfill(conn, batch=2) == 0
        fingerprints = _fingerprints(conn)
    expected = [body_fingerprint(api, body) for api, body in BODIES]
    assert fingerprints == [*expected[:2], "kept", *expected[3:]]


def test_the_request_shape_migration_backfills_prompt_length_and_turn(engine: sa.Engine) -> None:
    migrate.upgrade(engine, FINGERPRINT_REVISION)
    with engine.begin() as conn:
        _insert_captures(conn, "old-")

    migrate.upgrade(engine)

    table = Base.metadata.tables["captured_requests"]
    with engine.connect() as conn:
        rows = conn.execute(sa.select(table.c.prompt_chars, table.c.user_turn).order_by(table.c.id)).all()
    assert [tuple(r) for r in rows] == [(5, 1), (5, 1), (3, 1), (0, 1), (5, 1)]
    migrate.downgrade(engine, FINGERPRINT_REVISION)
    columns = {c["name"] for c in sa.inspect(engine).get_columns("captured_requests")}
    assert not {"prompt_chars", "user_turn"} & columns
