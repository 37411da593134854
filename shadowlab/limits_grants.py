"""The database side of rate limits: worker heartbeats, each worker's share of each key, `retry-after` pauses.

Shares are recomputed at every heartbeat (and at once when another worker's share changed: NOTIFY on
Postgres), one key at a time under the key's row lock, so they never sum above a limit:

    mine = min(fair share among the live holders of the key, limit − what the others may still use)

where the others count at their share plus their `extra`: what a worker that just gave up part of its
share may still have in the current window (its window is a log, so any window reaching past the
moment it shrank holds at most max(new share, what it had used), see `limits_window`). A dead worker's
concurrency returns when its heartbeat expires; its rate shares once its last sends left the window.
A worker whose heartbeats fail stops sending when its own grant lapses (`valid_s`), so a share is never
used by two workers at once. Clock: the workers' wall clocks (UTC), expected NTP-synchronised.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from shadowlab.db import session_scope
from shadowlab.experiment import LimitSpec
from shadowlab.limits_window import Share, WindowUse
from shadowlab.models import RateLimitGrant, RateLimitKey, WorkerHeartbeat

__all__ = ["CHANNEL", "GrantBook", "KeyGrant", "aware"]

# NOTIFY payloads: "grants <key> <worker id>" (whose share changed: that worker skips its own) and
# "pause <key> <iso time>".
CHANNEL = "shadowlab_limits"
_RATE_DIMS = ("rpm", "input_tpm", "output_tpm")
_USE_OF = {"rpm": "requests", "input_tpm": "input_tokens", "output_tpm": "output_tokens"}
# Core tables and plain DML for the statements of every heartbeat (one a second per worker): the ORM's
# insert, row loading and a DELETE's `synchronize_session` cost more client CPU than the SQL (a beat of 2 keys
# at load ~5: 22 ms, of which 3.9 the grant upserts and 2.4 the DELETEs; 15 ms without them).
_GRANTS = cast(sa.Table, RateLimitGrant.__table__)
_PLAIN = {"synchronize_session": False}
_SWEEP_EVERY = 60  # beats between deletes of dead workers' heartbeats when no dead grant showed them


@dataclass(frozen=True)
class KeyGrant:
    """This worker's share of one key after a heartbeat, and the key's `retry-after` pause if any."""

    share: Share
    blocked_until: datetime | None
    changed: bool


def aware(value: datetime) -> datetime:
    """SQLite returns naive datetimes; everything stored here is UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


class GrantBook:
    """Registers one worker, renews its heartbeat and computes its shares of `limits`."""

    def __init__(
        self,
        factory: sessionmaker[Session],
        limits: Sequence[LimitSpec],
        *,
        worker_id: str,
        kind: str,
        timeout_s: float,
        clock: Callable[[], datetime],
    ) -> None:
        self.factory, self.worker_id, self.kind = factory, worker_id, kind
        self.limits = {limit.key: limit for limit in limits}
        self.timeout_s, self._clock = timeout_s, clock
        self.postgres = factory.kw["bind"].dialect.name == "postgresql"
        self._insert = postgresql.insert if self.postgres else sqlite.insert
        self._keys: set[str] = set()  # keys whose row exists (rows are never deleted)
        self._beats = 0
        # Built once: every beat sends this upsert with its values (`excluded`: the row it tried to insert).
        grant = self._insert(_GRANTS)
        self._upsert_grant = grant.on_conflict_do_update(
            index_elements=[_GRANTS.c.key, _GRANTS.c.worker_id],
            set_={column.name: grant.excluded[column.name] for column in _GRANTS.c
                  if column.name not in ("key", "worker_id")},
        )  # fmt: skip

    def heartbeat(
        self, uses: Mapping[str, WindowUse], held: Mapping[str, Share | None]
    ) -> dict[str, KeyGrant]:
        """Renew this worker, drop the dead, and recompute its share of every key (one transaction)."""
        with session_scope(self.factory) as session:
            now = self._clock()
            self._renew(session, now)
            grants = {}
            for key in sorted(self.limits):  # one order for every worker: no lock cycles
                grants[key] = self._grant(session, self.limits[key], now, uses[key], held.get(key))
                if grants[key].changed:
                    self._notify(session, f"grants {key} {self.worker_id}")
            return grants

    def _renew(self, session: Session, now: datetime) -> None:
        expires = now + timedelta(seconds=self.timeout_s)
        wh = WorkerHeartbeat
        beat = {"heartbeat_at": now, "expires_at": expires}
        session.execute(
            self._insert(wh)
            .values(worker_id=self.worker_id, kind=self.kind, started_at=now, **beat)
            .on_conflict_do_update(index_elements=[wh.worker_id], set_=beat)
        )
        self._beats += 1
        if self._beats % _SWEEP_EVERY == 0:  # dead workers holding no grant (else `_drop` finds them)
            self._drop_dead(session, now)

    def _drop_dead(self, session: Session, now: datetime) -> None:
        """Delete the heartbeats of dead workers. Rows another worker is writing right now are skipped (it is
        alive): no lock cycles between workers. Nothing reads them to compute a share (the grant rows
        say who is live), so this is housekeeping: done when a dead worker's grant is seen, or every
        `_SWEEP_EVERY` beats (it was two statements of every beat)."""
        wh = WorkerHeartbeat
        dead = sa.select(wh.worker_id).where(wh.expires_at < now).with_for_update(skip_locked=True)
        session.execute(sa.delete(wh).where(wh.worker_id.in_(dead)), execution_options=_PLAIN)

    def _drop(self, session: Session, key: str, now: datetime) -> None:
        """Delete the grants of `key` that no longer count (past `counted_until`: their worker is dead or
        left), seen by this beat's read of the key's grants (skipped if locked: no lock cycles)."""
        grant = _GRANTS.c
        gone = (
            sa.select(grant.key, grant.worker_id)
            .where(grant.key == key, grant.counted_until < now)
            .with_for_update(skip_locked=True)
        )
        session.execute(sa.delete(_GRANTS).where(sa.tuple_(grant.key, grant.worker_id).in_(gone)))
        self._drop_dead(session, now)

    def _lock_key(self, session: Session, key: str) -> datetime | None:
        if key not in self._keys:
            session.execute(self._insert(RateLimitKey).values(key=key).on_conflict_do_nothing())
        blocked = session.execute(
            sa.select(RateLimitKey.blocked_until).where(RateLimitKey.key == key).with_for_update()
        ).one_or_none()
        if blocked is None:  # not this process's first beat, yet no row: make it and lock it
            self._keys.discard(key)
            return self._lock_key(session, key)
        self._keys.add(key)
        return None if blocked[0] is None else aware(blocked[0])

    def _grant(
        self, session: Session, limit: LimitSpec, now: datetime, use: WindowUse, held: Share | None
    ) -> KeyGrant:
        blocked = self._lock_key(session, limit.key)
        rows = session.execute(sa.select(_GRANTS).where(_GRANTS.c.key == limit.key)).all()
        if any(aware(row.counted_until) < now for row in rows):
            self._drop(session, limit.key, now)
        others = [row for row in rows if row.worker_id != self.worker_id and aware(row.counted_until) >= now]
        live = sorted({row.worker_id for row in others if aware(row.expires_at) > now} | {self.worker_id})
        index = live.index(self.worker_id)
        values: dict[str, int | None] = {}
        for dim in (*_RATE_DIMS, "concurrency"):
            total: int | None = getattr(limit, dim)
            if total is None:
                values[dim] = None
                continue
            fair = total // len(live) + (1 if index < total % len(live) else 0)
            values[dim] = max(0, min(fair, total - sum(_counted(row, dim, now) for row in others)))
        share = Share(**values)
        self._write(session, limit, now, share, use)
        return KeyGrant(share, blocked, changed=share != held)

    def _write(self, session: Session, limit: LimitSpec, now: datetime, share: Share, use: WindowUse) -> None:
        """My grant row: the share, and what I may still have in the window beyond it (`extra`)."""
        expires = now + timedelta(seconds=self.timeout_s)
        row: dict[str, object] = {
            "key": limit.key, "worker_id": self.worker_id, **share.__dict__,
            "concurrency_extra": max(0, use.in_flight - (share.concurrency or 0)),
            "extra_until": now + timedelta(seconds=limit.window_s), "used_requests": use.requests,
            "expires_at": expires, "counted_until": expires + timedelta(seconds=limit.window_s),
            "updated_at": now,
        }  # fmt: skip
        for dim in _RATE_DIMS:
            mine = getattr(share, dim)
            row[_extra(dim)] = 0 if mine is None else max(0, getattr(use, _USE_OF[dim]) - mine)
        session.execute(self._upsert_grant, row)

    def pause(self, key: str, seconds: float) -> datetime:
        """Honour `retry-after`: nobody sends to `key` until now + `seconds`; returns the pause's end."""
        with session_scope(self.factory) as session:
            current = self._lock_key(session, key)
            until = self._clock() + timedelta(seconds=seconds)
            if current is not None and current >= until:
                return current
            session.execute(
                sa.update(RateLimitKey).where(RateLimitKey.key == key).values(blocked_until=until)
            )
            self._notify(session, f"pause {key} {until.isoformat()}")
            return until

    def leave(self, uses: Mapping[str, WindowUse]) -> None:
        """A clean exit: the share is given back at once; only what this worker sent in the window still
        counts, until it has left the window."""
        with session_scope(self.factory) as session:
            now = self._clock()
            session.execute(sa.delete(WorkerHeartbeat).where(WorkerHeartbeat.worker_id == self.worker_id))
            for key, limit in self.limits.items():
                gone = now + timedelta(seconds=limit.window_s)
                used = {_extra(dim): getattr(uses[key], _USE_OF[dim]) for dim in _RATE_DIMS}
                session.execute(
                    sa.update(RateLimitGrant)
                    .where(RateLimitGrant.key == key, RateLimitGrant.worker_id == self.worker_id)
                    .values(rpm=0, input_tpm=0, output_tpm=0, concurrency=0, concurrency_extra=0, **used,
                            extra_until=gone, expires_at=now, counted_until=gone)
                )  # fmt: skip
                self._notify(session, f"grants {key} {self.worker_id}")

    def _notify(self, session: Session, payload: str) -> None:
        if self.postgres:  # delivered at commit; SQLite workers poll at each heartbeat instead
            session.execute(sa.select(sa.func.pg_notify(CHANNEL, payload)))


def _extra(dim: str) -> str:
    return {"rpm": "rpm_extra", "input_tpm": "input_extra", "output_tpm": "output_extra"}[dim]


def _counted(row: sa.Row[Any], dim: str, now: datetime) -> int:
    """What another worker's grant takes of `dim` now (see the module docstring)."""
    share = getattr(row, dim) or 0
    if dim == "concurrency":
        return share + row.concurrency_extra if aware(row.expires_at) > now else 0
    extra = getattr(row, _extra(dim)) if row.extra_until is not None and aware(row.extra_until) > now else 0
    return int(share + extra)
