"""Load one experiment from Postgres or SQLite into the aligned request × arm matrices of the analysis.

The table is the same `ExperimentTable` the CSV form builds, with these metric columns: `error` (binary,
replay status), `ttft_ms` and `latency_ms` (latency; +∞ for a failed replay), `cost_usd` (cost), one column
per scorer name (the scorer version written most recently; binary when every value is 0/1, else mean), and
`pref_<scorer>` (preference of each candidate over the control, averaged over the orders shown).

Columnar: one query returns the experiment's replays as five numeric columns (`analysis.fetch`), one the
chosen scorer versions' scores, one a row per request with its segment facts and cluster labels
(`analysis.request_facts`); numpy places them (no Python object per row). On Postgres they run two at a time
on connections of their own under this transaction's snapshot. The plan is checked against the experiment's
metrics before scores and requests are read.
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
from analysis.fetch import both, dense_range_or, fetch_numbers, snapshot_sessions, tune_for_aggregates
from analysis.plan import DecisionPlan, PlanError
from analysis.preferences import PREFERENCE_PREFIX, read_preferences
from analysis.request_facts import RequestsChangedError, read_requests
from analysis.segments import FactTable
from analysis.stats.ranking import PairwiseOutcomes
from analysis.stats.results import MetricKind
from shadowlab import store
from shadowlab.models import Arm, Experiment, Preference, Replay, Score

_ROLE_ORDER = {"control": 0, "candidate": 1, "aa": 2}
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
    PlanError before reading scores and requests (the replays are read meanwhile) when the plan names a
    metric the experiment cannot have.

    On Postgres two more connections read under this transaction's snapshot (`snapshot_sessions`), so two
    backends work at once: scorer versions beside the replays, then scores and preferences beside the
    captured requests."""
    experiment = _experiment(session, name)
    eid = experiment.id
    arm_rows, arms, control = _arms(session, eid, name)
    any_used = any(a.used for a in arm_rows)
    with snapshot_sessions(session, 2) as helpers:
        first, second = helpers or (session, session)
        if not helpers:
            tune_for_aggregates(session)
        parallel = bool(helpers)
        (scorers, preference_names), replays = both(
            lambda: _scorer_names(first, eid) if any_used else ({}, []),
            lambda: _replays(second, eid, arm_rows),
            parallel=parallel,
        )
        if check and any_used:
            check_plan(name, experiment.plan, _metric_columns(scorers, preference_names))
        request_keys, rows = np.unique(replays.requests, return_inverse=True)
        arm_index = {a.id: i for i, a in enumerate(arms)}
        shape = (len(request_keys), len(arms))
        place = _Placement(rows.reshape(-1), replays.columns(arm_rows, arm_index), shape)
        (scores, preferences), requests = both(
            lambda: (
                _score_columns(first, eid, replays.ids, scorers),
                read_preferences(first, eid, request_keys, arm_index, arms[0].id, shape),
            ),
            lambda: _requests(second, eid, request_keys, name),
            parallel=parallel,
        )
    pairwise, preference_columns, judge_orders = preferences
    metrics = [*_replay_metrics(replays, place), *_score_metrics(scorers, scores, place), *preference_columns]
    request_ids, clusters, facts = requests
    aa = [a.name for a in arms if a.role == "aa"]
    table = ExperimentTable(request_ids, tuple(a.name for a in arms), tuple(metrics), clusters, None)
    models = tuple((a.name, a.provider, a.model) for a in arm_rows)
    return ExperimentData(
        eid, name, experiment.plan, control, aa[0] if aa else None, table, pairwise, facts, models,
        replay_timeout_ms(experiment.spec), judge_orders,
    )  # fmt: skip


def _experiment(session: Session, name: str) -> Experiment:
    try:
        return store.experiments.by_name(name, session=session)
    except store.NotFoundError as exc:
        raise ExperimentLoadError(str(exc)) from None


def _arms(session: Session, eid: int, name: str) -> tuple[Sequence[_ArmRow], list[_ArmRow], str]:
    """Every arm of the experiment (by id), the arms of the table (those with replays, by role; every arm
    while none has any) and the control's name."""
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
    return arm_rows, arms, controls[0]


def _scorer_names(session: Session, eid: int) -> tuple[dict[str, str], list[str]]:
    """Each pointwise scorer's latest version, and the pairwise scorers' names (sorted)."""
    scorers = store.scorers.latest_point_versions(eid, session=session)
    preference_names = session.execute(
        sa.select(Preference.scorer_name).where(Preference.experiment_id == eid).distinct()
    ).scalars().all()  # fmt: skip
    return scorers, sorted(preference_names)


def _requests(
    session: Session, eid: int, request_keys: IntArray, name: str
) -> tuple[tuple[str, ...], IntArray | None, FactTable]:
    try:
        return read_requests(session, eid, request_keys)
    except RequestsChangedError as exc:
        raise ExperimentLoadError(f"experiment {name!r}: {exc}") from None


_ArmRow = sa.Row[int, str, str, str, str, bool]


@dataclass(frozen=True)
class _Replays:
    """Per replay of the experiment: its id, its code ((captured request id × arms + the arm's position
    among the experiment's arms by id) × 2 + failed) and its ttft, latency and cost."""

    ids: IntArray
    codes: IntArray
    ttft: FloatArray
    latency: FloatArray
    cost: FloatArray
    slots: int  # the experiment's arms

    @property
    def failed(self) -> BoolArray:
        failed: BoolArray = (self.codes & 1) == 1
        return failed

    @property
    def requests(self) -> IntArray:
        """Each replay's captured request id."""
        requests: IntArray = (self.codes >> 1) // self.slots
        return requests

    def columns(self, arm_rows: Sequence[_ArmRow], arm_index: Mapping[int, int]) -> IntArray:
        """Each replay's column in the table (its arm's index there)."""
        of_slot = np.array([arm_index.get(a.id, -1) for a in arm_rows], dtype=np.int64)
        columns: IntArray = of_slot[(self.codes >> 1) % self.slots]
        return columns


def _replays(session: Session, eid: int, arm_rows: Sequence[_ArmRow]) -> _Replays:
    """One read of the experiment's replays: five numeric columns (the captured request, the arm and the
    failed flag folded into one integer: fewer values for Postgres to send, ~0.12 s of its CPU per column of
    a million)."""
    slots = max(len(arm_rows), 1)
    slot = sa.case({a.id: i for i, a in enumerate(arm_rows)}, value=Replay.arm_id, else_=0)
    failed = sa.case((Replay.status == "error", 1), else_=0)
    code = (sa.cast(Replay.captured_request_id, sa.BigInteger) * slots + slot) * 2 + failed
    ids, codes, ttft, latency, cost = fetch_numbers(
        session,
        sa.select(Replay.id, code, Replay.ttft_ms, Replay.latency_ms, Replay.cost_usd)
        .where(Replay.experiment_id == eid),
        ["int", "int", "float", "float", "float"],
    )  # fmt: skip
    return _Replays(ids, codes, ttft, latency, cost, slots)


@dataclass(frozen=True)
class _Placement:
    """Where each replay goes in the request × arm matrices."""

    rows: IntArray
    cols: IntArray
    shape: tuple[int, int]

    def matrix(self, values: FloatArray) -> FloatArray:
        out = np.full(self.shape, np.nan)
        out[self.rows, self.cols] = values
        return out


def _replay_metrics(replays: _Replays, place: _Placement) -> list[MetricColumn]:
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
