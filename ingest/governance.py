"""Retention and the right to be forgotten: delete captures and everything derived from them.

Derived rows are deleted explicitly, leaves first, in the same transaction as the captures, so the counts
reported are exact; the `ON DELETE CASCADE` foreign keys remain as a safety net. A forgotten user also goes
on the forget list, which ingest checks before storing (`ingest.forgetting`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from ingest.forgetting import remember_to_forget
from shadowlab.errors import ConfigError
from shadowlab.models import (
    BudgetReservation,
    CapturedRequest,
    Label,
    Preference,
    Replay,
    Score,
    WorkLease,
)

_UNITS = {"d": "days", "h": "hours", "m": "minutes", "w": "weeks"}
_LONGEST = timedelta(days=100 * 366)  # older than any capture can be (and within datetime's range)


def parse_age(text: str) -> timedelta:
    """`30d`, `12h`, `90m`, `2w` into a timedelta (a positive whole number and one unit)."""
    match = re.fullmatch(r"\s*(\d+)\s*([dhmw])\s*", text)
    if not match or int(match.group(1)) == 0:
        raise ConfigError(f"--older-than: expected a positive age like 30d, 12h, 90m or 2w, found {text!r}")
    n, unit = int(match.group(1)), _UNITS[match.group(2)]
    if n > _LONGEST / timedelta(**{unit: 1}):
        raise ConfigError(f"--older-than: expected an age of at most 100 years (36600d), found {text!r}")
    return timedelta(**{unit: n})


@dataclass(frozen=True)
class Deleted:
    """Rows deleted, by table."""

    captured_requests: int
    replays: int
    scores: int
    preferences: int
    labels: int
    work_leases: int
    budget_reservations: int

    @property
    def total(self) -> int:
        return sum(vars(self).values())

    def summary(self) -> str:
        parts = ", ".join(f"{name} {count}" for name, count in vars(self).items())
        return f"deleted {self.total} rows: {parts}"


def delete_older_than(engine: Engine, age: timedelta, *, now: datetime | None = None) -> Deleted:
    """Delete captures captured before `now - age` and everything computed from them."""
    cutoff = (now or datetime.now(UTC)) - age
    return _delete_captures(engine, CapturedRequest.captured_at < cutoff)


def forget_user(engine: Engine, user_hash: str) -> Deleted:
    """Delete every capture of `user_hash` and everything computed from them, and put the user on the
    forget list (`ingest.forgetting`) so ingest never stores their captures again."""
    if not user_hash.strip():
        raise ConfigError("USER_HASH: expected a non-empty user hash, found an empty string")
    remember = lambda conn: remember_to_forget(conn, user_hash)  # noqa: E731
    return _delete_captures(engine, CapturedRequest.user_hash == user_hash, before=remember)


def _delete_captures(
    engine: Engine, where: sa.ColumnElement[bool], before: Callable[[Connection], None] | None = None
) -> Deleted:
    with engine.begin() as conn:
        if before is not None:
            before(conn)
        targets = sa.select(CapturedRequest.id).where(where).scalar_subquery()
        replays = sa.select(Replay.id).where(Replay.captured_request_id.in_(targets)).scalar_subquery()
        counts = {
            "scores": _delete(conn, sa.delete(Score).where(Score.replay_id.in_(replays))),
            "replays": _delete(conn, sa.delete(Replay).where(Replay.captured_request_id.in_(targets))),
            "preferences": _delete(
                conn, sa.delete(Preference).where(Preference.captured_request_id.in_(targets))
            ),
            "labels": _delete(conn, sa.delete(Label).where(Label.captured_request_id.in_(targets))),
            "work_leases": _delete(
                conn, sa.delete(WorkLease).where(WorkLease.captured_request_id.in_(targets))
            ),
            "budget_reservations": _delete(
                conn, sa.delete(BudgetReservation).where(BudgetReservation.captured_request_id.in_(targets))
            ),
            "captured_requests": _delete(conn, sa.delete(CapturedRequest).where(where)),
        }
    return Deleted(**counts)


def _delete(conn: Connection, statement: sa.Delete) -> int:
    return conn.execute(statement).rowcount
