"""Query results straight into numpy arrays and Arrow tables, on Postgres and SQLite alike.

Postgres concatenates each numeric column's values in binary into one bytea (`string_agg` of `int8send` /
`float8send`, read by `np.frombuffer`) or aggregates a column into one JSON array (`json_agg`, read by
orjson); SQLite rows are fetched or aggregated with `json_group_array`. No Python object per row survives a
call.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson
import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.orm import InstrumentedAttribute, Session

from analysis.prefetch_sql import SEPARATOR, SNAPSHOT_ID, TUNING


def is_postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def tune_for_aggregates(session: Session) -> None:
    """`analysis.prefetch_sql.TUNING` (no JIT, memory for a hash join) for this transaction, on Postgres."""
    if is_postgres(session):
        for statement in TUNING:
            session.execute(sa.text(statement))


@contextmanager
def snapshot_sessions(session: Session, count: int) -> Iterator[list[Session]]:
    """`count` read-only sessions, each on a connection of its own, that see exactly what `session` sees (its
    exported snapshot, `pg_export_snapshot`): reads on them run in parallel backends. An empty list where
    that cannot be: SQLite, or a transaction that has written (other connections would not see its rows)."""
    if not is_postgres(session):
        yield []
        return
    snapshot = session.execute(sa.text(
        "SELECT CASE WHEN pg_current_xact_id_if_assigned() IS NULL THEN pg_export_snapshot() END"
    )).scalar_one()  # fmt: skip
    if snapshot is None or not SNAPSHOT_ID.fullmatch(snapshot):
        yield []
        return
    engine = session.get_bind().engine
    with ExitStack() as stack:
        helpers = []
        for _ in range(count):
            connection = stack.enter_context(engine.connect())
            connection.execution_options(isolation_level="REPEATABLE READ")
            connection.execute(sa.text(f"SET TRANSACTION SNAPSHOT '{snapshot}'"))
            connection.execute(sa.text("SET TRANSACTION READ ONLY"))
            helper = stack.enter_context(Session(bind=connection))
            tune_for_aggregates(helper)
            helpers.append(helper)
        yield helpers


def cancel_queries(helpers: Sequence[Session]) -> None:
    """Cancel what the helper sessions of `snapshot_sessions` are running (from another thread): their
    threads get an error at once instead of finishing a read nobody will use."""
    for helper in helpers:
        bind = helper.get_bind()
        if isinstance(bind, sa.Connection):
            driver = bind.connection.driver_connection
            if driver is not None:
                driver.cancel_safe()


def binary_rows(session: Session, statement: sa.Select[Any]) -> list[tuple[Any, ...]]:
    """The rows of `statement` in Postgres' binary format: a bytea arrives as its bytes (in text format the
    server hex-encodes it and the client decodes it again) and a text as its encoded bytes."""
    from psycopg.types.string import ByteaBinaryLoader  # Postgres only: SQLite never needs psycopg

    connection = session.connection()
    compiled = statement.compile(dialect=connection.dialect, compile_kwargs={"render_postcompile": True})
    driver = connection.connection.driver_connection
    assert driver is not None
    with driver.cursor(binary=True) as cursor:
        cursor.adapters.register_loader("text", ByteaBinaryLoader)
        cursor.execute(str(compiled), compiled.params)
        return [tuple(row) for row in cursor.fetchall()]


def _one_row(session: Session, statement: sa.Select[Any]) -> Sequence[Any]:
    """The one row of `statement` (an aggregate) in Postgres' binary format (`binary_rows`)."""
    (row,) = binary_rows(session, statement)
    return row


def concatenated(
    column: sa.ColumnElement[Any] | InstrumentedAttribute[Any], kind: str
) -> sa.ColumnElement[bytes]:
    """The aggregate that sends a numeric column as the concatenation of its values' 8-byte binary forms
    (`kind` "int": never NULL; "float": NULL → NaN), read back by `cells`."""
    empty = sa.literal_column("''::bytea", sa.LargeBinary)
    if kind == "int":
        return sa.func.string_agg(sa.func.int8send(sa.cast(column, sa.BigInteger)), empty)
    nan: sa.ColumnElement[float] = sa.literal_column("'NaN'::float8", sa.Float)
    return sa.func.string_agg(sa.func.float8send(sa.func.coalesce(sa.cast(column, sa.Float), nan)), empty)


def cells(data: bytes | None, kind: str) -> npt.NDArray[Any]:
    """A column sent as the concatenation of its values' binary forms (`int8send` / `float8send`: 8 bytes
    each, big-endian)."""
    dtype = np.int64 if kind == "int" else np.float64
    if not data:
        return np.zeros(0, dtype=dtype)
    return np.frombuffer(data, dtype=">i8" if kind == "int" else ">f8").astype(dtype)


def fetch_numbers(
    session: Session, statement: sa.Select[Any] | Any, kinds: Sequence[str]
) -> list[npt.NDArray[Any]]:
    """The columns of `statement` as numpy arrays: `kinds` says "int" (never NULL) or "float" (NULL → NaN).

    Postgres concatenates each column's values in binary into one bytea (one row, read by `np.frombuffer`);
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
    # `string_agg` of each value's 8-byte binary form: about half the server time of `array_agg` +
    # `array_send` (no array is built, no per-element length word). Every aggregate of one query level reads
    # the same rows in the same order: the columns stay aligned.
    sent: list[sa.ColumnElement[Any]] = [concatenated(c, k) for c, k in zip(inner.c, kinds, strict=True)]
    row = _one_row(session, sa.select(*sent))
    return [cells(data, k) for data, k in zip(row, kinds, strict=True)]


def dense_range_or(
    column: InstrumentedAttribute[int], keys: npt.NDArray[np.int64], otherwise: sa.ColumnElement[bool]
) -> sa.ColumnElement[bool]:
    """Rows whose `column` may be among `keys`: the range from the smallest to the largest key when the keys
    fill at least half of it (one scan, no join with the rows that name them; the caller drops the rows of
    the range that are not keys), else `otherwise`."""
    if len(keys):
        low, high = int(keys.min()), int(keys.max())
        if high - low < 2 * len(keys):
            return column.between(low, high)
    return otherwise


def fetch_table(session: Session, statement: sa.Select[Any] | Any, schema: pa.Schema) -> pa.Table:
    """The rows of `statement` as an Arrow table of `schema` (int64 and string columns; NULL stays null).

    Postgres sends each integer column as 8-byte binary values and each string column as its values' UTF-8
    bytes joined by a separator (`_SEPARATOR`; which are NULL in one more column of bits); a value holding
    the separator itself has the read redone with each string's byte length sent instead. Arrow arrays are
    built on those buffers, no Python object per value. SQLite aggregates each column into one JSON array
    (`json_group_array`), read by orjson.
    """
    inner = statement.subquery("q")
    if not is_postgres(session):
        # Every aggregate of one query level reads the same rows in the same order: the arrays stay aligned.
        row = session.execute(sa.select(*(sa.cast(sa.func.json_group_array(c), sa.Text) for c in inner.c)))
        texts = row.one()
        return pa.table(
            [pa.array(orjson.loads(t) if t else [], type=f.type) for t, f in zip(texts, schema, strict=True)],
            schema=schema,
        )
    utf8 = _utf8_throughout(session)
    separated = _separated_strings(session, inner, schema) if utf8 else None
    if separated is not None:
        return separated
    columns: list[sa.ColumnElement[Any]] = []
    for column, field in zip(inner.c, schema, strict=True):
        columns.extend(_sent(column, field, utf8=utf8))
    sent = list(_one_row(session, sa.select(*columns)))
    arrays = []
    for field in schema:
        if field.type == pa.string():
            lengths, text = sent.pop(0), sent.pop(0)
            arrays.append(_strings(lengths, text))
        else:
            arrays.append(_integers(sent.pop(0), nullable=field.nullable))
    return pa.table(arrays, schema=schema)


# Joins a string column's values: a control character texts practically never hold. Joined by it, a column
# costs Postgres a third less than as lengths plus text (one aggregate, not two).
_SEPARATOR = SEPARATOR


def _separated_strings(session: Session, inner: sa.Subquery, schema: pa.Schema) -> pa.Table | None:
    """`fetch_table` on a UTF-8 server: string columns joined by `_SEPARATOR` (NULL as ''), one column of
    bits per row saying which of the nullable ones are NULL; None when a value holds the separator (the count
    of separators says so), or when nothing would count the rows (no integer column, no nullable string)."""
    empty = sa.literal_column("''::bytea", sa.LargeBinary)
    columns: list[sa.ColumnElement[Any]] = []
    null_bits: list[sa.ColumnElement[int]] = []
    for column, field in zip(inner.c, schema, strict=True):
        if field.type != pa.string():
            columns.extend(_sent(column, field, utf8=True))
            continue
        text: sa.ColumnElement[Any] = column
        if field.nullable:
            null_bits.append(sa.case((column.is_(None), 1 << len(null_bits)), else_=0))
            text = sa.func.coalesce(column, "")
        columns.append(sa.cast(sa.func.string_agg(text, _SEPARATOR), sa.Text))
    if len(null_bits) > 31 or (not null_bits and all(f.type == pa.string() for f in schema)):
        return None
    if null_bits:
        columns.append(sa.func.string_agg(sa.func.int4send(sum(null_bits[1:], null_bits[0])), empty))
    return separated_table(_one_row(session, sa.select(*columns)), schema)


def separated_table(row: Sequence[Any], schema: pa.Schema) -> pa.Table | None:
    """The Arrow table of `schema` from the one row `_separated_strings` has Postgres send (also sent by
    `analysis.prefetch.captures_sql`): None when a value holds the separator."""
    sent = list(row)
    has_bits = any(f.nullable and f.type == pa.string() for f in schema)
    bits = np.frombuffer(sent.pop() or b"", dtype=">i4") if has_bits else None
    numbers = {f.name: _integers(sent[i], nullable=f.nullable) for i, f in enumerate(schema)
               if f.type != pa.string()}  # fmt: skip
    rows = len(bits) if bits is not None else len(next(iter(numbers.values())))
    arrays = []
    for i, field in enumerate(schema):
        if field.type != pa.string():
            arrays.append(numbers[field.name])
            continue
        present = np.ones(rows, dtype=bool)
        if field.nullable and bits is not None:
            present, bits = (bits & 1) == 0, bits >> 1
        strings = _split(sent[i], present)
        if strings is None:
            return None
        arrays.append(strings)
    return pa.table(arrays, schema=schema)


def _split(data: bytes | None, present: npt.NDArray[np.bool_]) -> pa.Array | None:
    """A string array from its values joined by `_SEPARATOR` (null where not `present`); None when the
    separators are more than the values need (a value holds one)."""
    n = len(present)
    raw = np.frombuffer(data or b"", dtype=np.uint8)
    ends = np.flatnonzero(raw == ord(_SEPARATOR))
    if len(ends) != max(n - 1, 0):
        return None
    offsets = np.empty(n + 1, dtype=np.int64)
    offsets[0], offsets[-1] = 0, len(raw) - len(ends)
    offsets[1:-1] = ends - np.arange(len(ends))
    values = (data or b"").replace(_SEPARATOR.encode(), b"")  # a C loop: 4x faster than np.delete
    validity = pa.py_buffer(np.packbits(present, bitorder="little"))
    return pa.Array.from_buffers(
        pa.large_string(), n, [validity, pa.py_buffer(offsets), pa.py_buffer(values)]
    ).cast(pa.string())


def _utf8_throughout(session: Session) -> bool:
    """Whether the server stores and sends UTF-8: then a text's `octet_length` counts the bytes received."""
    encodings = session.execute(sa.text("SELECT current_setting('server_encoding'), "
                                        "current_setting('client_encoding')")).one()  # fmt: skip
    return tuple(encodings) == ("UTF8", "UTF8")


def _sent(column: sa.ColumnElement[Any], field: pa.Field, *, utf8: bool) -> list[sa.ColumnElement[Any]]:
    """What Postgres sends of one column: a string's byte lengths (-1: NULL) and its text (as UTF-8 bytes
    unless the server stores and sends UTF-8 already: `convert_to` doubles the server's time); an integer's
    8-byte values (as a double, NaN for NULL, when the column may be NULL: exact below 2**53)."""
    empty = sa.literal_column("''::bytea", sa.LargeBinary)
    if field.type == pa.string():
        if utf8:
            lengths = sa.func.int4send(sa.func.coalesce(sa.func.octet_length(column), -1))
            return [sa.func.string_agg(lengths, empty), sa.cast(sa.func.string_agg(column, ""), sa.Text)]
        encoded = sa.func.convert_to(column, "UTF8")
        lengths = sa.func.int4send(sa.func.coalesce(sa.func.octet_length(encoded), -1))
        return [sa.func.string_agg(lengths, empty), sa.func.string_agg(encoded, empty)]
    if field.type != pa.int64():
        raise TypeError(f"fetch_table: expected int64 or string columns, found {field.type} for {field.name}")
    return [concatenated(column, "float" if field.nullable else "int")]


def arrow_int64(values: npt.NDArray[Any], present: npt.NDArray[np.bool_] | None = None) -> pa.Array:
    """An Arrow int64 array on a numpy array's buffer (null where `present` is false). Built from buffers:
    `pa.array` of any numpy array imports pandas, 0.3 s of a command's time."""
    validity = None if present is None else pa.py_buffer(np.packbits(present, bitorder="little"))
    numbers = np.ascontiguousarray(values, dtype=np.int64)
    return pa.Array.from_buffers(pa.int64(), len(numbers), [validity, pa.py_buffer(numbers)])


def _single(column: pa.Array | pa.ChunkedArray) -> pa.Array:
    return column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column


def present_of(column: pa.Array | pa.ChunkedArray) -> npt.NDArray[np.bool_]:
    """Where an Arrow column is not null, read from its validity bitmap (`to_numpy` imports pandas)."""
    array = _single(column)
    validity = array.buffers()[0]
    if validity is None or array.null_count == 0:
        return np.ones(len(array), dtype=bool)
    bits = np.unpackbits(np.frombuffer(validity, dtype=np.uint8), bitorder="little")
    return bits[array.offset : array.offset + len(array)].astype(bool)


def integers_of(column: pa.Array | pa.ChunkedArray) -> npt.NDArray[Any]:
    """An Arrow integer or boolean column as int64, or as float64 with NaN where it has nulls: read from its
    buffers (`to_numpy` imports pandas, 0.3 s)."""
    array = _single(column)
    if pa.types.is_boolean(array.type):
        bits = np.unpackbits(np.frombuffer(array.buffers()[1], dtype=np.uint8), bitorder="little")
        values = bits[array.offset : array.offset + len(array)].astype(np.int64)
    else:
        dtype = np.dtype(f"int{array.type.bit_width}")
        data = np.frombuffer(array.buffers()[1], dtype=dtype)
        values = data[array.offset : array.offset + len(array)].astype(np.int64)
    if array.null_count == 0:
        return values
    return np.where(present_of(array), values, np.nan)


def _integers(data: bytes | None, *, nullable: bool) -> pa.Array:
    if not nullable:
        return arrow_int64(cells(data, "int"))
    values = cells(data, "float")
    present = ~np.isnan(values)
    return arrow_int64(np.where(present, values, 0.0), present)


def _strings(lengths_data: bytes | None, data: bytes | None) -> pa.Array:
    """A string array from its values' byte lengths (big-endian int32, -1 for NULL) and their bytes."""
    lengths = np.frombuffer(lengths_data or b"", dtype=">i4").astype(np.int64)
    present = lengths >= 0
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(np.where(present, lengths, 0), out=offsets[1:])
    validity = pa.py_buffer(np.packbits(present, bitorder="little"))
    return pa.Array.from_buffers(
        pa.large_string(), len(lengths), [validity, pa.py_buffer(offsets), pa.py_buffer(data or b"")]
    ).cast(pa.string())
