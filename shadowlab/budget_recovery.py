"""A replay reservation whose holder died or stopped (`shadowlab.budget`): what its attempt costs.

While open, a reservation's `reserved_usd` is `charged + judge + known + hold`: `charged_usd` what earlier
attempts may have cost, counted for good; `judge_usd` the judge holdback; known, the cost of the request's
replay rows written already (a stop gave it back part done); hold, the worst case of the attempt in hand.
Settlement makes it `charged + judge + the cost of all its rows` (`budget.settle_batch`, `budget.pg_settle`).

- `take_over` (a claim taking over expired leases): the hold of the attempt whose worker died is charged at
  that worst case, not released: the worker may have been killed after its calls went out, and the provider
  bills those whether or not anyone reads the answers (a hard budget bounds what is billed, not what was
  recorded). The new attempt then reserves its own worst case in the ledger, like a new request, with the
  same conditional update: what does not fit waits while live work is in flight (a lease not expired, a
  judge call: it may settle below its worst case), and is otherwise dropped: settled at what it was charged,
  its lease done with the arms it has.
- `hand_back` (a stopping worker's give-back, `replayer.writes.give_back`): what is known is known, so the
  hold comes down to `charged + judge + known`, plus the worst case of the arms cut off mid-call
  (`replayer.stopping`: the provider may bill those too), which is charged.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from shadowlab.budget import settle_batch
from shadowlab.budget_ledger import LEDGER, RESERVATIONS, Reservation, judging, raise_holds
from shadowlab.models import Experiment, Replay, WorkLease, utcnow

__all__ = ["Takeover", "TakeoverOutcome", "hand_back", "take_over"]


@dataclass(frozen=True)
class Takeover:
    """One expired lease's request: the cost of its rows written already, the new attempt's worst case."""

    captured_request_id: int
    known_usd: float
    hold_usd: float


@dataclass(frozen=True)
class TakeoverOutcome:
    taken: tuple[int, ...] = ()  # captured request ids: reserved afresh, to be replayed
    dropped: tuple[int, ...] = ()  # settled at what they were charged: their leases are done
    # the others wait, their leases still expired


def _open(session: Session, experiment_id: int, crids: Sequence[int]) -> Sequence[Any]:
    """These requests' open reservations, locked: (request, reserved, charged, judge holdback)."""
    res = RESERVATIONS.c
    return session.execute(
        sa.select(res.captured_request_id, res.reserved_usd, res.charged_usd, res.judge_usd)
        .where(res.experiment_id == experiment_id, res.captured_request_id.in_(list(crids)),
               res.settled_usd.is_(None))
        .with_for_update()
    ).all()  # fmt: skip


def _set(session: Session, experiment_id: int, column: str, values: Mapping[int, float]) -> None:
    """One column of these requests' open reservations, by captured request id."""
    if not values:
        return
    res = RESERVATIONS.c
    session.execute(
        sa.update(RESERVATIONS)
        .where(res.experiment_id == experiment_id, res.captured_request_id.in_(list(values)),
               res.settled_usd.is_(None))
        .values({column: sa.case(dict(values), value=res.captured_request_id)})
    )  # fmt: skip


def _move_ledger(session: Session, experiment_id: int, delta: float) -> None:
    if delta:
        led = LEDGER.c
        session.execute(
            sa.update(LEDGER)
            .where(led.experiment_id == experiment_id)
            .values(replay_usd=led.replay_usd + delta, updated_at=utcnow())
        )


def take_over(session: Session, experiment: Experiment, items: Sequence[Takeover]) -> TakeoverOutcome:
    """Charge the dead attempts of `items` (their leases expired, locked by the caller) and reserve the new
    attempts' worst case, the longest prefix that fits the budget (module doc)."""
    rows = {
        row.captured_request_id: row
        for row in _open(session, experiment.id, [i.captured_request_id for i in items])
    }
    # The dead attempt's hold: all the reservation holds beyond what was charged, the holdback and the rows
    # written; charged for good (`max`: a second look at a lease left waiting charges nothing more).
    open_ = [i for i in items if i.captured_request_id in rows]
    _set(session, experiment.id, "charged_usd", {
        i.captured_request_id: max(row.charged_usd, row.reserved_usd - row.judge_usd - i.known_usd)
        for i in open_ for row in [rows[i.captured_request_id]]
    })  # fmt: skip
    holds = [Reservation(i.captured_request_id, i.hold_usd) for i in open_]
    count = raise_holds(session, experiment, holds)
    fitted = holds[: count or 0]
    reserved = {
        h.captured_request_id: rows[h.captured_request_id].reserved_usd + h.amount_usd for h in fitted
    }
    _set(session, experiment.id, "reserved_usd", reserved)
    # None without a reservation (none is left open by the claims and writes of this version): taken as is.
    taken = tuple(reserved) + tuple(i.captured_request_id for i in items if i.captured_request_id not in rows)
    rest = open_[len(fitted) :]
    # What does not fit waits while live work is in flight (it may settle below its worst case). Not the
    # ledger's count of open reservations: other expired leases, beyond this claim's limit or another
    # survivor's, hold theirs at what they were charged and free nothing; waiting on them waited for ever.
    if not rest or fitted or count is None or _live_work(session, experiment.id):
        return TakeoverOutcome(taken)
    final = {i.captured_request_id: i.known_usd + rows[i.captured_request_id].judge_usd for i in rest}
    settle_batch(session, experiment.id, final)  # + what they were charged
    return TakeoverOutcome(taken, tuple(i.captured_request_id for i in rest))


def _live_work(session: Session, experiment_id: int) -> bool:
    """Whether work that may settle below its worst case is in flight: a lease of a live worker (not past its
    deadline) or a judge call (`budget_ledger.judging`)."""
    wl = WorkLease
    leased = sa.exists().where(wl.experiment_id == experiment_id, wl.done.is_(False), wl.deadline >= utcnow())
    return bool(session.execute(sa.select(leased | judging(experiment_id))).scalar_one())


def hand_back(session: Session, experiment_id: int, cut_usd: Mapping[int, float]) -> None:
    """A stopping worker's reservations of these requests (captured request id → worst case of its arms cut
    off mid-call): that worst case charged, the rest of the hold released (module doc)."""
    if not cut_usd:
        return
    rows = _open(session, experiment_id, list(cut_usd))
    if not rows:
        return
    known: dict[int, float] = {
        crid: float(usd or 0.0)
        for crid, usd in session.execute(
            sa.select(Replay.captured_request_id, sa.func.sum(Replay.cost_usd))
            .where(Replay.experiment_id == experiment_id,
                   Replay.captured_request_id.in_([row.captured_request_id for row in rows]))
            .group_by(Replay.captured_request_id)
        )
    }  # fmt: skip
    charged = {row.captured_request_id: row.charged_usd + cut_usd[row.captured_request_id] for row in rows}
    reserved = {row.captured_request_id: charged[row.captured_request_id] + row.judge_usd
                + known.get(row.captured_request_id, 0.0) for row in rows}  # fmt: skip
    _set(session, experiment_id, "charged_usd", charged)
    _set(session, experiment_id, "reserved_usd", reserved)
    _move_ledger(session, experiment_id, sum(reserved.values()) - sum(row.reserved_usd for row in rows))
