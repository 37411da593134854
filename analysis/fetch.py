"""Query results straight into numpy arrays and Arrow tables, on Postgres and SQLite alike.

Postgres aggregates each column into one array (`array_agg`) sent in binary (`array_send`, read by
`np.frombuffer`) or into one JSON array (`json_agg`, read by orjson); SQLite rows are fetched or aggregated
with `json_group_array`. No Python object per row survives a call.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson
import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.orm import Session


def is_postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def _array_cells(data: bytes | None, kind: str) -> npt.NDArray[Any]:
    """A one-dimensional Postgres array of non-null int8 or float8 in its binary form (`array_send`): a
    20-byte header, then each element as its length (int32) and its 8 bytes, big-endian."""
    dtype = np.int64 if kind == "int" else np.float64
    if not data:
        return np.zeros(0, dtype=dtype)
    cell = np.dtype([("length", ">i4"), ("value", ">i8" if kind == "int" else ">f8")])
    return np.frombuffer(data, dtype=cell, offset=20)["value"].astype(dtype)


def fetch_numbers(
    session: Session, statement: sa.Select[Any] | Any, kinds: Sequence[str]
) -> list[npt.NDArray[Any]]:
    """The columns of `statement` as numpy arrays: `kinds` says "int" (never NULL) or "float" (NULL → NaN).

    Postgres aggregates each column into one array sent in binary (one row, read by `np.frombuffer`);
    SQLite rows are fetched. Either way no Python object per row survives the call.
    """
    if not is_postgres(session):
        rows = session.execute(statement).all()
        columns = list(zip(*rows, strict=True)) if rows else [() for _ in kinds]
        return [
            np.array(c, dtype=np.int64 if k == "int" else np.float64)
            for c, k in zip(columns, kinds, strict=True)
        ]
    inner = statement.subquery("q")
    nan: sa.ColumnElement[float] = sa.literal_column("'NaN'::float8", sa.Float)
    # Every aggregate of one query level reads the same rows in the same order: the arrays stay aligned.
    arrays = [
        sa.func.array_send(sa.func.array_agg(
            sa.cast(c, sa.BigInteger) if k == "int" else sa.func.coalesce(sa.cast(c, sa.Float), nan)
        ))
        for c, k in zip(inner.c, kinds, strict=True)
    ]  # fmt: skip
    row = session.execute(sa.select(*arrays)).one()
    return [_array_cells(data, k) for data, k in zip(row, kinds, strict=True)]


def fetch_table(session: Session, statement: sa.Select[Any] | Any, schema: pa.Schema) -> pa.Table:
    """The rows of `statement` as an Arrow table of `schema` (NULL stays null): the database aggregates each
    column into one JSON array (Postgres `json_agg`, SQLite `json_group_array`), orjson reads it."""
    inner = statement.subquery("q")
    aggregate = sa.func.json_agg if is_postgres(session) else sa.func.json_group_array
    # Every aggregate of one query level reads the same rows in the same order: the arrays stay aligned.
    row = session.execute(sa.select(*(sa.cast(aggregate(c), sa.Text) for c in inner.c))).one()
    return pa.table(
        [
            pa.array(orjson.loads(text) if text else [], type=field.type)
            for text, field in zip(row, schema, strict=True)
        ],
        schema=schema,
    )
