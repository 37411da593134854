"""The forget list: `shadowlab forget` adds a user to it in the same transaction that deletes their
captures, and ingest checks it before storing, so a forgotten user stays forgotten when a topic is read
again (a new consumer group, an offset reset) or a late message arrives. Their dead letters carry no
payload either.

Postgres: ingest holds ROW EXCLUSIVE on `captured_requests` from its check to its commit, and forget takes
SHARE on it after adding the user, so an ingest batch either commits before the delete (and is deleted) or
checks after the user is on the list. SQLite writes one transaction at a time (`BEGIN IMMEDIATE`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from shadowlab.models import CapturedRequest, ForgottenUser

_CHUNK = 1000


def user_digest(user_hash: str) -> str:
    """What the forget list stores for a user: sha256 of their user hash, in hex."""
    return hashlib.sha256(user_hash.encode("utf-8", "surrogatepass")).hexdigest()


def remember_to_forget(conn: Connection, user_hash: str) -> None:
    """Put `user_hash` on the forget list and, on Postgres, wait for in-flight ingest batches to commit."""
    digest = user_digest(user_hash)
    known = conn.execute(sa.select(ForgottenUser.user_digest).where(ForgottenUser.user_digest == digest))
    if known.first() is None:
        conn.execute(sa.insert(ForgottenUser).values(user_digest=digest, forgotten_at=datetime.now(UTC)))
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text(f"LOCK TABLE {CapturedRequest.__tablename__} IN SHARE MODE"))


def hold_off_forgetting(conn: Connection) -> None:
    """Called first in an ingest transaction: a concurrent forget waits until this batch has committed."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text(f"LOCK TABLE {CapturedRequest.__tablename__} IN ROW EXCLUSIVE MODE"))


def forgotten_among(conn: Connection, user_hashes: Iterable[str | None]) -> set[str]:
    """The user hashes among `user_hashes` that are on the forget list."""
    by_digest = {user_digest(h): h for h in set(user_hashes) if h}
    if not by_digest:
        return set()
    if conn.dialect.name == "postgresql":
        # One string of comma-separated hex digests: an IN list of a batch's ~1,000 digests cost ingest ~10 µs
        # per capture (rendered and split into placeholders anew each batch), an array parameter ~5 µs.
        rows = conn.execute(_FORGOTTEN_ANY, {"digests": ",".join(by_digest)})
        return {by_digest[digest] for (digest,) in rows}
    digests = list(by_digest)
    found: set[str] = set()
    for start in range(0, len(digests), _CHUNK):
        chunk = digests[start : start + _CHUNK]
        rows = conn.execute(sa.select(ForgottenUser.user_digest).where(ForgottenUser.user_digest.in_(chunk)))
        found.update(by_digest[digest] for (digest,) in rows)
    return found


_FORGOTTEN_ANY = sa.text(
    f"SELECT user_digest FROM {ForgottenUser.__tablename__} "
    "WHERE user_digest = ANY(string_to_array(CAST(:digests AS text), ','))"
)


def user_hash_of(value: bytes) -> str | None:
    """The `source.user_hash` of a raw message, when it is JSON that has one (for dead letters)."""
    try:
        data = json.loads(value)
    except (ValueError, RecursionError):  # not JSON, not UTF-8, or nested deeper than the parser goes
        return None
    source = data.get("source") if isinstance(data, dict) else None
    user_hash = source.get("user_hash") if isinstance(source, dict) else None
    return user_hash if isinstance(user_hash, str) and user_hash else None
