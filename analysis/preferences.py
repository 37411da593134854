"""An experiment's pairwise preferences, read from the database and folded per (request, pair of arms)."""

from __future__ import annotations

import numpy as np
import sqlalchemy as sa
from sqlalchemy.orm import Session

from analysis.csv_input import IntArray, MetricColumn
from analysis.stats.ranking import PairwiseOutcomes
from shadowlab.models import Preference

PREFERENCE_PREFIX = "pref_"


def _pref_score() -> sa.ColumnElement[float]:
    return sa.case((Preference.result == "a", 1.0), (Preference.result == "tie", 0.5), else_=0.0)


def read_preferences(
    session: Session,
    eid: int,
    request_keys: IntArray,
    arm_index: dict[int, int],
    control_id: int,
    shape: tuple[int, int],
) -> tuple[PairwiseOutcomes, list[MetricColumn], tuple[int, int] | None]:
    """Mean score of arm A per (request, A, B, order shown, scorer) in SQL; folded into unordered pairs here.
    Also how many pairs judged in both orders got a different verdict in each (the judge-consistency check).

    Rows are canonical (scoring/pairwise.py: arm A = control, `order_shown` says which answer came first),
    so the two orders of one pair differ only in `order_shown`: it must be part of the grouping, or the
    orders average into ¼ and ¾ and a split is invisible.
    """
    score = _pref_score()
    rows = session.execute(
        sa.select(
            Preference.scorer_name, Preference.captured_request_id, Preference.arm_a_id, Preference.arm_b_id,
            sa.func.sum(score), sa.func.count(),
        )
        .where(Preference.experiment_id == eid)
        .group_by(
            Preference.scorer_name, Preference.captured_request_id, Preference.arm_a_id, Preference.arm_b_id,
            Preference.order_shown,
        )
        .order_by(Preference.scorer_name, Preference.captured_request_id)
    ).all()  # fmt: skip
    requests = np.array([r[1] for r in rows], dtype=np.int64)
    positions = np.searchsorted(request_keys, requests).clip(0, max(len(request_keys) - 1, 0))
    known = request_keys[positions] == requests if len(request_keys) else np.zeros(len(rows), dtype=bool)
    # Per (scorer, request, unordered pair): the lower-indexed arm's score in each order shown.
    orders: dict[tuple[str, int, int, int], list[float]] = {}
    for (scorer, _, arm_a, arm_b, total, count), position, seen in zip(
        rows, positions.tolist(), known.tolist(), strict=True
    ):
        if not seen or arm_a not in arm_index or arm_b not in arm_index:
            continue
        low, high = sorted((arm_index[arm_a], arm_index[arm_b]))
        a_mean = float(total) / float(count)
        orders.setdefault((scorer, position, low, high), []).append(
            a_mean if arm_index[arm_a] == low else 1.0 - a_mean
        )
    # As docs/scoring.md says: a judge that disagrees with itself across the two orders scores ½ (a win
    # in one order and a tie in the other is a disagreement too), so only consistent pairs are decisive.
    folded = {key: (shown[0] if max(shown) == min(shown) else 0.5) for key, shown in orders.items()}
    both = [shown for shown in orders.values() if len(shown) >= 2]
    judge_orders = (sum(max(shown) != min(shown) for shown in both), len(both)) if orders else None
    columns: list[MetricColumn] = []
    scorers = list(dict.fromkeys(key[0] for key in folded))
    control = arm_index[control_id]
    for scorer in scorers:
        values = np.full(shape, np.nan)
        for (name, request, low, high), low_score in folded.items():
            if name == scorer and control in (low, high):
                other = high if low == control else low
                values[request, other] = low_score if low == other else 1.0 - low_score
        columns.append(MetricColumn(f"{PREFERENCE_PREFIX}{scorer}", "preference", values))
    chosen = scorers[0] if scorers else None
    picked = [(k, v) for k, v in folded.items() if k[0] == chosen]
    first = np.array([k[2] for k, _ in picked], dtype=np.int64)
    second = np.array([k[3] for k, _ in picked], dtype=np.int64)
    score_values = np.array([v for _, v in picked], dtype=np.float64)
    return PairwiseOutcomes(chosen, first, second, score_values), columns, judge_orders
