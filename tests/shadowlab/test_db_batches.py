"""A batch as one JSON parameter (`db.pg_json_rows`, `db.json_rows`), sent straight to psycopg
(`db.driver_rows`): what the scorer's hot statements (claims, judge budget, group commits) rely on."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa

from shadowlab.db import create_engine, driver_rows, json_rows, pg_json_rows
from tests.support.waiting import wait_for

pytestmark = pytest.mark.postgres

_TYPES = {"usd": "float8", "at": "timestamptz", "note": "text", "detail": "jsonb"}
_READ = sa.text(
    f"SELECT r.usd, r.at, r.note, r.detail, r.n FROM {pg_json_rows(_TYPES, 'r', 'rows')} ORDER BY r.n"
)


def test_a_json_batch_reads_back_exactly_and_in_order(postgres_url: str) -> None:
    at = datetime(2026, 12, 7, 11, 52, 3, 123456, tzinfo=UTC)
    rows: list[dict[str, Any]] = [
        {"usd": 0.1 + 0.2, "at": at, "note": 'quote " backslash \\ é ✓', "detail": {"a": [1, None]}},
        {"usd": 1 / 3, "at": at + timedelta(microseconds=1), "note": None, "detail": None},
        {"usd": 1.2345678901234567e-7, "at": None, "note": "", "detail": {}},
        {"usd": 7e-06 * 3},  # the other columns missing: null
    ]
    engine = create_engine(postgres_url)
    with engine.execution_options(isolation_level="AUTOCOMMIT").connect() as conn:
        found = driver_rows(conn, _READ, {"rows": json_rows(rows, _TYPES)})
    engine.dispose()

    assert [row.usd for row in found] == [row["usd"] for row in rows]  # the same doubles, bit for bit
    assert [row.at for row in found] == [at, at + timedelta(microseconds=1), None, None]
    assert [row.note for row in found] == ['quote " backslash \\ é ✓', None, "", None]
    assert [row.detail for row in found] == [{"a": [1, None]}, None, {}, None]
    assert [row.n for row in found] == [1, 2, 3, 4]


def test_a_dead_connection_fails_its_statement_and_is_replaced(postgres_url: str) -> None:
    engine = create_engine(postgres_url, ping_after_idle_s=3600.0)  # no ping: the statement meets the death
    alone = engine.execution_options(isolation_level="AUTOCOMMIT")
    pid = sa.text("SELECT pg_backend_pid() AS pid")
    with alone.connect() as conn:
        first = driver_rows(conn, pid, {})[0].pid
    admin = sa.create_engine(postgres_url)  # not the pool's own connection: that is the one to kill
    with admin.connect() as other:
        assert other.execute(sa.text("SELECT pg_terminate_backend(:p)"), {"p": first}).scalar_one()

    def gone() -> bool:
        with admin.connect() as other:
            found = other.execute(
                sa.text("SELECT count(*) FROM pg_stat_activity WHERE pid = :p"), {"p": first}
            )
            return bool(found.scalar_one() == 0)

    wait_for(gone, f"backend {first} to exit", timeout_s=10)
    admin.dispose()
    with pytest.raises(psycopg.OperationalError), alone.connect() as conn:
        driver_rows(conn, pid, {})
    with alone.connect() as conn:  # invalidated, not given back to the pool: the next checkout connects anew
        assert driver_rows(conn, pid, {})[0].pid != first
    engine.dispose()
