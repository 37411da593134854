"""Scores (one per replay, scorer and version) and preferences (one per request, arm pair, scorer, version
and order shown). Every write is one idempotent row: a repeated write is ignored, the first stays."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from shadowlab.db import json_rows, pg_json_rows
from shadowlab.models import Preference, Replay, Score, utcnow

# fmt: off
__all__ = [
    "add", "add_many", "add_preference", "add_preferences", "batch_types", "insert_ignore_rows",
    "insert_ignore_sql", "point_values", "preference_results",
]
# fmt: on


# Postgres: a batch as one JSON parameter (`db.pg_json_rows`), so its statement is one text whatever the batch
# size and psycopg prepares it once (an executemany sends one statement per row).
_PG_TYPES: dict[type[Score] | type[Preference], dict[str, str]] = {
    Score: {"replay_id": "bigint", "scorer_name": "text", "scorer_version": "text", "value": "float8",
            "rationale": "text", "details": "jsonb"},
    Preference: {"experiment_id": "bigint", "captured_request_id": "bigint", "arm_a_id": "bigint",
                 "arm_b_id": "bigint", "scorer_name": "text", "scorer_version": "text", "order_shown": "text",
                 "result": "text", "rationale": "text"},
}  # fmt: skip


def batch_types(table: type[Score] | type[Preference]) -> dict[str, str]:
    """The columns a batch of `table`'s rows carries, with their Postgres types."""
    return dict(_PG_TYPES[table])


def insert_ignore_sql(table: type[Score] | type[Preference], source: str | None = None) -> str:
    """Postgres: the INSERT of a batch of rows of `table` (and `:now`), each ignored when it exists already,
    from `source`: a FROM item named `r` with the `batch_types(table)` columns and `n` (default: the `:rows`
    parameter of `insert_ignore_rows`); a statement of its own or a data-modifying CTE."""
    columns = ", ".join(_PG_TYPES[table])
    source = source or pg_json_rows(_PG_TYPES[table], "r", "rows")
    return (
        f"INSERT INTO {table.__tablename__} ({columns}, created_at) SELECT {columns}, :now "
        f"FROM {source} ORDER BY r.n ON CONFLICT DO NOTHING"
    )


def insert_ignore_rows(
    table: type[Score] | type[Preference],
    rows: Sequence[Mapping[str, Any]],
    types: Mapping[str, str] | None = None,
) -> str:
    """The `:rows` parameter of `insert_ignore_sql(table)`: `types`' columns (default `batch_types(table)`) of
    each row as JSON, a missing one null, details an object."""
    columns = types or _PG_TYPES[table]
    if "details" in columns:
        rows = [{**row, "details": row.get("details") or {}} for row in rows]
    return json_rows(rows, columns)


_PG_INSERTS = {table: sa.text(insert_ignore_sql(table)) for table in _PG_TYPES}


def _insert_ignore(
    table: type[Score] | type[Preference], rows: Sequence[Mapping[str, Any]], *, session: Session
) -> None:
    """One statement for every row, on the table: the ORM's bulk insert machinery cost more than the SQL (a
    scorer writes a batch at every group commit)."""
    if not rows:
        return
    if session.get_bind().dialect.name == "postgresql":
        session.execute(_PG_INSERTS[table], {"rows": insert_ignore_rows(table, rows), "now": utcnow()})
        return
    insert = sqlite_insert(cast(sa.Table, table.__table__)).on_conflict_do_nothing()
    session.execute(insert, [dict(row) for row in rows])


def add(
    *,
    replay_id: int,
    scorer_name: str,
    scorer_version: str,
    value: float | None,
    rationale: str | None,
    details: Mapping[str, Any],
    session: Session,
) -> None:
    """Store one score of a replay (ignored when this scorer version already scored it)."""
    add_many(
        [{"replay_id": replay_id, "scorer_name": scorer_name, "scorer_version": scorer_version,
          "value": value, "rationale": rationale, "details": dict(details)}],
        session=session,
    )  # fmt: skip


def add_many(scores: Sequence[Mapping[str, Any]], *, session: Session) -> None:
    """Store scores (`add`'s fields, one mapping each) in one statement; each ignored when its scorer version
    already scored its replay."""
    _insert_ignore(Score, scores, session=session)


def add_preference(
    *,
    experiment_id: int,
    captured_request_id: int,
    arm_a_id: int,
    arm_b_id: int,
    scorer_name: str,
    scorer_version: str,
    order_shown: str,
    result: str,
    rationale: str | None,
    session: Session,
) -> None:
    """Store one preference in canonical terms (arm A = control; `result` names the arm or a tie)."""
    add_preferences(
        [{"experiment_id": experiment_id, "captured_request_id": captured_request_id, "arm_a_id": arm_a_id,
          "arm_b_id": arm_b_id, "scorer_name": scorer_name, "scorer_version": scorer_version,
          "order_shown": order_shown, "result": result, "rationale": rationale}],
        session=session,
    )  # fmt: skip


def add_preferences(preferences: Sequence[Mapping[str, Any]], *, session: Session) -> None:
    """Store preferences (`add_preference`'s fields, one mapping each) in one statement."""
    _insert_ignore(Preference, preferences, session=session)


def point_values(
    experiment_id: int, scorer_name: str, scorer_version: str, *, session: Session
) -> dict[tuple[int, int], float | None]:
    """(arm id, captured request id) → the value one scorer version gave (None: failed or not applicable)."""
    rows = session.execute(
        sa.select(Replay.arm_id, Replay.captured_request_id, Score.value)
        .join(Replay, Replay.id == Score.replay_id)
        .where(
            Replay.experiment_id == experiment_id,
            Score.scorer_name == scorer_name,
            Score.scorer_version == scorer_version,
        )
    )
    return {(int(arm), int(request)): value for arm, request, value in rows}


def preference_results(
    experiment_id: int, scorer_name: str, scorer_version: str, candidate_arm_id: int, *, session: Session
) -> list[tuple[int, str, str]]:
    """(captured request id, order shown, canonical result) of one scorer version against one candidate."""
    rows = session.execute(
        sa.select(Preference.captured_request_id, Preference.order_shown, Preference.result).where(
            Preference.experiment_id == experiment_id,
            Preference.scorer_name == scorer_name,
            Preference.scorer_version == scorer_version,
            Preference.arm_b_id == candidate_arm_id,
        )
    )
    return [(int(request), str(order), str(result)) for request, order, result in rows]
