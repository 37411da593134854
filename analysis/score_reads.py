"""The scores `load_experiment` reads: each pointwise scorer's latest version (`shadowlab.scorer_versions`'s
rule), then that version's scores of the experiment's replays, as numpy arrays (`analysis.fetch`); or the
same from the row `analysis.prefetch` had Postgres send."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import sqlalchemy as sa
from sqlalchemy.orm import Session

from analysis.fetch import cells, fetch_numbers
from shadowlab import store
from shadowlab.models import Preference, Replay, Score

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class ScoreVersion:
    """The scores one version of one pointwise scorer wrote on the experiment's replays (and perhaps on others
    of their id range: callers keep those of the experiment's replays)."""

    name: str
    version: str
    replay_ids: IntArray
    values: FloatArray  # NaN: no value


@dataclass(frozen=True)
class ScorerChoice:
    """The experiment's replay id range (`store.scorers.ReplaySpan`), each pointwise scorer's version written
    most recently (by name) and the pairwise scorers' names (sorted)."""

    span: store.scorers.ReplaySpan
    latest: dict[str, str]
    pairwise: list[str]


def choose_scorers(session: Session, eid: int) -> ScorerChoice:
    """What `ScorerChoice` holds, from the experiment's scores and preferences."""
    span = store.scorers.replay_span(eid, session=session)
    latest = store.scorers.latest_point_versions(eid, session=session, span=span)
    return ScorerChoice(span, latest, preference_scorers(session, eid))


def read_scores(session: Session, eid: int, choice: ScorerChoice) -> dict[str, ScoreVersion]:
    """Per pointwise scorer name (sorted), the scores of its chosen version. Read by the replays' id range
    when they fill at least half of it (one scan of `scores`, no join with a million replays; the other rows
    of the range are dropped when placed), else by the replays' ids."""
    if not choice.latest:
        return {}
    low, high, count = choice.span
    ours = (
        Score.replay_id.between(low, high) if high - low < 2 * count
        else Score.replay_id.in_(sa.select(Replay.id).where(Replay.experiment_id == eid))
    )  # fmt: skip
    pairs = list(choice.latest.items())
    which = [(Score.scorer_name == name) & (Score.scorer_version == version) for name, version in pairs]
    statement = sa.select(Score.replay_id, Score.value).where(sa.or_(*which), ours)
    if len(pairs) == 1:  # one scorer: no column saying whose each score is (~0.1 s of Postgres per million)
        ids, values = fetch_numbers(session, statement, ["int", "float"])
        codes = np.zeros(len(ids), dtype=np.int64)
    else:
        code = sa.case(*((condition, i) for i, condition in enumerate(which)))
        ids, values, codes = fetch_numbers(session, statement.add_columns(code), ["int", "float", "int"])
    return _by_version(pairs, ids, values, codes)


def scores_from_row(row: Sequence[Any], latest: dict[str, str]) -> dict[str, ScoreVersion]:
    """`read_scores`' answer from the row `analysis.prefetch_sql.scores_chain` builds: replay ids, values and,
    with two versions or more, each row's version (its position in `latest`)."""
    pairs = list(latest.items())
    ids, values = cells(row[0], "int"), cells(row[1], "float")
    codes = cells(row[2], "int") if len(pairs) > 1 else np.zeros(len(ids), dtype=np.int64)
    return _by_version(pairs, ids, values, codes)


def _by_version(
    pairs: Sequence[tuple[str, str]], ids: IntArray, values: FloatArray, codes: IntArray
) -> dict[str, ScoreVersion]:
    return {
        name: ScoreVersion(name, version, ids[codes == i], values[codes == i])
        for i, (name, version) in enumerate(pairs)
    }


def preference_scorers(session: Session, eid: int) -> list[str]:
    """The names of the scorers that wrote preferences in the experiment, sorted."""
    names = session.execute(
        sa.select(Preference.scorer_name).where(Preference.experiment_id == eid).distinct()
    ).scalars().all()  # fmt: skip
    return sorted(names)
