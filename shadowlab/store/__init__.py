"""Typed reads and writes of shadowlab's tables, one module per concept; the session is a keyword argument:

    from shadowlab import store

    experiment = store.experiments.by_name("haiku-vs-sonnet", session=session)
    snapshot = store.snapshots.latest(experiment.id, session=session)

A named row that is missing raises `NotFoundError` (`shadowlab.errors`). Functions flush what they write and
never commit: the caller owns the transaction (`shadowlab.db.session_scope`).
"""

from __future__ import annotations

from shadowlab.errors import NotFoundError
from shadowlab.store import (
    arms,
    captures,
    changes,
    decisions,
    experiments,
    labels,
    replays,
    scorers,
    scores,
    snapshots,
)

__all__ = [
    "NotFoundError",
    "arms",
    "captures",
    "changes",
    "decisions",
    "experiments",
    "labels",
    "replays",
    "scorers",
    "scores",
    "snapshots",
]
