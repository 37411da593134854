"""Per request of an experiment: its id, cluster labels (conversation, prompt fingerprint) and segment facts,
read in one query and dictionary-encoded (`FactTable`)."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pa_compute
import sqlalchemy as sa
from sqlalchemy.orm import Session

from analysis.facts import PROMPT_CHAR_EDGES, FactTable, IntArray, RequestFacts, dense_codes
from analysis.fetch import arrow_int64, dense_range_or, integers_of, present_of
from analysis.load_start import read_captures
from shadowlab.models import CapturedRequest, Replay
from shadowlab.request_shape import prompt_chars, user_turn

BoolArray = npt.NDArray[np.bool_]
FloatArray = npt.NDArray[np.float64]


class RequestsChangedError(Exception):
    """The captured requests changed while the experiment was read."""


RequestsRead = tuple[IntArray, IntArray, tuple[tuple[str, ...], IntArray | None, FactTable]]


def request_keys(requests: IntArray) -> tuple[IntArray, IntArray]:
    """The distinct request ids, ascending, and each replay's position among them (`np.unique`'s answer;
    counted, not sorted, when the ids are dense: 7 vs 86 ms for a million)."""
    low = int(requests.min()) if requests.size else 0
    rows, count = dense_codes(requests - low)
    keys = np.empty(count, dtype=np.int64)
    keys[rows] = requests
    return keys, rows


def request_facts(service: str, route: str | None, tags: Any, body: Any) -> RequestFacts:
    """Segment facts of one captured request: prompt characters (system + messages) and user turn."""
    return RequestFacts(
        service, route, tags if isinstance(tags, dict) else {}, prompt_chars(body), user_turn(body)
    )


def _which(eid: int, request_keys: IntArray) -> sa.ColumnElement[bool]:
    """The experiment's captures (with the few others of their id range, dropped after reading)."""
    replayed = sa.select(Replay.captured_request_id).where(Replay.experiment_id == eid)
    return dense_range_or(CapturedRequest.id, request_keys, CapturedRequest.id.in_(replayed))


def read_requests(
    session: Session, eid: int, request_keys: IntArray, fetched: pa.Table | None = None
) -> tuple[tuple[str, ...], IntArray | None, FactTable]:
    """Per request (in `request_keys` order): its id, cluster labels and segment facts, from one query (or
    from `fetched`, the captures of the keys' id range read already: `LoadStart.captures`).

    Rows without the stored facts or fingerprint (written before ingest computed them, and not migrated)
    get them from their body, as ingest and the migrations compute them."""
    if fetched is None:
        fetched = read_captures(session, _which(eid, request_keys))
    fetched_ids = integers_of(fetched.column("id"))
    wanted = np.flatnonzero(np.isin(fetched_ids, request_keys))
    order = wanted[np.argsort(fetched_ids[wanted], kind="stable")]
    # usually every row read is wanted, in id order already: no copy of the table then
    in_place = len(order) == len(fetched_ids) and bool((order == np.arange(len(order))).all())
    table = fetched if in_place else fetched.take(arrow_int64(order))
    ids = integers_of(table.column("id"))
    if not np.array_equal(ids, request_keys):
        raise RequestsChangedError("captured requests changed while it was read; run again")
    request_ids = tuple(table.column("request_id").to_pylist())
    chars = integers_of(table.column("prompt_chars")).astype(np.float64)
    turns = integers_of(table.column("user_turn")).astype(np.float64)
    fingerprints = table.column("prompt_fingerprint")
    missing = np.isnan(chars) | np.isnan(turns) | ~present_of(fingerprints)
    if missing.any():
        chars, turns, fingerprints = _from_bodies(session, ids, missing, chars, turns, fingerprints)
    clusters = _clusters(table.column("conversation_id"), fingerprints)
    facts = _fact_table(table, chars.astype(np.int64), turns.astype(np.int64))
    return request_ids, clusters, facts


def _captured_rows(session: Session, ids: Sequence[int], *columns: Any) -> Iterator[sa.Row[Any]]:
    """`CapturedRequest.id` and `columns` of the captures `ids`, 5,000 per query."""
    for start in range(0, len(ids), 5000):
        chunk = CapturedRequest.id.in_(ids[start : start + 5000])
        yield from session.execute(sa.select(CapturedRequest.id, *columns).where(chunk))


def _from_bodies(
    session: Session, ids: IntArray, missing: BoolArray, chars: FloatArray, turns: FloatArray,
    fingerprints: pa.ChunkedArray,
) -> tuple[FloatArray, FloatArray, pa.Array]:  # fmt: skip
    """Prompt characters, user turn and fingerprint computed from the body where the row lacks them."""
    # The API normalisers behind the fingerprint cost ~0.35 s of imports; only rows from before ingest stored
    # the fingerprint need them.
    from shadowlab.fingerprint import body_fingerprint

    chars, turns = chars.copy(), turns.copy()
    prints = fingerprints.to_pylist()
    wanted = [int(i) for i in ids[missing]]
    position = {int(i): p for p, i in enumerate(ids)}
    for row in _captured_rows(session, wanted, CapturedRequest.api, CapturedRequest.request):
        p = position[row.id]
        chars[p] = prompt_chars(row.request) if math.isnan(chars[p]) else chars[p]
        turns[p] = user_turn(row.request) if math.isnan(turns[p]) else turns[p]
        prints[p] = prints[p] if prints[p] is not None else body_fingerprint(row.api, row.request)
    return chars, turns, pa.array(prints, type=pa.string())


def _dictionary_codes(labels: pa.Array | pa.ChunkedArray) -> IntArray:
    """An integer per distinct label (equal labels, equal integers); null is -1."""
    array = labels.combine_chunks() if isinstance(labels, pa.ChunkedArray) else labels
    if not len(array):
        return np.zeros(0, dtype=np.int64)
    indices = integers_of(array.dictionary_encode().indices)  # NaN where null (scalar arguments such as
    # `fill_null(-1)` or `equal(labels, "")` make pyarrow import pandas, 0.3 s)
    return np.where(np.isnan(indices), -1, indices).astype(np.int64)


def first_seen_codes(labels: pa.Array | pa.ChunkedArray) -> IntArray:
    """Dense codes in first-seen order; a missing (null or empty) label is a cluster of its own."""
    array = labels.combine_chunks() if isinstance(labels, pa.ChunkedArray) else labels
    n = len(array)
    lengths = integers_of(pa_compute.binary_length(array))
    empty = ~(lengths > 0)  # NaN (null) too
    if empty.all():  # no labels (no conversation ids, say): every request is its own cluster
        return np.arange(n, dtype=np.int64)
    codes = None if empty.any() else _fixed_width_codes(array, int(lengths[0]))
    if codes is None:
        codes = _dictionary_codes(array)
    keys = np.where(empty, codes.max(initial=0) + 1 + np.arange(n), codes)  # < 2n: a table over them
    first = np.full(int(keys.max()) + 1, n, dtype=np.int64)
    np.minimum.at(first, keys, np.arange(n))
    seen = np.flatnonzero(first < n)
    rank = np.empty(len(first), dtype=np.int64)
    rank[seen[np.argsort(first[seen])]] = np.arange(len(seen))
    return rank[keys]


def _fixed_width_codes(array: pa.Array, width: int) -> IntArray | None:
    """Equal integers for equal labels when every label has `width` bytes, a multiple of 8 (fingerprints:
    32 hex digits), from a hash of their 8-byte words sorted: ~4x faster than Arrow's dictionary encoding of
    half a million. None for other labels, or when two different labels share a hash (then Arrow's)."""
    n = len(array)
    if array.type != pa.string() or width % 8:
        return None
    offsets = np.frombuffer(array.buffers()[1], dtype=np.int32)[array.offset : array.offset + n + 1]
    if not bool((np.diff(offsets) == width).all()):
        return None
    data = np.frombuffer(array.buffers()[2], dtype=np.uint8)[offsets[0] : offsets[0] + n * width]
    words = data.view(np.uint64).reshape(n, width // 8)
    hashed = words[:, 0].copy()
    for j in range(1, width // 8):
        hashed = hashed * np.uint64(0x9E3779B97F4A7C15) ^ words[:, j]  # wraps around: a hash, exactness below
    order = np.argsort(hashed)
    ordered = hashed[order]
    new = np.concatenate(([True], ordered[1:] != ordered[:-1]))
    same = np.flatnonzero(~new)
    if len(same) and not bool((words[order[same]] == words[order[same - 1]]).all()):
        return None
    codes = np.empty(n, dtype=np.int64)
    codes[order] = np.cumsum(new) - 1
    return codes


def _clusters(conversations: pa.ChunkedArray, fingerprints: pa.Array | pa.ChunkedArray) -> IntArray | None:
    """(requests × 2) cluster labels: conversation (a request without one is its own) and prompt fingerprint.
    None when neither dimension groups anything (every cluster a singleton, or one cluster)."""
    clusters = np.column_stack([first_seen_codes(conversations), first_seen_codes(fingerprints)])
    n = len(clusters)
    if all(int(column.max(initial=0)) + 1 in (1, n) for column in clusters.T):
        return None
    return clusters


def _fact_table(table: pa.Table, chars: IntArray, turns: IntArray) -> FactTable:
    """Requests' segment facts, encoded: a request's facts are the first request's with the same service,
    route, tags, prompt-length bucket and turn (3 and more are one) — the labels only depend on those."""
    n = len(chars)
    if n == 0:
        return FactTable((), np.zeros(0, dtype=np.int64))
    parts = [_dictionary_codes(table.column(c)) for c in ("service", "route", "tags")]
    bucket = np.searchsorted(np.array(PROMPT_CHAR_EDGES), chars, side="right")
    # one integer per combination, folded a column at a time (dense after each step: no overflow, no sort)
    key, size = np.zeros(n, dtype=np.int64), 1
    for column in (*parts, bucket, np.minimum(turns, 3)):
        column = column - column.min()
        key, size = dense_codes(key * (int(column.max()) + 1) + column)
    first = np.full(size, n, dtype=np.int64)
    np.minimum.at(first, key, np.arange(n))
    by_first = np.argsort(first, kind="stable")
    rank = np.empty(size, dtype=np.int64)
    rank[by_first] = np.arange(size)
    firsts = first[by_first]
    rows = table.select(["service", "route", "tags"]).take(arrow_int64(firsts)).to_pylist()
    distinct = tuple(
        RequestFacts(row["service"], row["route"], _tags(row["tags"]), int(chars[i]), int(turns[i]))
        for row, i in zip(rows, firsts, strict=True)
    )
    return FactTable(distinct, rank[key])


def _tags(text: str | None) -> dict[str, Any]:
    value = json.loads(text) if text else None
    return value if isinstance(value, dict) else {}
