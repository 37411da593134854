"""Batch insert of captures: one transaction, `ON CONFLICT (request_id) DO NOTHING`, duplicates counted.

A database that cannot be reached raises `DatabaseUnavailable` (the runner pauses and retries). A batch
the database refuses for its content (a NUL character, a value too long for its column) is split row by
row, so the one bad row is dead-lettered and the rest are stored.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Engine

from ingest.forgetting import forgotten_among, hold_off_forgetting
from ingest.messages import DeadLetter, Message
from shadowlab.errors import ServiceUnavailableError
from shadowlab.models import CapturedRequest

log = logging.getLogger(__name__)
Row = dict[str, Any]
TABLE: sa.Table = CapturedRequest.__table__  # type: ignore[assignment]
ROW_COLUMNS = (
    "request_id",
    "schema_version",
    "captured_at",
    "ingested_at",
    "service",
    "route",
    "environment",
    "conversation_id",
    "user_hash",
    "tags",
    "api",
    "model",
    "request",
    "response",
    "redaction",
    "source_topic",
    "source_partition",
    "source_offset",
    "prompt_fingerprint",
    "prompt_chars",
    "user_turn",
)


# A driver may refuse a value before it reaches the server (a lone surrogate cannot be encoded to UTF-8).
_REFUSALS = (sa.exc.StatementError, ValueError)


class DatabaseUnavailable(ServiceUnavailableError):
    """The database did not answer or dropped the connection; the batch is retried, never skipped."""


@dataclass(frozen=True)
class SinkResult:
    stored: int
    duplicates: int
    refused: list[DeadLetter] = field(default_factory=list)
    forgotten: int = 0  # captures of users on the forget list: dropped, never stored


def _is_transient(exc: Exception) -> bool:
    if not isinstance(exc, sa.exc.DBAPIError):
        return False
    # OperationalError covers refused connections and server shutdown; a dropped connection may surface
    # as InterfaceError or any DBAPIError flagged as invalidating the connection.
    return isinstance(exc, sa.exc.OperationalError | sa.exc.InterfaceError) or exc.connection_invalidated


def _postgres_statement(dialect: sa.Dialect) -> sa.TextClause:
    # The whole batch travels as one JSON array parameter that the server unpacks: binding ~20 parameters per
    # row instead costs the client more than all the rest of ingest (psycopg rewrites the query per batch).
    columns = ", ".join(ROW_COLUMNS)
    types = ", ".join(f"{c} {TABLE.c[c].type.compile(dialect=dialect)}" for c in ROW_COLUMNS)
    return sa.text(
        f"INSERT INTO {TABLE.name} ({columns}) SELECT {columns} "
        f"FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS r({types}) "
        "ON CONFLICT (request_id) DO NOTHING"
    )


def _json_default(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"expected JSON-ready values in a capture row, found {type(value).__name__}")


def dump_rows(rows: list[Row]) -> str:
    """The batch as one JSON array: orjson (about 6x faster), or the standard library for what orjson
    refuses (lone surrogates, integers beyond 64 bits, `OverflowFloat`, deep nesting), so the database
    sees exactly what it saw before and refuses such a row the same way."""
    try:
        return orjson.dumps(rows, default=_json_default, option=orjson.OPT_PASSTHROUGH_DATETIME).decode()
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return json.dumps(rows, default=_json_default)


class CaptureSink:
    """Writes captures to `captured_requests` on Postgres or SQLite."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._postgres = engine.dialect.name == "postgresql"
        # Postgres: a writer thread pays (psycopg lets go of the GIL while the server works). SQLite is the
        # embedded mode, one writer at a time, and an in-memory database is one per thread: no thread.
        self.overlaps = self._postgres
        self._pg_statement = _postgres_statement(engine.dialect)
        self._sqlite_statement = (
            sqlite_insert(TABLE)
            .on_conflict_do_nothing(index_elements=["request_id"])
            .returning(TABLE.c.request_id)
        )

    def write(self, items: Sequence[tuple[Message, Row]]) -> SinkResult:
        """Insert all rows in one transaction; returns stored and duplicate counts and refused rows."""
        if not items:
            return SinkResult(0, 0)
        try:
            stored, forgotten = self._insert([row for _, row in items])
        except _REFUSALS as exc:
            if _is_transient(exc):
                raise DatabaseUnavailable(f"database unavailable: {_first_line(exc)}") from exc
            log.warning("batch refused by the database (%s); retrying row by row", _first_line(exc))
            return self._write_one_by_one(items)
        return SinkResult(stored, len(items) - forgotten - stored, forgotten=forgotten)

    def forgotten(self, user_hashes: Iterable[str | None]) -> set[str]:
        """Which of these users are on the forget list (their dead letters then carry no payload)."""
        try:
            with self.engine.connect() as conn:
                return forgotten_among(conn, user_hashes)
        except sa.exc.DBAPIError as exc:
            if _is_transient(exc):
                raise DatabaseUnavailable(f"database unavailable: {_first_line(exc)}") from exc
            raise

    def _insert(self, rows: list[Row]) -> tuple[int, int]:
        """(stored, dropped as forgotten), checked against the forget list in the insert's transaction."""
        with self.engine.begin() as conn:
            hold_off_forgetting(conn)
            forgotten = forgotten_among(conn, (row["user_hash"] for row in rows))
            kept = [row for row in rows if row["user_hash"] not in forgotten] if forgotten else rows
            if not kept:
                return 0, len(rows)
            if self._postgres:
                payload = dump_rows(kept)
                # The rows inserted, as the server counts them (those already stored are not).
                stored = conn.execute(self._pg_statement, {"rows": payload}).rowcount
                return stored, len(rows) - len(kept)
            return len(conn.execute(self._sqlite_statement, kept).all()), len(rows) - len(kept)

    def _write_one_by_one(self, items: Sequence[tuple[Message, Row]]) -> SinkResult:
        stored, duplicates, forgotten, refused = 0, 0, 0, []
        for message, row in items:
            try:
                n, dropped = self._insert([row])
            except _REFUSALS as exc:
                if _is_transient(exc):
                    raise DatabaseUnavailable(f"database unavailable: {_first_line(exc)}") from exc
                detail = f"(row): expected a value the database can store, found {_first_line(exc)}"
                refused.append(DeadLetter(message, "not_storable", detail))
                continue
            stored, forgotten = stored + n, forgotten + dropped
            duplicates += 1 - n - dropped
        return SinkResult(stored, duplicates, refused, forgotten)


def _first_line(exc: Exception) -> str:
    orig = getattr(exc, "orig", None)
    text = str(orig) if orig is not None else str(exc)
    return (text.strip().splitlines() or [type(exc).__name__])[0][:300]
