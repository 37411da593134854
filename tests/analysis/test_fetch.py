"""`analysis.fetch.fetch_table`: query rows into Arrow columns, exactly, on Postgres and SQLite."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from analysis.fetch import fetch_table

SCHEMA = pa.schema([
    pa.field("id", pa.int64(), nullable=False), ("label", pa.string()),
    pa.field("name", pa.string(), nullable=False), ("size", pa.int64()),
])  # fmt: skip
ROWS: list[tuple[int, str | None, str, int | None]] = [
    (1, "a", "x", 3), (2, "", "", None), (3, None, "ü 会话", 0), (4, "gespräch", "y", -7),
    (5, None, "z", 2**40),
]  # fmt: skip
TYPES = (sa.BigInteger, sa.Text, sa.Text, sa.BigInteger)


def _statement(rows: list[tuple[Any, ...]]) -> Any:
    """The rows as a query (UNION ALL of one-row selects; no row: a select whose WHERE is false)."""
    columns = [(t, f.name) for t, f in zip(TYPES, SCHEMA, strict=True)]
    selects: list[Any] = [
        sa.select(*(sa.cast(sa.literal(v), t).label(name) for v, (t, name) in zip(row, columns, strict=True)))
        for row in rows or [(0, "", "", 0)]
    ]
    return sa.union_all(*selects) if rows else selects[0].where(sa.false())


@pytest.mark.postgres
@pytest.mark.parametrize(
    "rows",
    [ROWS, [*ROWS, (6, "one\x01two", "w", 1)], [*ROWS, (6, "v", "\x01", 1)], ROWS[:1], []],
    ids=["plain", "separator in a nullable text", "separator alone", "one row", "no row"],
)
def test_strings_and_nulls_arrive_exactly(rows: list[tuple[Any, ...]], postgres_url: str) -> None:
    """Postgres joins each string column's values by a control character (a value holding it has the read
    redone with lengths) and says which are NULL in a column of bits: '' and NULL stay apart."""
    engine = sa.create_engine(postgres_url)
    with Session(engine) as session:
        table = fetch_table(session, _statement(rows), SCHEMA)
    engine.dispose()
    assert table.schema == SCHEMA
    assert [tuple(r.values()) for r in table.to_pylist()] == [tuple(r) for r in rows]


def test_sqlite_reads_the_same_rows() -> None:
    engine = sa.create_engine("sqlite://")
    with Session(engine) as session:
        table = fetch_table(session, _statement(ROWS), SCHEMA)
    engine.dispose()
    assert [tuple(r.values()) for r in table.to_pylist()] == [tuple(r) for r in ROWS]
