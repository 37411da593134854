"""Which version of a scorer counts, and which scores are an experiment's: the rules `shadowlab.store.scorers`
and `analysis.prefetch` share (this module imports nothing, so the prefetch can use it before the command's
imports)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any


def latest_versions(rows: Iterable[tuple[str, str, Any]]) -> dict[str, str]:
    """Per scorer name (sorted), the version written most recently: of `(name, version, last written)` rows,
    the one with the latest last row (the greater version when two tie)."""
    latest: dict[str, tuple[Any, str]] = {}
    for name, version, last_at in rows:
        if name not in latest or (last_at, version) > latest[name]:
            latest[name] = (last_at, version)
    return {name: version for name, (_, version) in sorted(latest.items())}


ReplaySpan = tuple[int, int, int]  # the smallest and largest replay id of an experiment, and its replays
REPLAY_STATUSES = ("ok", "error")  # `shadowlab.models.ReplayStatus`'s values (a test holds them equal)


def span_of_bounds(row: Sequence[Any]) -> ReplaySpan:
    """An experiment's replay span from a row of each status' (smallest, largest) replay id, in
    `REPLAY_STATUSES`' order (NULL without any), then its count of replays; (0, 0, 0) without any."""
    *bounds, count = row
    lows, highs = [b for b in bounds[0::2] if b is not None], [b for b in bounds[1::2] if b is not None]
    return (int(min(lows)), int(max(highs)), int(count)) if count and lows else (0, 0, 0)
