"""Load one experiment from Postgres or SQLite into the aligned request × arm matrices of the analysis.

The table is the same `ExperimentTable` the CSV form builds, with these metric columns: `error` (binary,
replay status), `ttft_ms` and `latency_ms` (latency; +∞ for a failed replay), `cost_usd` (cost), one column
per scorer name (the scorer version written most recently; binary when every value is 0/1, else mean), and
`pref_<scorer>` (preference of each candidate over the control, averaged over the orders shown).
Averaging and joining happen in SQL; numpy only places the rows.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.orm import Session

from analysis.csv_input import ERROR_COLUMN, ExperimentTable, FloatArray, IntArray, MetricColumn
from analysis.segments import RequestFacts
from analysis.stats.ranking import PairwiseOutcomes
from analysis.stats.results import MetricKind
from shadowlab.fingerprint import body_fingerprint
from shadowlab.models import Arm, CapturedRequest, Experiment, Preference, Replay, Score

_ROLE_ORDER = {"control": 0, "candidate": 1, "aa": 2}
PREFERENCE_PREFIX = "pref_"


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
    facts: tuple[RequestFacts, ...] = ()  # per table row: what the segments are cut on
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


def _latest_scorer_versions(session: Session, experiment_id: int) -> dict[str, str]:
    """Per scorer name, the version written most recently in this experiment."""
    rows = session.execute(
        sa.select(Score.scorer_name, Score.scorer_version, sa.func.max(Score.created_at))
        .join(Replay, Replay.id == Score.replay_id)
        .where(Replay.experiment_id == experiment_id)
        .group_by(Score.scorer_name, Score.scorer_version)
    ).all()
    latest: dict[str, tuple[Any, str]] = {}
    for name, version, written in rows:
        if name not in latest or (written, version) > latest[name]:
            latest[name] = (written, version)
    return {name: version for name, (_, version) in sorted(latest.items())}


def load_experiment(session: Session, name: str) -> ExperimentData:
    """Read replays, scores and preferences of experiment `name` into an ExperimentTable."""
    experiment = session.execute(sa.select(Experiment).where(Experiment.name == name)).scalar_one_or_none()
    if experiment is None:
        raise ExperimentLoadError(f"experiment {name!r}: not found in the database")
    eid = experiment.id
    arm_rows = session.execute(sa.select(Arm.id, Arm.name, Arm.role).where(Arm.experiment_id == eid)).all()
    controls = [a.name for a in arm_rows if a.role == "control"]
    if len(controls) != 1:
        raise ExperimentLoadError(
            f"experiment {name!r}: expected exactly one control arm, found {len(controls)}"
        )
    replays = session.execute(
        sa.select(
            CapturedRequest.id, CapturedRequest.request_id, CapturedRequest.conversation_id,
            Replay.arm_id, Replay.status, Replay.ttft_ms, Replay.latency_ms, Replay.cost_usd,
        )
        .join(CapturedRequest, CapturedRequest.id == Replay.captured_request_id)
        .where(Replay.experiment_id == eid)
        .order_by(CapturedRequest.id, Replay.arm_id)
    ).all()  # fmt: skip
    used = {r.arm_id for r in replays}
    # Without any replay yet (just started, or emptied by retention) every arm stays: an empty table.
    arms = sorted(
        (a for a in arm_rows if a.id in used or not used), key=lambda a: (_ROLE_ORDER[a.role], a.id)
    )
    arm_index = {a.id: i for i, a in enumerate(arms)}
    request_index: dict[int, int] = {}
    request_ids: list[str] = []
    conversations: list[str | None] = []
    for row in replays:
        if row.id not in request_index:
            request_index[row.id] = len(request_ids)
            request_ids.append(row.request_id)
            conversations.append(row.conversation_id)
    shape = (len(request_ids), len(arms))
    rows = np.fromiter((request_index[r.id] for r in replays), dtype=np.int64, count=len(replays))
    cols = np.fromiter((arm_index[r.arm_id] for r in replays), dtype=np.int64, count=len(replays))
    failed = np.array([r.status == "error" for r in replays], dtype=bool)

    def matrix(values: Sequence[float | None]) -> FloatArray:
        out = np.full(shape, np.nan)
        out[rows, cols] = np.array([math.nan if v is None else float(v) for v in values], dtype=np.float64)
        return out

    def latency(values: Sequence[float | None]) -> FloatArray:
        out = np.full(shape, np.nan)
        placed = np.array([math.nan if v is None else float(v) for v in values], dtype=np.float64)
        out[rows, cols] = np.where(failed, np.inf, placed)
        return out

    metrics = [
        MetricColumn(ERROR_COLUMN, "binary", matrix([1.0 if f else 0.0 for f in failed])),
        MetricColumn("ttft_ms", "latency", latency([r.ttft_ms for r in replays])),
        MetricColumn("latency_ms", "latency", latency([r.latency_ms for r in replays])),
        MetricColumn("cost_usd", "cost", matrix([r.cost_usd for r in replays])),
    ]
    for scorer, version in _latest_scorer_versions(session, eid).items():
        score_rows = session.execute(
            sa.select(Replay.captured_request_id, Replay.arm_id, Score.value)
            .join(Replay, Replay.id == Score.replay_id)
            .where(Replay.experiment_id == eid, Score.scorer_name == scorer, Score.scorer_version == version)
        ).all()
        values = np.full(shape, np.nan)
        for request, arm, value in score_rows:
            if request in request_index and arm in arm_index and value is not None:
                values[request_index[request], arm_index[arm]] = float(value)
        present = values[~np.isnan(values)]
        kind: MetricKind = "binary" if present.size and np.isin(present, (0.0, 1.0)).all() else "mean"
        metrics.append(MetricColumn(scorer, kind, values))
    pairwise, preference_columns, judge_orders = _preferences(
        session, eid, request_index, arm_index, arms[0].id, shape
    )
    metrics.extend(preference_columns)
    clusters = _clusters(session, request_index, conversations)
    aa = [a.name for a in arms if a.role == "aa"]
    table = ExperimentTable(tuple(request_ids), tuple(a.name for a in arms), tuple(metrics), clusters, None)
    models = tuple(
        (a.name, a.provider, a.model)
        for a in session.execute(sa.select(Arm.name, Arm.provider, Arm.model).where(Arm.experiment_id == eid))
    )
    facts = _request_facts(session, request_index)
    return ExperimentData(
        eid, name, experiment.plan, controls[0], aa[0] if aa else None, table, pairwise, facts, models,
        replay_timeout_ms(experiment.spec), judge_orders,
    )  # fmt: skip


def replay_timeout_ms(spec: Any) -> float | None:
    """The spec's replay timeout (`replay.timeout_s`, default 600 s) in ms; None without a spec."""
    if not isinstance(spec, dict) or not spec:
        return None
    replay = spec.get("replay")
    timeout = replay.get("timeout_s", 600.0) if isinstance(replay, dict) else 600.0
    return float(timeout) * 1000.0 if isinstance(timeout, int | float) and timeout > 0 else None


def _text_length(content: Any) -> int:
    """Characters of text in a message content: a string or a list of blocks with `text`."""
    if isinstance(content, str):
        return len(content)
    if isinstance(content, list):
        return sum(_text_length(b.get("text") or b.get("content")) for b in content if isinstance(b, dict))
    return 0


def request_facts(service: str, route: str | None, tags: Any, body: Any) -> RequestFacts:
    """Segment facts of one captured request: prompt characters (system + messages) and user turn."""
    body = body if isinstance(body, dict) else {}
    messages = [m for m in body.get("messages") or [] if isinstance(m, dict)]
    chars = _text_length(body.get("system")) + sum(_text_length(m.get("content")) for m in messages)
    turn = max(sum(1 for m in messages if m.get("role") == "user"), 1)
    return RequestFacts(service, route, tags if isinstance(tags, dict) else {}, chars, turn)


def _captured_rows(session: Session, ids: Sequence[int], *columns: Any) -> Iterator[sa.Row[Any]]:
    """`CapturedRequest.id` and `columns` of the captures `ids`, 5,000 per query."""
    for start in range(0, len(ids), 5000):
        chunk = CapturedRequest.id.in_(ids[start : start + 5000])
        yield from session.execute(sa.select(CapturedRequest.id, *columns).where(chunk))


def _request_facts(session: Session, request_index: dict[int, int]) -> tuple[RequestFacts, ...]:
    facts: list[RequestFacts | None] = [None] * len(request_index)
    columns = (CapturedRequest.service, CapturedRequest.route, CapturedRequest.tags, CapturedRequest.request)
    for row in _captured_rows(session, list(request_index), *columns):
        facts[request_index[row.id]] = request_facts(row.service, row.route, row.tags, row.request)
    return tuple(f if f is not None else RequestFacts("", None, {}, 0, 1) for f in facts)


def _codes(labels: Sequence[str | None]) -> IntArray:
    """Dense codes in first-seen order; a missing label is a cluster of its own."""
    index: dict[object, int] = {}
    return np.fromiter(
        (index.setdefault(label if label else ("missing", i), len(index)) for i, label in enumerate(labels)),
        dtype=np.int64,
        count=len(labels),
    )


def _clusters(
    session: Session, request_index: dict[int, int], conversations: Sequence[str | None]
) -> IntArray | None:
    """(requests × 2) cluster labels: conversation (a request without one is its own) and prompt fingerprint
    (computed from the stored body where the column is NULL, as ingest and the migration compute it).
    None when neither dimension groups anything (every cluster a singleton, or one cluster)."""
    fingerprints: list[str | None] = [None] * len(request_index)
    ids = list(request_index)
    for row in _captured_rows(session, ids, CapturedRequest.prompt_fingerprint):
        fingerprints[request_index[row.id]] = row.prompt_fingerprint
    missing = [i for i in ids if fingerprints[request_index[i]] is None]
    for row in _captured_rows(session, missing, CapturedRequest.api, CapturedRequest.request):
        fingerprints[request_index[row.id]] = body_fingerprint(row.api, row.request)
    clusters = np.column_stack([_codes(conversations), _codes(fingerprints)])
    n = len(request_index)
    if all(int(column.max(initial=0)) + 1 in (1, n) for column in clusters.T):
        return None
    return clusters


def _preferences(
    session: Session,
    eid: int,
    request_index: dict[int, int],
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
    # Per (scorer, request, unordered pair): the lower-indexed arm's score in each order shown.
    orders: dict[tuple[str, int, int, int], list[float]] = {}
    for scorer, request, arm_a, arm_b, total, count in rows:
        if request not in request_index or arm_a not in arm_index or arm_b not in arm_index:
            continue
        low, high = sorted((arm_index[arm_a], arm_index[arm_b]))
        a_mean = float(total) / float(count)
        orders.setdefault((scorer, request_index[request], low, high), []).append(
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
