"""Load one experiment from Postgres or SQLite into the aligned request × arm matrices of the analysis.

The table is the same `ExperimentTable` the CSV form builds, with these metric columns: `error` (binary,
replay status), `ttft_ms` and `latency_ms` (latency; +∞ for a failed replay), `cost_usd` (cost), one column
per scorer name (the scorer version written most recently; binary when every value is 0/1, else mean), and
`pref_<scorer>` (preference of each candidate over the control, averaged over the orders shown).

Columnar: one query returns a row per (request, arm) with only numeric columns (every scorer joined on),
aggregated by the database into arrays (`analysis.fetch`), and one a row per request with its segment facts
and cluster labels (`analysis.request_facts`); numpy places them (no Python object per row). The plan is
checked against the experiment's metrics before any of this is read.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import sqlalchemy as sa
from sqlalchemy.orm import Session

from analysis.csv_input import ERROR_COLUMN, ExperimentTable, FloatArray, IntArray, MetricColumn
from analysis.fetch import dense_range_or, fetch_numbers, is_postgres
from analysis.plan import DecisionPlan, PlanError
from analysis.request_facts import RequestsChangedError, read_requests
from analysis.segments import FactTable
from analysis.stats.ranking import PairwiseOutcomes
from analysis.stats.results import MetricKind
from shadowlab import store
from shadowlab.models import Arm, Preference, Replay, Score

_ROLE_ORDER = {"control": 0, "candidate": 1, "aa": 2}
PREFERENCE_PREFIX = "pref_"
BoolArray = npt.NDArray[np.bool_]


class ExperimentLoadError(Exception):
    """The experiment cannot be loaded; the message names it and what was expected."""


@dataclass(frozen=True)
class ExperimentData:
    """One experiment as the analysis needs it."""

    experiment_id: int
    name: str
    plan: dict[str, Any] | None
    control: str
    aa_arm: str | None
    table: ExperimentTable
    pairwise: PairwiseOutcomes
    facts: FactTable = FactTable((), np.zeros(0, dtype=np.int64))  # per table row: what segments cut on
    arm_models: tuple[tuple[str, str, str], ...] = ()  # (arm, provider, model)
    failure_latency_ms: float | None = None  # a failed replay counts as this in latency ratios (its timeout)
    # (pairs whose verdict flipped when the answers swapped places, pairs judged in both orders); None: no
    # pairwise judge
    judge_orders: tuple[int, int] | None = None

    @property
    def has_replays(self) -> bool:
        """False for an experiment with no replays yet: its table has every arm and no request."""
        return bool(self.table.request_ids)


def _pref_score() -> sa.ColumnElement[float]:
    return sa.case((Preference.result == "a", 1.0), (Preference.result == "tie", 0.5), else_=0.0)


def _metric_columns(scorers: Mapping[str, str], preference_scorers: Sequence[str]) -> dict[str, MetricKind]:
    """The columns the table will have, before reading it (a scorer's kind is only known from its values)."""
    columns: dict[str, MetricKind] = {
        ERROR_COLUMN: "binary", "ttft_ms": "latency", "latency_ms": "latency", "cost_usd": "cost"
    }  # fmt: skip
    columns.update((name, "mean") for name in scorers)
    columns.update((f"{PREFERENCE_PREFIX}{name}", "preference") for name in preference_scorers)
    return columns


def check_plan(name: str, plan: Mapping[str, Any] | None, columns: Mapping[str, MetricKind]) -> None:
    """A PlanError naming the first plan metric the experiment's data cannot have."""
    if not plan:
        return
    decision = DecisionPlan.from_dict(plan, where=f"experiment {name!r} plan")
    try:
        decision.check_metrics(columns)
    except PlanError as exc:
        raise PlanError(f"experiment {name!r} plan: {exc}") from None


def load_experiment(session: Session, name: str, *, check: bool = False) -> ExperimentData:
    """Read replays, scores and preferences of experiment `name` into an ExperimentTable; with `check`, a
    PlanError before reading any replay when the plan names a metric the experiment cannot have."""
    try:
        experiment = store.experiments.by_name(name, session=session)
    except store.NotFoundError as exc:
        raise ExperimentLoadError(str(exc)) from None
    eid = experiment.id
    used = sa.exists().where(Replay.arm_id == Arm.id)
    arm_rows = session.execute(
        sa.select(Arm.id, Arm.name, Arm.role, Arm.provider, Arm.model, used.label("used"))
        .where(Arm.experiment_id == eid)
        .order_by(Arm.id)
    ).all()
    controls = [a.name for a in arm_rows if a.role == "control"]
    if len(controls) != 1:
        raise ExperimentLoadError(
            f"experiment {name!r}: expected exactly one control arm, found {len(controls)}"
        )
    any_used = any(a.used for a in arm_rows)
    # Without any replay yet (just started, or emptied by retention) every arm stays: an empty table.
    arms = sorted((a for a in arm_rows if a.used or not any_used), key=lambda a: (_ROLE_ORDER[a.role], a.id))
    scorers = store.scorers.latest_point_versions(eid, session=session) if any_used else {}
    preference_scorers = session.execute(
        sa.select(Preference.scorer_name).where(Preference.experiment_id == eid).distinct()
    ).scalars().all()  # fmt: skip
    if check and any_used:
        check_plan(name, experiment.plan, _metric_columns(scorers, sorted(preference_scorers)))
    if is_postgres(session):
        # Two aggregates over a million rows: no JIT compile (it costs more than it saves here), and memory
        # for the replay × score hash join (the default 4 MB spills it to disk in batches).
        session.execute(sa.text("SET LOCAL jit = off"))
        session.execute(sa.text("SET LOCAL work_mem = '128MB'"))
    replays = _replay_columns(session, eid, scorers)
    request_keys, rows = np.unique(replays[0], return_inverse=True)
    rows = rows.reshape(-1)
    arm_ids = np.array([a.id for a in arms], dtype=np.int64)
    cols = np.searchsorted(arm_ids, replays[1]) if arm_ids.size else np.zeros(0, dtype=np.int64)
    # arms are ordered by role, not id: map the sorted id's position to the arm's column
    by_id = np.argsort(arm_ids, kind="stable")
    cols = by_id[np.searchsorted(arm_ids[by_id], replays[1])] if arm_ids.size else cols
    shape = (len(request_keys), len(arms))

    def matrix(values: FloatArray) -> FloatArray:
        out = np.full(shape, np.nan)
        out[rows, cols] = values
        return out

    failed = replays[2] == 1.0
    metrics = [
        MetricColumn(ERROR_COLUMN, "binary", matrix(failed.astype(np.float64))),
        MetricColumn("ttft_ms", "latency", matrix(np.where(failed, np.inf, replays[3]))),
        MetricColumn("latency_ms", "latency", matrix(np.where(failed, np.inf, replays[4]))),
        MetricColumn("cost_usd", "cost", matrix(replays[5])),
    ]
    for scorer, values in zip(scorers, replays[6:], strict=True):
        placed = matrix(values)
        present = placed[~np.isnan(placed)]
        kind: MetricKind = "binary" if present.size and np.isin(present, (0.0, 1.0)).all() else "mean"
        metrics.append(MetricColumn(scorer, kind, placed))
    arm_index = {a.id: i for i, a in enumerate(arms)}
    pairwise, preference_columns, judge_orders = _preferences(
        session, eid, request_keys, arm_index, arms[0].id, shape
    )
    metrics.extend(preference_columns)
    try:
        request_ids, clusters, facts = read_requests(session, eid, request_keys)
    except RequestsChangedError as exc:
        raise ExperimentLoadError(f"experiment {name!r}: {exc}") from None
    aa = [a.name for a in arms if a.role == "aa"]
    table = ExperimentTable(request_ids, tuple(a.name for a in arms), tuple(metrics), clusters, None)
    models = tuple((a.name, a.provider, a.model) for a in arm_rows)
    return ExperimentData(
        eid, name, experiment.plan, controls[0], aa[0] if aa else None, table, pairwise, facts, models,
        replay_timeout_ms(experiment.spec), judge_orders,
    )  # fmt: skip


def _replay_columns(session: Session, eid: int, scorers: Mapping[str, str]) -> list[npt.NDArray[Any]]:
    """Per replay of the experiment: captured request id, arm id, failed (1/0), ttft, latency, cost and the
    value of each scorer's latest version (NaN where it has none)."""
    ids, *replays = fetch_numbers(
        session,
        sa.select(
            Replay.id, Replay.captured_request_id, Replay.arm_id,
            sa.case((Replay.status == "error", 1.0), else_=0.0), Replay.ttft_ms, Replay.latency_ms,
            Replay.cost_usd,
        ).where(Replay.experiment_id == eid),
        ["int", "int", "int", "float", "float", "float", "float"],
    )  # fmt: skip
    return [*replays, *_score_columns(session, eid, ids, scorers)]


def _score_columns(
    session: Session, eid: int, replay_ids: IntArray, scorers: Mapping[str, str]
) -> list[FloatArray]:
    """Per replay in `replay_ids`, the value of each scorer's version in `scorers` (NaN where it has none).

    One scan of `scores` (by replay-id range when the experiment's replays are dense, so no join with them),
    placed by replay id here: joined in SQL, the million-row hash join cost more than the reading."""
    if not scorers:
        return []
    pairs = list(scorers.items())
    chosen = [(Score.scorer_name == name) & (Score.scorer_version == version) for name, version in pairs]
    code = sa.case(*((condition, i) for i, condition in enumerate(chosen)))
    replays = sa.select(Replay.id).where(Replay.experiment_id == eid)
    found_ids, codes, values = fetch_numbers(
        session,
        sa.select(Score.replay_id, code, Score.value).where(
            sa.or_(*chosen),
            dense_range_or(Score.replay_id, replay_ids, Score.replay_id.in_(replays)),
        ),
        ["int", "int", "float"],
    )
    order = np.argsort(replay_ids, kind="stable")
    positions = np.searchsorted(replay_ids, found_ids, sorter=order).clip(0, max(len(replay_ids) - 1, 0))
    rows = order[positions] if len(replay_ids) else positions
    mine = replay_ids[rows] == found_ids if len(replay_ids) else np.zeros(len(found_ids), dtype=bool)
    columns = []
    for i in range(len(pairs)):
        column = np.full(len(replay_ids), np.nan)
        here = mine & (codes == i)
        column[rows[here]] = values[here]
        columns.append(column)
    return columns


def replay_timeout_ms(spec: Any) -> float | None:
    """The spec's replay timeout (`replay.timeout_s`, default 600 s) in ms; None without a spec."""
    if not isinstance(spec, dict) or not spec:
        return None
    replay = spec.get("replay")
    timeout = replay.get("timeout_s", 600.0) if isinstance(replay, dict) else 600.0
    return float(timeout) * 1000.0 if isinstance(timeout, int | float) and timeout > 0 else None


def _preferences(
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


def table_to_csv(table: ExperimentTable) -> str:
    """The long CSV of `analyze --from-csv` holding exactly this table (floats written exactly)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["request_id", "arm", *table.cluster_dimensions, *(m.name for m in table.metrics)])
    labels = np.zeros((len(table.request_ids), 0), dtype=np.int64)
    if table.clusters is not None:
        labels = table.clusters.reshape(len(table.request_ids), -1)
    for i, request in enumerate(table.request_ids):
        clusters = [f"c{int(label)}" for label in labels[i]]
        for j, arm in enumerate(table.arms):
            cells = [float(m.values[i, j]) for m in table.metrics]
            if all(math.isnan(c) for c in cells):
                continue
            writer.writerow([request, arm, *clusters, *("" if math.isnan(c) else repr(c) for c in cells)])
    return out.getvalue()
