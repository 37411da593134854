"""Which version of a scorer counts: the rule `shadowlab.store.scorers` and `analysis.prefetch` share (this
module imports nothing, so the prefetch can use it before the command's imports)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def latest_versions(rows: Iterable[tuple[str, str, Any]]) -> dict[str, str]:
    """Per scorer name (sorted), the version written most recently: of `(name, version, last written)` rows,
    the one with the latest last row (the greater version when two tie)."""
    latest: dict[str, tuple[Any, str]] = {}
    for name, version, last_at in rows:
        if name not in latest or (last_at, version) > latest[name]:
            latest[name] = (last_at, version)
    return {name: version for name, (_, version) in sorted(latest.items())}
