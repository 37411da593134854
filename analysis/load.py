"""Load one experiment from Postgres or SQLite into the aligned request × arm matrices of the analysis.

The table is the same `ExperimentTable` the CSV form builds, with these metric columns: `error` (binary,
replay status), `ttft_ms` and `latency_ms` (latency; +∞ for a failed replay), `cost_usd` (cost), one column
per scorer name (the scorer version written most recently; binary when every value is 0/1, else mean), and
`pref_<scorer>` (preference of each candidate over the control, averaged over the orders shown).

Columnar: one query returns the experiment's replays as five numeric columns (`analysis.fetch`), one the
chosen scorer versions' scores, one a row per request with its segment facts and cluster labels
(`analysis.request_facts`); numpy places them (no Python object per row). On Postgres they run at once on
connections of their own under this transaction's snapshot, all from the start: replays, captures (by id
range when the experiment's requests fill it densely), and the scorer versions then their scores (by the
replays' id range, read beside them). The plan is checked against the experiment's metrics once the
versions are known (a read still running is cancelled when it fails).
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
from sqlalchemy.orm import Session

from analysis.csv_input import ERROR_COLUMN, ExperimentTable, FloatArray, IntArray, MetricColumn
from analysis.facts import FactTable
from analysis.load_start import ExperimentLoadError, LoadStart, Replays, take_started
from analysis.plan import DecisionPlan, PlanError
from analysis.preferences import PREFERENCE_PREFIX, read_preferences
from analysis.request_facts import RequestsChangedError, RequestsRead, read_requests, request_keys
from analysis.score_reads import ScoreVersion
from analysis.stats.ranking import PairwiseOutcomes
from analysis.stats.results import MetricKind

__all__ = [
    "ExperimentData",
    "ExperimentLoadError",
    "check_plan",
    "load_experiment",
    "metric_columns",
    "table_to_csv",
]


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


def metric_columns(scorers: Mapping[str, str], preference_scorers: Sequence[str]) -> dict[str, MetricKind]:
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
    PlanError before reading scores and requests (the replays are read meanwhile) when the plan names a
    metric the experiment cannot have.

    On Postgres three more connections read under this transaction's snapshot (`snapshot_sessions`), so
    backends work at once: scorer versions then scores, replays, and captured requests (by their id range,
    when dense: `LoadStart`, perhaps started already by `start_in_session`), then preferences."""
    with take_started(session, name) or LoadStart(session, name) as started:
        eid, arms, arm_rows = started.experiment.id, started.arms, started.arm_rows
        first = started.first
        scorers, preference_names = started.names()
        if check and started.any_used:
            check_plan(name, started.experiment.plan, metric_columns(scorers, preference_names))
        replays = started.replays()
        request_keys, rows, requests = _requests(started, name)
        arm_index = {a.id: i for i, a in enumerate(arms)}
        shape = (len(request_keys), len(arms))
        place = _Placement.of(rows.reshape(-1), replays.columns(arm_rows, arm_index), shape)
        scores = _score_columns(replays.ids, started.scores())
        preferences = read_preferences(first, eid, request_keys, arm_index, arms[0].id, shape)
    pairwise, preference_columns, judge_orders = preferences
    metrics = [*_replay_metrics(replays, place), *_score_metrics(scorers, scores, place), *preference_columns]
    request_ids, clusters, facts = requests
    aa = [a.name for a in arms if a.role == "aa"]
    table = ExperimentTable(request_ids, tuple(a.name for a in arms), tuple(metrics), clusters, None)
    models = tuple((a.name, a.provider, a.model) for a in arm_rows)
    experiment = started.experiment
    return ExperimentData(
        eid, name, experiment.plan, started.control, aa[0] if aa else None, table, pairwise, facts, models,
        replay_timeout_ms(experiment.spec), judge_orders,
    )  # fmt: skip


def _requests(started: LoadStart, name: str) -> RequestsRead:
    """The requests' ids, each replay's row and the requests (`read_requests`): placed on the reads' pool
    meanwhile (`LoadStart.requests`), or here."""
    try:
        if started.parallel:
            return started.requests()
        keys, rows = request_keys(started.replays().requests)
        return keys, rows, read_requests(started.third, started.experiment.id, keys, started.captures())
    except RequestsChangedError as exc:
        raise ExperimentLoadError(f"experiment {name!r}: {exc}") from None


@dataclass(frozen=True)
class _Placement:
    """Where each replay goes in the request × arm matrices: its flat position, row × arms + column (a scatter
    by one index: 3.7 ms per matrix at 200,000 × 5 where one by row and column arrays took 21 ms)."""

    flat: IntArray
    shape: tuple[int, int]

    @classmethod
    def of(cls, rows: IntArray, cols: IntArray, shape: tuple[int, int]) -> _Placement:
        """Replays at (`rows`, `cols`): every replay's arm has a column (the table's arms are those with
        replays)."""
        return cls(rows * shape[1] + cols, shape)

    def matrix(self, values: FloatArray) -> FloatArray:
        out = np.full(self.shape[0] * self.shape[1], np.nan)
        out[self.flat] = values
        return out.reshape(self.shape)


def _replay_metrics(replays: Replays, place: _Placement) -> list[MetricColumn]:
    failed = replays.failed
    return [
        MetricColumn(ERROR_COLUMN, "binary", place.matrix(failed.astype(np.float64))),
        MetricColumn("ttft_ms", "latency", place.matrix(np.where(failed, np.inf, replays.ttft))),
        MetricColumn("latency_ms", "latency", place.matrix(np.where(failed, np.inf, replays.latency))),
        MetricColumn("cost_usd", "cost", place.matrix(replays.cost)),
    ]


def _score_metrics(
    scorers: Mapping[str, str], scores: list[FloatArray], place: _Placement
) -> list[MetricColumn]:
    """One column per scorer: binary when every value is 0/1, else mean."""
    metrics = []
    for scorer, values in zip(scorers, scores, strict=True):
        placed = place.matrix(values)
        present = placed[~np.isnan(placed)]
        kind: MetricKind = "binary" if present.size and np.isin(present, (0.0, 1.0)).all() else "mean"
        metrics.append(MetricColumn(scorer, kind, placed))
    return metrics


def _score_columns(replay_ids: IntArray, scores: Mapping[str, ScoreVersion]) -> list[FloatArray]:
    """Per replay in `replay_ids`, the value of each scorer's chosen version (NaN where it has none), placed
    by replay id (scores of the id range that are not of these replays are dropped)."""
    columns = []
    for version in scores.values():
        rows, mine = _positions(replay_ids, version.replay_ids)
        column = np.full(len(replay_ids), np.nan)
        column[rows[mine]] = version.values[mine]
        columns.append(column)
    return columns


def _positions(keys: IntArray, found: IntArray) -> tuple[IntArray, npt.NDArray[np.bool_]]:
    """Each found id's position in `keys` (distinct ids) and whether it is one of them: by a table over the
    keys' range when they fill a quarter of it (O(n)), else by a binary search."""
    if not len(keys):
        return np.zeros(len(found), dtype=np.int64), np.zeros(len(found), dtype=bool)
    low, high = int(keys.min()), int(keys.max())
    if high - low < 4 * len(keys):
        table = np.full(high - low + 1, -1, dtype=np.int64)
        table[keys - low] = np.arange(len(keys))
        inside = (found >= low) & (found <= high)
        rows = np.where(inside, table[np.where(inside, found - low, 0)], -1)
        return np.maximum(rows, 0), rows >= 0
    order = np.argsort(keys, kind="stable")
    positions = np.searchsorted(keys, found, sorter=order).clip(0, len(keys) - 1)
    rows = order[positions]
    return rows, keys[rows] == found


def replay_timeout_ms(spec: Any) -> float | None:
    """The spec's replay timeout (`replay.timeout_s`, default 600 s) in ms; None without a spec."""
    if not isinstance(spec, dict) or not spec:
        return None
    replay = spec.get("replay")
    timeout = replay.get("timeout_s", 600.0) if isinstance(replay, dict) else 600.0
    return float(timeout) * 1000.0 if isinstance(timeout, int | float) and timeout > 0 else None


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
