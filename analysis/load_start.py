"""The first half of `load_experiment`, light enough to start before the statistics modules are imported.

`LoadStart` reads the experiment and its arms, then has its scorer versions (then those versions' scores),
its replays and (when the experiment's requests fill their id range densely) its captured requests read on
threads (on Postgres: on three connections of their own under the transaction's exported snapshot, which
stay open for the second half). A command calls `start_in_session` first and imports numpy's and scipy's
statistics meanwhile; `load_experiment` on the same session picks the started read up (`take_started`).
This module imports no statistics: sqlalchemy, numpy, pyarrow and the store only.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.orm import Session

from analysis.fetch import (
    cancel_queries,
    fetch_numbers,
    fetch_table,
    snapshot_sessions,
    tune_for_aggregates,
)
from shadowlab import store
from shadowlab.models import Arm, CapturedRequest, Experiment, Preference, Replay, Score

T = TypeVar("T")
IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
ArmRow = sa.Row[int, str, str, str, str, bool]
_ROLE_ORDER = {"control": 0, "candidate": 1, "aa": 2}
_STARTED = "analysis.load_start"  # the key of a started read in `Session.info`


class ExperimentLoadError(Exception):
    """The experiment cannot be loaded; the message names it and what was expected."""


@dataclass(frozen=True)
class Replays:
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

    def columns(self, arm_rows: Sequence[ArmRow], arm_index: dict[int, int]) -> IntArray:
        """Each replay's column in the table (its arm's index there)."""
        of_slot = np.array([arm_index.get(a.id, -1) for a in arm_rows], dtype=np.int64)
        columns: IntArray = of_slot[(self.codes >> 1) % self.slots]
        return columns


def read_replays(session: Session, eid: int, arm_rows: Sequence[ArmRow]) -> Replays:
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
    return Replays(ids, codes, ttft, latency, cost, slots)


CAPTURE_SCHEMA = pa.schema([
    pa.field("id", pa.int64(), nullable=False), pa.field("request_id", pa.string(), nullable=False),
    ("conversation_id", pa.string()), ("prompt_fingerprint", pa.string()),
    pa.field("service", pa.string(), nullable=False), ("route", pa.string()),
    pa.field("tags", pa.string(), nullable=False), ("prompt_chars", pa.int64()), ("user_turn", pa.int64()),
])  # fmt: skip


def read_captures(session: Session, which: sa.ColumnElement[bool]) -> pa.Table:
    """The captured requests `which` selects as an Arrow table of `CAPTURE_SCHEMA`: id, request id, cluster
    labels and segment facts (in the order Postgres reads them)."""
    statement = sa.select(
        CapturedRequest.id, CapturedRequest.request_id, CapturedRequest.conversation_id,
        CapturedRequest.prompt_fingerprint, CapturedRequest.service, CapturedRequest.route,
        sa.cast(CapturedRequest.tags, sa.Text), CapturedRequest.prompt_chars, CapturedRequest.user_turn,
    ).where(which)  # fmt: skip
    return fetch_table(session, statement, CAPTURE_SCHEMA)


_PROBES = 64  # ids looked up to estimate how densely the requests fill their id range


def dense_request_span(
    session: Session, arm_rows: Sequence[ArmRow], control_id: int
) -> tuple[int, int] | None:
    """The range of captured-request ids the experiment's replays name, when its requests seem to fill more
    than half of it (`dense_range_or`'s rule, estimated: the share of 64 ids spread over the range that the
    control replayed), else None. Then its captures can be read by that range before its replays are. Each
    bound and each probe is one look-up in the (arm, captured request) index; a wrong guess costs time only
    (the rows of the range that are not the experiment's are dropped after reading)."""
    bounds = [
        sa.select(extreme(Replay.captured_request_id)).where(Replay.arm_id == a.id).scalar_subquery()
        for a in arm_rows
        for extreme in (sa.func.min, sa.func.max)
    ]
    found = session.execute(sa.select(*bounds)).one()
    lows, highs = [v for v in found[0::2] if v is not None], [v for v in found[1::2] if v is not None]
    if not lows:
        return None
    low, high = int(min(lows)), int(max(highs))
    probes = _probes(low, high)
    hits = session.execute(
        sa.select(sa.func.count()).select_from(Replay)
        .where(Replay.arm_id == control_id, Replay.captured_request_id.in_(probes))
    ).scalar_one()  # fmt: skip
    return (low, high) if 2 * hits > len(probes) else None


def _probes(low: int, high: int) -> list[int]:
    """`_PROBES` ids spread over [low, high]: a low-discrepancy sequence (multiples of the golden ratio), so
    no stride of the ids aliases with it."""
    size = high - low + 1
    return sorted({low + int((i * 0.6180339887498949) % 1.0 * size) for i in range(1, _PROBES + 1)})


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


def _experiment(session: Session, name: str) -> Experiment:
    try:
        return store.experiments.by_name(name, session=session)
    except store.NotFoundError as exc:
        raise ExperimentLoadError(str(exc)) from None


def _arms(session: Session, eid: int, name: str) -> tuple[Sequence[ArmRow], list[ArmRow], str]:
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


def _done(value: T) -> Future[T]:
    future: Future[T] = Future()
    future.set_result(value)
    return future


class LoadStart:
    """Experiment `name` with its arms, its scorer versions, replays and perhaps captures being read; the
    sessions the rest of the load reads on (`first`, `second`, `third`: helpers under the same snapshot, or
    `session` itself when `parallel` is false). A context manager: leaving it ends the threads and the
    helpers (a read still running, left because of an error, is cancelled)."""

    def __init__(self, session: Session, name: str) -> None:
        self.name = name
        self.experiment = _experiment(session, name)
        self.eid = self.experiment.id
        self.arm_rows, self.arms, self.control = _arms(session, self.eid, name)
        self.any_used = any(a.used for a in self.arm_rows)
        self._stack = ExitStack()
        try:
            self._helpers = self._stack.enter_context(snapshot_sessions(session, 3))
            self.parallel = bool(self._helpers)
            self.first, self.second, self.third = self._helpers or (session, session, session)
            if not self._helpers:
                tune_for_aggregates(session)
            if self.parallel:
                pool = self._stack.enter_context(ThreadPoolExecutor(4))
                self._choice, self._replays = pool.submit(self._choose), pool.submit(self._read_replays)
                self._captures = pool.submit(self._read_captures)
                self._scores = pool.submit(self._read_scores)  # on `first` once `_choice` is done
            else:  # the captures are read by the replays' request ids, once known
                self._choice, self._replays = _done(self._choose()), _done(self._read_replays())
                self._captures, self._scores = _done(None), _done(self._read_scores())
        except BaseException:
            self._stack.close()
            raise

    def _choose(self) -> ScorerChoice:
        if not self.any_used:
            return ScorerChoice((0, 0, 0), {}, [])
        return choose_scorers(self.first, self.eid)

    def _read_scores(self) -> dict[str, ScoreVersion]:
        return read_scores(self.first, self.eid, self._choice.result())

    def _read_replays(self) -> Replays:
        return read_replays(self.second, self.eid, self.arm_rows)

    def _read_captures(self) -> pa.Table | None:
        control = next(a.id for a in self.arm_rows if a.role == "control")
        span = dense_request_span(self.third, self.arm_rows, control) if self.any_used else None
        return None if span is None else read_captures(self.third, CapturedRequest.id.between(*span))

    def names(self) -> tuple[dict[str, str], list[str]]:
        """Each pointwise scorer's latest version and the pairwise scorers' names (waits for the read)."""
        choice = self._choice.result()
        return choice.latest, choice.pairwise

    def scores(self) -> dict[str, ScoreVersion]:
        """Per pointwise scorer name, the scores of its latest version (waits for the read)."""
        return self._scores.result()

    def replays(self) -> Replays:
        """The experiment's replays (waits for the read)."""
        return self._replays.result()

    def captures(self) -> pa.Table | None:
        """The captures of the experiment's request id range, with others of that range (waits for the read);
        None when they are to be read by the replays' request ids."""
        return self._captures.result()

    def __enter__(self) -> LoadStart:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if not all(f.done() for f in (self._choice, self._scores, self._replays, self._captures)):
            cancel_queries(self._helpers)  # left early (a bad plan, an error): no read is waited for
        self._stack.close()


def start_in_session(session: Session, name: str) -> None:
    """Start reading experiment `name` for the next `load_experiment(session, name)` (see the module)."""
    discard_started(session)
    session.info[_STARTED] = LoadStart(session, name)


def take_started(session: Session, name: str) -> LoadStart | None:
    """The read `start_in_session` started for `name` on this session, if any (it is the caller's now)."""
    started: Any = session.info.pop(_STARTED, None)
    if isinstance(started, LoadStart) and started.name == name:
        return started
    if isinstance(started, LoadStart):
        started.__exit__(None, None, None)
    return None


def discard_started(session: Session) -> None:
    """End a started read nobody took (the command failed before loading)."""
    started: Any = session.info.pop(_STARTED, None)
    if isinstance(started, LoadStart):
        started.__exit__(None, None, None)
