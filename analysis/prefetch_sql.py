"""The SQL of `analysis.prefetch`'s reads, as text run on psycopg connections (no SQLAlchemy, no numpy: this
module imports only the standard library and `shadowlab.scorer_versions`). Each read asks Postgres for the
same row `analysis.load_start`'s SQLAlchemy statements ask for, in the forms `analysis.fetch` decodes: every
numeric column as the concatenation of its values' 8-byte binary forms, every string column joined by
`SEPARATOR`. `tests/analysis/test_prefetch.py` holds both to the same analysis."""

from __future__ import annotations

import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from shadowlab.scorer_versions import REPLAY_STATUSES, ReplaySpan, latest_versions, span_of_bounds

SNAPSHOT_ID = re.compile(r"[0-9A-F]+-[0-9A-F]+-[0-9]+")  # what pg_export_snapshot returns
SEPARATOR = "\x01"  # joins a string column's values (`analysis.fetch`'s separated strings)
_PROBES = 64  # ids looked up to estimate how densely the requests fill their id range


@dataclass(frozen=True)
class Head:
    """The experiment the reads are of: its id and its arms' ids and roles (by id), the smallest and largest
    captured-request id its replays name (None without replays), and whether the server stores and sends
    UTF-8 (else captures are not prefetched)."""

    experiment_id: int
    arms: tuple[tuple[int, str], ...]
    requests: tuple[int, int] | None
    utf8: bool

    @property
    def used(self) -> bool:
        """Whether any arm has replays."""
        return self.requests is not None


def probes(low: int, high: int) -> list[int]:
    """`_PROBES` ids spread over [low, high]: a low-discrepancy sequence (multiples of the golden ratio), so
    no stride of the ids aliases with it."""
    size = high - low + 1
    return sorted({low + int((i * 0.6180339887498949) % 1.0 * size) for i in range(1, _PROBES + 1)})


def replays_sql(arm_ids: Sequence[int]) -> tuple[str, list[Any]]:
    """The experiment's replays as five concatenated binary columns: id, code ((captured request × arms +
    the arm's position among the experiment's arms by id) × 2 + failed), ttft, latency, cost (NULL → NaN);
    `analysis.load_start.Replays` decodes them. Parameters: the arm ids, then the experiment id."""
    slots = max(len(arm_ids), 1)
    case = " ".join(f"WHEN %s THEN {i}" for i in range(len(arm_ids)))
    slot = f"CASE arm_id {case} ELSE 0 END" if arm_ids else "0"
    failed = "CASE WHEN status = 'error' THEN 1 ELSE 0 END"
    code = f"(captured_request_id::bigint * {slots} + {slot}) * 2 + {failed}"
    floats = [_float_column(c) for c in ("ttft_ms", "latency_ms", "cost_usd")]
    sql = (f"SELECT {_int_column('id')}, {_int_column(code)}, {', '.join(floats)} "
           "FROM replays WHERE experiment_id = %s")  # fmt: skip
    return sql, [*arm_ids]


def captures_sql() -> str:
    """The captured requests with ids in [%s, %s] in `analysis.load_start.CAPTURE_SCHEMA`'s columns, in the
    form `analysis.fetch.separated_table` decodes: integers as 8-byte binary values (NaN for NULL when
    nullable), strings joined by `SEPARATOR` (NULL as ''), then which nullable strings are NULL (bits)."""

    def joined(column: str) -> str:
        return f"string_agg({column}, chr({ord(SEPARATOR)}))::text"

    nulls = " + ".join(
        f"CASE WHEN {c} IS NULL THEN {1 << i} ELSE 0 END"
        for i, c in enumerate(("conversation_id", "prompt_fingerprint", "route"))
    )
    columns = [
        _int_column("id"), joined("request_id"), joined("coalesce(conversation_id, '')"),
        joined("coalesce(prompt_fingerprint, '')"), joined("service"), joined("coalesce(route, '')"),
        joined("tags::text"), _float_column("prompt_chars"), _float_column("user_turn"),
        f"string_agg(int4send({nulls}), ''::bytea)",
    ]  # fmt: skip
    return f"SELECT {', '.join(columns)} FROM captured_requests WHERE id BETWEEN %s AND %s"


def _int_column(expression: str) -> str:
    return f"string_agg(int8send(({expression})::bigint), ''::bytea)"


def _float_column(expression: str) -> str:
    return f"string_agg(float8send(coalesce(({expression})::float8, 'NaN'::float8)), ''::bytea)"


def one_row(connection: Any, sql: str, params: Sequence[Any] = (), *, binary: bool = True) -> tuple[Any, ...]:
    """The one row of `sql`: in Postgres' binary format (bytea and text as bytes), or as text values."""
    with connection.cursor(binary=binary) as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    assert row is not None
    return tuple(row)


# Aggregates over a million rows: no JIT compile (it costs more than it saves here), and memory for a hash
# join (the default 4 MB spills it to disk in batches); for the transaction only. Both read paths run them.
# And scans from the table's first page: with synchronised scans (the default) a scan of captured_requests
# starts wherever the last one was, so its rows came as a rotation of id order and the load had to reorder
# the whole Arrow table (`request_facts.read_requests`' take: 0.14 s of CPU at 500,000 requests).
TUNING = ("SET LOCAL jit = off", "SET LOCAL work_mem = '128MB'", "SET LOCAL synchronize_seqscans = off")


def tune(connection: Any) -> None:
    """`TUNING` on a psycopg connection (`analysis.fetch.tune_for_aggregates` on a session)."""
    for statement in TUNING:
        connection.execute(statement)


def head_of(connection: Any, name: str) -> Head | None:
    """The experiment's `Head`; None without such an experiment. Each arm's smallest and largest replayed
    request is one look-up in the (arm, captured request) index (`analysis.load_start.dense_request_span`'s
    bounds): an EXISTS was planned as a scan of the replays until the arm's first (66 ms at a million)."""
    bounds = ", ".join(
        f"(SELECT {f}(captured_request_id) FROM replays r WHERE r.arm_id = a.id)" for f in ("min", "max")
    )
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT a.id, a.role, {bounds} FROM experiments e JOIN arms a ON a.experiment_id = e.id "
            "WHERE e.name = %s ORDER BY a.id",
            [name],
        )
        arms = cursor.fetchall()
        cursor.execute("SELECT id FROM experiments WHERE name = %s", [name])
        experiment = cursor.fetchone()
        cursor.execute("SELECT current_setting('server_encoding'), current_setting('client_encoding')")
        encodings = cursor.fetchone()
    if experiment is None:
        return None
    utf8 = encodings is not None and tuple(encodings) == ("UTF8", "UTF8")
    lows = [int(low) for _, _, low, _ in arms if low is not None]
    requests = (min(lows), max(int(high) for *_, high in arms if high is not None)) if lows else None
    return Head(int(experiment[0]), tuple((int(i), str(r)) for i, r, *_ in arms), requests, utf8)


def span_sql() -> str:
    """`shadowlab.store.scorers.replay_span`'s query: each status' smallest and largest replay id (index
    look-ups), then the count of the experiment's replays (an index-only scan). Parameters: the experiment id,
    once per status and once more."""
    bounds = [
        f"(SELECT {f}(id) FROM replays WHERE experiment_id = %s AND status = '{status}')"
        for status in REPLAY_STATUSES
        for f in ("min", "max")
    ]
    return f"SELECT {', '.join(bounds)}, (SELECT count(*) FROM replays WHERE experiment_id = %s)"


def span_of(connection: Any, eid: int) -> ReplaySpan:
    """The experiment's replay span (`span_sql`)."""
    return span_of_bounds(
        one_row(connection, span_sql(), [eid] * (2 * len(REPLAY_STATUSES) + 1), binary=False)
    )


def scores_chain(connection: Any, eid: int) -> tuple[Any, ...]:
    """`analysis.load_start.choose_scorers` (without the preference scorers) then `read_scores`, in SQL of
    their own: the same span, the same versions by the same rule, the same rows. The scores are read once:
    grouped by (scorer, version), each group with its last write and its rows (replay id, value: NULL → NaN)
    as concatenated binary columns; the latest version's rows are kept (a second version's rows are read
    and dropped: one scan instead of one to choose and one to read). Returns the span, each scorer's latest
    version and the row `analysis.score_reads.scores_from_row` decodes (None without scores)."""
    span = span_of(connection, eid)
    low, high, count = span
    every = count and high - low + 1 == count  # `shadowlab.store.scorers._of_experiment`
    of = (
        "replay_id BETWEEN %s AND %s"
        if every
        else "replay_id IN (SELECT id FROM replays WHERE experiment_id = %s)"
    )
    columns = f"scorer_name::text, scorer_version::text, max(created_at), {_int_column('replay_id')}, " + (
        _float_column("value")
    )
    with connection.cursor(binary=True) as cursor:
        cursor.execute(
            f"SELECT {columns} FROM scores WHERE {of} GROUP BY 1, 2", [low, high] if every else [eid]
        )
        groups = {(_text(n), _text(v)): (last, ids, values) for n, v, last, ids, values in cursor.fetchall()}
    latest = latest_versions((n, v, last) for (n, v), (last, _, _) in groups.items())
    if not latest:
        return span, latest, None
    chosen = [groups[pair][1:] for pair in latest.items()]
    ids, values = b"".join(bytes(c[0]) for c in chosen), b"".join(bytes(c[1]) for c in chosen)
    if len(chosen) == 1:
        return span, latest, (ids, values)
    codes = b"".join(struct.pack(">q", i) * (len(c[0]) // 8) for i, c in enumerate(chosen))
    return span, latest, (ids, values, codes)


def _text(value: Any) -> str:
    return bytes(value).decode() if isinstance(value, bytes | memoryview) else str(value)


def dense_span(connection: Any, head: Head) -> tuple[int, int] | None:
    """`analysis.load_start.dense_request_span` in SQL of its own (the same bounds, from `head_of`, and
    probes)."""
    if head.requests is None:
        return None
    low, high = head.requests
    control = next(arm for arm, role in head.arms if role == "control")
    ids = probes(low, high)
    probed = "SELECT count(*) FROM replays WHERE arm_id = %s AND captured_request_id = ANY(%s)"
    (hits,) = one_row(connection, probed, [control, ids], binary=False)
    return (low, high) if 2 * int(hits) > len(ids) else None
