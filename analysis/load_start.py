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
from contextlib import ExitStack, suppress
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.orm import Session

from analysis.fetch import (
    cancel_queries,
    cells,
    fetch_numbers,
    fetch_table,
    separated_table,
    snapshot_sessions,
    tune_for_aggregates,
)
from analysis.prefetch import Prefetch, PrefetchFailed, refusal, take
from analysis.prefetch_sql import probes
from analysis.score_reads import (
    ScorerChoice,
    ScoreVersion,
    choose_scorers,
    preference_scorers,
    read_scores,
    scores_from_row,
)
from shadowlab import store
from shadowlab.models import Arm, CapturedRequest, Experiment, Replay

if TYPE_CHECKING:  # imported on the pool's thread when it runs (`LoadStart._read_requests`)
    from analysis.request_facts import RequestsRead

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
        REPLAY_KINDS,
    )  # fmt: skip
    return Replays(ids, codes, ttft, latency, cost, slots)


REPLAY_KINDS = ["int", "int", "float", "float", "float"]


def replays_from_row(row: Sequence[Any], arm_rows: Sequence[ArmRow]) -> Replays:
    """`read_replays`'s answer from the row `analysis.prefetch.replays_sql` has Postgres send."""
    ids, codes, ttft, latency, cost = (
        cells(data, kind) for data, kind in zip(row, REPLAY_KINDS, strict=True)
    )
    return Replays(ids, codes, ttft, latency, cost, max(len(arm_rows), 1))


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
    ids = probes(low, high)
    hits = session.execute(
        sa.select(sa.func.count()).select_from(Replay)
        .where(Replay.arm_id == control_id, Replay.captured_request_id.in_(ids))
    ).scalar_one()  # fmt: skip
    return (low, high) if 2 * hits > len(ids) else None


def _experiment(session: Session, name: str) -> Experiment:
    try:
        return store.experiments.by_name(name, session=session)
    except store.NotFoundError as exc:
        raise ExperimentLoadError(str(exc)) from None


def _arms(session: Session, eid: int, name: str) -> tuple[Sequence[ArmRow], list[ArmRow], str]:
    """Every arm of the experiment (by id), the arms of the table (those with replays, by role; every arm
    while none has any) and the control's name."""
    # The arm's first replayed request, a look-up in the (arm, captured request) index: an EXISTS was planned
    # as a scan of the replays until the arm's first one (66 ms at a million replays).
    first = sa.select(sa.func.min(Replay.captured_request_id)).where(Replay.arm_id == Arm.id)
    used = first.scalar_subquery().is_not(None)
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
    `session` itself when `parallel` is false). With `prefetched` (`analysis.prefetch`, started before the
    command's imports), `session` first imports that read's snapshot and its replays and captures are taken
    from it (read here instead when it failed or is of other arms). A context manager: leaving it ends the
    threads, the helpers and the prefetch (a read still running, left because of an error, is cancelled)."""

    def __init__(self, session: Session, name: str, prefetched: Prefetch | None = None) -> None:
        self.name = name
        self._stack = ExitStack()
        try:
            if prefetched is not None:
                self._stack.callback(prefetched.close)
                prefetched = prefetched if _adopt_snapshot(session, prefetched) else None
            self.experiment = _experiment(session, name)
            self.eid = self.experiment.id
            self.arm_rows, self.arms, self.control = _arms(session, self.eid, name)
            self.any_used = any(a.used for a in self.arm_rows)
            self._prefetched = prefetched if _same_arms(prefetched, self.eid, self.arm_rows) else None
            self._scores_row: Sequence[Any] | None = None  # the prefetched scores' row, once chosen with them
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
                self._requests: Future[RequestsRead] | None = pool.submit(self._read_requests)
            else:  # the captures are read by the replays' request ids, once known
                self._choice, self._replays = _done(self._choose()), _done(self._read_replays())
                self._captures, self._scores = _done(None), _done(self._read_scores())
                self._requests = None
        except BaseException:
            self._stack.close()
            raise

    def _choose(self) -> ScorerChoice:
        if not self.any_used:
            return ScorerChoice((0, 0, 0), {}, [])
        if self._prefetched is not None:
            with suppress(PrefetchFailed):
                fetched = self._prefetched.scores()
                if fetched is not None:
                    span, latest, self._scores_row = fetched
                    return ScorerChoice(span, latest, preference_scorers(self.first, self.eid))
        return choose_scorers(self.first, self.eid)

    def _read_scores(self) -> dict[str, ScoreVersion]:
        choice = self._choice.result()
        row, self._scores_row = self._scores_row, None
        if row is not None:
            return scores_from_row(row, choice.latest)
        return read_scores(self.first, self.eid, choice)

    def _read_replays(self) -> Replays:
        if self._prefetched is not None:
            with suppress(PrefetchFailed):
                row = self._prefetched.replays()
                if row is not None:
                    return replays_from_row(row, self.arm_rows)
        return read_replays(self.second, self.eid, self.arm_rows)

    def _read_captures(self) -> pa.Table | None:
        if self._prefetched is not None:
            with suppress(PrefetchFailed):
                fetched = self._prefetched.captures()
                if fetched is None:  # not dense (by the same rule): read by the replays' request ids
                    return None
                *row, span = fetched
                table = separated_table(row, CAPTURE_SCHEMA)
                return (
                    table
                    if table is not None
                    else read_captures(self.third, CapturedRequest.id.between(*span))
                )
        control = next(a.id for a in self.arm_rows if a.role == "control")
        span = dense_request_span(self.third, self.arm_rows, control) if self.any_used else None
        return None if span is None else read_captures(self.third, CapturedRequest.id.between(*span))

    def _read_requests(self) -> RequestsRead:
        # Imported on this thread, while the command imports the statistics on its own (analysis' modules
        # import one another without a cycle, so two threads may import them at once): the requests' facts
        # are placed while the statistics load.
        from analysis.request_facts import read_requests, request_keys

        keys, rows = request_keys(self._replays.result().requests)
        return keys, rows, read_requests(self.third, self.eid, keys, self._captures.result())

    def requests(self) -> RequestsRead:
        """The requests' ids (ascending), each replay's row among them and `read_requests`' answer, placed on
        the reads' pool (waits for it; only when `parallel`)."""
        assert self._requests is not None
        return self._requests.result()

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
        reads = (self._choice, self._scores, self._replays, self._captures, self._requests or self._replays)
        if not all(f.done() for f in reads):
            cancel_queries(self._helpers)  # left early (a bad plan, an error): no read is waited for
            if self._prefetched is not None:
                self._prefetched.close()
        self._stack.close()


def checked_engine(settings: Any) -> sa.Engine:
    """The command's engine, checked (`shadowlab.db.engine_from`); when the prefetch on the same database
    could not connect, its error, worded as the check words it, without connecting a second time."""
    from shadowlab.db import database_error, engine_from, parse_database_url

    refused = refusal(settings.database_url)
    if refused is not None:
        raise database_error(parse_database_url(settings.database_url), refused)
    return engine_from(settings)


def start_in_session(session: Session, name: str, *, database_url: str | None = None) -> None:
    """Start reading experiment `name` for the next `load_experiment(session, name)` (see the module); a new
    `session` on `database_url` takes the reads `analysis.prefetch` started for it, if any."""
    discard_started(session)
    prefetched = None if database_url is None else take(database_url, name)
    session.info[_STARTED] = LoadStart(session, name, prefetched)


def _adopt_snapshot(session: Session, prefetched: Prefetch) -> bool:
    """Make `session`'s transaction (not begun yet) see exactly what the prefetch's reads see: REPEATABLE READ
    on their exported snapshot. False (the transaction rolled back, the prefetch closed) when that fails."""
    try:
        session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
        session.execute(sa.text(f"SET TRANSACTION SNAPSHOT '{prefetched.snapshot}'"))
    except sa.exc.DBAPIError:
        session.rollback()
        prefetched.close()
        return False
    return True


def _same_arms(prefetched: Prefetch | None, eid: int, arm_rows: Sequence[ArmRow]) -> bool:
    """Whether the prefetch read the experiment and arms this load reads (else it is closed)."""
    if prefetched is None:
        return False
    head = prefetched.head
    same = (
        head is not None
        and head.experiment_id == eid
        and [a for a, _ in head.arms] == [a.id for a in arm_rows]
    )
    if not same:
        prefetched.close()
    return same


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
